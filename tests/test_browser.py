"""The book as a reader sees it: every page of the built HTML loaded over file:// in headless Chromium.

Per page: every formula rendered by MathJax (no raw TeX left in the text), every image loaded, every internal
link and cross-reference resolving (target file and #anchor exist), every prf block numbered, no console errors
or uncaught exceptions, and no horizontal overflow at a 1280-px window (the page, code boxes and tables).
A full-page screenshot of each page is saved under ``_build/screenshots/`` (``index`` and chapters by stem).

The book: the test builds it itself into a temporary folder (``jupyter-book build`` without execution, about
10 s), so it always checks the current sources whatever ``make`` ran before; ``LMCNB_BOOK_HTML=_build/html``
checks an existing build instead. The browser: Debian's ``chromium`` (``.ci/run`` installs it), driven over the
DevTools protocol by ``tests/cdp.py`` (standard library only). Without a browser the test is skipped with a
loud reason, except under ``CI=true``, where a missing browser fails.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp import Browser, find_chromium  # noqa: E402
from nblint import CODE_WIDTH  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "_build" / "screenshots"
WIDTH, HEIGHT = 1280, 900
#: Raw TeX that MathJax should have replaced (outside code).
RAW_TEX = re.compile(r"\\\(|\\\)|\\\[|\\\]|\$\$|\\begin\{|\\frac|\\mathbb|\\mathcal|\\sum_|\\operatorname")


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def chromium() -> str:
    path = find_chromium()
    if path:
        return path
    msg = ("NO BROWSER: Chromium not found, the HTML book was NOT checked in a browser. "
           "Install it with `apt-get install -y chromium` (as .ci/run does) or set $CHROMIUM.")
    if _in_ci():
        pytest.fail(msg + " CI=true: a missing browser is a failure.")
    print("\n" + "!" * 100 + "\n" + msg + "\n" + "!" * 100, file=sys.stderr)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def html_dir(tmp_path_factory, chromium) -> Path:
    given = os.environ.get("LMCNB_BOOK_HTML", "").strip()
    if given:
        path = Path(given).resolve()
        assert (path / "index.html").is_file(), f"LMCNB_BOOK_HTML={given}: no index.html there (run `make book`)"
        return path
    out = tmp_path_factory.mktemp("book")
    jb = Path(sys.executable).with_name("jupyter-book")
    cmd = [str(jb) if jb.exists() else "jupyter-book", "build", str(ROOT), "--all", "-W", "--keep-going",
           "--path-output", str(out)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"jupyter-book build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return out / "_build" / "html"


def pages(html: Path) -> list[Path]:
    skip = ("_static", "_sources", "_images", "_sphinx_design_static", "reports")
    return sorted(p for p in html.rglob("*.html") if not set(p.relative_to(html).parts[:-1]) & set(skip))


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key == "id" or (key == "name" and tag == "a"):
                self.ids.add(value or "")


_ID_CACHE: dict[Path, set[str]] = {}


def anchors(path: Path) -> set[str]:
    if path not in _ID_CACHE:
        parser = _Ids()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        _ID_CACHE[path] = parser.ids
    return _ID_CACHE[path]


# One JavaScript pass per page, after MathJax has typeset and every image has loaded (or failed).
PAGE_REPORT = r"""
(async () => {
  if (typeof MathJax !== 'undefined' && MathJax.startup) { await MathJax.startup.promise; }
  const imgs = [...document.images];
  imgs.forEach(i => { i.loading = 'eager'; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => {
    i.addEventListener('load', r); i.addEventListener('error', r); setTimeout(r, 5000); })));
  const article = document.querySelector('article') || document.body;
  const clone = article.cloneNode(true);
  clone.querySelectorAll('pre, code, script, style, mjx-container, .highlight').forEach(e => e.remove());
  const maths = [...document.querySelectorAll('.math')];
  const visible = e => e.getClientRects().length > 0;
  const overflow = [...document.querySelectorAll('article *')].filter(e => visible(e)
      && e.scrollWidth > e.clientWidth + 1 && e.clientWidth > 0
      && ['auto', 'scroll'].includes(getComputedStyle(e).overflowX))
    .map(e => `${e.tagName.toLowerCase()}.${[...e.classList].join('.')}: ${e.scrollWidth} px > ${e.clientWidth} px`
              + ` (${(e.innerText || '').trim().slice(0, 60).replace(/\s+/g, ' ')})`);
  const pre = document.querySelector('div.cell_input pre');
  let codeChars = null;
  if (pre) {
    const cs = getComputedStyle(pre);
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = cs.font;
    const ch = ctx.measureText('x'.repeat(100)).width / 100;
    codeChars = Math.floor((pre.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight)) / ch);
  }
  return {
    text: clone.innerText,
    math: maths.length,
    mathUnrendered: maths.filter(m => !m.querySelector('mjx-container')).map(m => m.textContent.slice(0, 80)),
    mathErrors: [...document.querySelectorAll('mjx-merror')].map(e => e.textContent.slice(0, 80)),
    images: imgs.map(i => [i.getAttribute('src'), i.complete && i.naturalWidth > 0]),
    links: [...document.querySelectorAll('a[href]')].map(a => a.href).filter(h => h.startsWith('file:')),
    prf: [...document.querySelectorAll('div.proof')].filter(d => !d.classList.contains('proof-type-proof')
           && !/^Proof\b/.test((d.querySelector('.admonition-title') || {}).textContent || ''))
         .map(d => [(d.querySelector('.admonition-title') || {}).textContent || '',
                    !!d.querySelector('.admonition-title .caption-number')]),
    pageWidth: [document.documentElement.scrollWidth, document.documentElement.clientWidth],
    overflow: overflow,
    codeChars: codeChars,
  };
})()
"""


REFRESH = re.compile(r'<meta http-equiv="refresh" content="\d+;\s*url=([^"]+)"', re.I)


def check_page(page, html: Path, path: Path) -> tuple[list[str], dict]:
    rel = path.relative_to(html).as_posix()
    redirect = REFRESH.search(path.read_text(encoding="utf-8", errors="replace"))
    if redirect:  # the root index.html only redirects to the first page: check where it points
        target = (path.parent / unquote(redirect.group(1).split("#")[0])).resolve()
        ok = target.is_file()
        return ([] if ok else [f"{rel}: redirect to a missing page {redirect.group(1)}"]), \
            {"math": 0, "images": [], "links": [redirect.group(1)], "prf": []}
    page.goto(path.as_uri())
    r = page.evaluate(PAGE_REPORT, await_promise=True, timeout=60)
    problems = []
    raw = sorted({m.group(0) for m in RAW_TEX.finditer(r["text"])})
    if raw:
        problems.append(f"raw TeX in the rendered text: {raw}")
    problems += [f"formula not rendered by MathJax: {t!r}" for t in r["mathUnrendered"]]
    problems += [f"MathJax error: {t!r}" for t in r["mathErrors"]]
    problems += [f"image does not load: {src}" for src, ok in r["images"] if not ok]
    for href in r["links"]:
        parts = urlsplit(href)
        target = Path(unquote(parts.path))
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            problems.append(f"broken link: {href} (no such file)")
        elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors(target):
            problems.append(f"broken anchor: {href} (no id {parts.fragment!r} in {target.name})")
    problems += [f"prf block without its number: {title.strip()[:80]!r}" for title, ok in r["prf"] if not ok]
    problems += [f"console: {e}" for e in page.console_errors()]
    if r["pageWidth"][0] > r["pageWidth"][1]:
        problems.append(f"page scrolls horizontally: {r['pageWidth'][0]} px > {r['pageWidth'][1]} px")
    problems += [f"horizontal scrollbar: {o}" for o in r["overflow"]]
    if r["codeChars"] is not None and r["codeChars"] < CODE_WIDTH:
        problems.append(f"a code box fits {r['codeChars']} characters < CODE_WIDTH = {CODE_WIDTH} "
                        "(tools/nblint.py): lower CODE_WIDTH and rewrap the chapters")
    stem = "index" if rel == "index.html" else Path(rel).with_suffix("").name
    page.screenshot(SCREENSHOTS / f"{stem}.png")
    return [f"{rel}: {p}" for p in problems], r


def test_every_page_in_a_browser(html_dir, chromium):
    files = pages(html_dir)
    names = {p.relative_to(html_dir).as_posix() for p in files}
    assert "book/intro.html" in names and "book/08_scoreboard.html" in names, sorted(names)
    problems, stats, start = [], {"math": 0, "images": 0, "links": 0, "prf": 0}, time.monotonic()
    with Browser.launch(chromium) as browser:
        page = browser.new_page(WIDTH, HEIGHT)
        for path in files:
            found, r = check_page(page, html_dir, path)
            problems += found
            for key in stats:
                stats[key] += r[key] if key == "math" else len(r[key])
    print(f"\nbrowser check: {len(files)} pages, {stats['math']} formulas, {stats['images']} images, "
          f"{stats['links']} internal links, {stats['prf']} numbered prf blocks in {time.monotonic() - start:.1f} s; "
          f"screenshots in {SCREENSHOTS}")
    assert stats["math"] > 100 and stats["images"] > 10 and stats["prf"] > 10, stats
    assert not problems, f"{len(problems)} problems in the HTML book:\n" + "\n".join(problems)
