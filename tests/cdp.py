"""A minimal headless-Chromium driver over the Chrome DevTools protocol, standard library only.

The browser test drives the *system* Chromium (Debian's ``chromium``) through ``--remote-debugging-pipe``: the
browser reads NUL-terminated JSON commands from file descriptor 3 and writes replies and events to descriptor 4.
No browser download (playwright), no matching driver binary or extra PyPI packages (selenium) are needed.

    with Browser.launch() as b:
        page = b.new_page(width=1280, height=900)
        page.goto("file:///.../index.html")
        print(page.evaluate("document.title"))
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

#: Executables tried in order by :func:`find_chromium` (``$CHROMIUM`` first).
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome executable: ``$CHROMIUM`` if set, else the first of :data:`CANDIDATES` on PATH."""
    env = os.environ.get("CHROMIUM", "").strip()
    if env:
        return env if Path(env).exists() else shutil.which(env)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    """The browser answered a command with an error, closed the pipe, or did not answer in time."""


class Browser:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, proc: subprocess.Popen, to_browser, from_browser, profile_dir: str):
        self.proc, self._out, self._in, self._profile = proc, to_browser, from_browser, profile_dir
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []

    @classmethod
    def launch(cls, executable: str | None = None, timeout: float = 30.0) -> "Browser":
        executable = executable or find_chromium()
        if not executable:
            raise FileNotFoundError("no Chromium executable found (install Debian's `chromium` or set $CHROMIUM)")
        profile = tempfile.mkdtemp(prefix="lmcnb-chromium-")
        # Our end writes to r_browser (the browser's fd 3) and reads w_browser (its fd 4).
        r_browser, w_ours = os.pipe()
        r_ours, w_browser = os.pipe()

        def child_fds():  # move both ends above 4 first, so that neither dup2 clobbers the other
            r, w = os.dup(r_browser) + 100, os.dup(w_browser) + 100
            os.dup2(r_browser, r)
            os.dup2(w_browser, w)
            os.dup2(r, 3)
            os.dup2(w, 4)
            os.close(r)
            os.close(w)

        args = [executable, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--mute-audio", "--hide-scrollbars=false", f"--user-data-dir={profile}",
                "about:blank"]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=None if os.environ.get('LMCNB_CDP_DEBUG') else subprocess.DEVNULL, preexec_fn=child_fds, pass_fds=(3, 4))  # kept open after preexec_fn
        os.close(r_browser)
        os.close(w_browser)
        browser = cls(proc, os.fdopen(w_ours, "wb", buffering=0), os.fdopen(r_ours, "rb", buffering=0), profile)
        browser.send("Browser.getVersion", timeout=timeout)
        return browser

    # -- protocol -------------------------------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict:
        import select

        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for the browser")
            ready, _, _ = select.select([self._in], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._in.fileno(), 1 << 20)
            if not chunk:
                raise CDPError(f"the browser closed the DevTools pipe (exit status {self.proc.poll()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        """Send one command and return its ``result``; events that arrive meanwhile go to :attr:`events`."""
        self._next_id += 1
        msg = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self._out.write(json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str, session: str | None = None, timeout: float = 30.0) -> dict:
        """The first event ``method`` (for ``session``) received from now on, or already buffered and unseen."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if ev["method"] == method and (session is None or ev.get("sessionId") == session):
                    return self.events.pop(i)
            self.events.append(self._read_message(deadline))

    def new_page(self, width: int = 1280, height: int = 900) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Log"):
            page.send(f"{domain}.enable")
        page.send("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        return page

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (CDPError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fh in (self._out, self._in):
            try:
                fh.close()
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab, attached with a flat session; collects console errors and exceptions while it lives."""

    def __init__(self, browser: Browser, session: str):
        self.browser, self.session = browser, session

    def send(self, method: str, params: dict | None = None, timeout: float = 30.0) -> dict:
        return self.browser.send(method, params, session=self.session, timeout=timeout)

    def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        self.browser.events = [e for e in self.browser.events if e.get("sessionId") != self.session]
        result = self.send("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"navigation to {url} failed: {result['errorText']}")
        self.browser.wait_event("Page.loadEventFired", session=self.session, timeout=timeout)

    def evaluate(self, expression: str, timeout: float = 30.0, await_promise: bool = False):
        """The JSON value of a JavaScript expression; a thrown exception raises :class:`CDPError`."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True,
                                                "awaitPromise": await_promise}, timeout=timeout)
        if "exceptionDetails" in result:
            raise CDPError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Console messages of level error, uncaught exceptions and failed-resource log entries seen so far."""
        out = []
        for ev in self.browser.events:
            if ev.get("sessionId") != self.session:
                continue
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console." + p["type"] + ": " + " ".join(str(a.get("value", a.get("description", "")))
                                                                    for a in p.get("args", [])))
            elif ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + str(d.get("exception", {}).get("description", d.get("text"))))
            elif ev["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                e = p["entry"]
                out.append(f"log ({e.get('source')}): {e.get('text')} {e.get('url', '')}".strip())
        return out

    def screenshot(self, path: str | os.PathLike[str], full_page: bool = True, max_height: int = 16000) -> None:
        """A PNG of the page; ``full_page`` resizes the viewport to the page's height (at most ``max_height``)."""
        width, height = self.evaluate("[window.innerWidth, window.innerHeight]")
        if full_page:
            full = self.evaluate("document.documentElement.scrollHeight")
            self.send("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": min(full, max_height), "deviceScaleFactor": 1, "mobile": False})
            self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))",
                          await_promise=True)
        try:
            data = self.send("Page.captureScreenshot", {"format": "png"}, timeout=60)["data"]
        finally:
            if full_page:
                self.send("Emulation.setDeviceMetricsOverride",
                          {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(base64.b64decode(data))
