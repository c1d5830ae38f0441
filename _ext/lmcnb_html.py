"""Local Sphinx extension: two fixes to the HTML theme stack so that a page logs no console errors.

1. sphinx-thebe adds its inline configuration script (``const THEBE_JS_URL = ...``) twice to every page under
   Jupyter Book 1.0.4 (Sphinx 7.4); the second copy throws "Identifier 'THEBE_JS_URL' has already been
   declared". Identical script entries are dropped here, keeping the first.
2. pydata-sphinx-theme 0.17 logs "Got invalid theme mode: ." when the template variable ``default_mode`` is
   empty, which it is under sphinx-book-theme; it is set to ``auto`` (what the theme then falls back to anyway)
   unless ``html_context`` sets one.

``tests/test_browser.py`` fails on any console error, so a regression here is caught.
"""
from __future__ import annotations


def _script_key(script) -> tuple:
    attrs = getattr(script, "attributes", {}) or {}
    # An inline script's filename is None or "" depending on who added it: both mean "no file".
    return (str(getattr(script, "filename", script) or ""), tuple(sorted((k, str(v)) for k, v in attrs.items())))


def _dedupe_scripts(context) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen, kept = set(), []
    for script in scripts:
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            kept.append(script)
    scripts[:] = kept


def _page_context(app, pagename, templatename, context, doctree) -> None:
    _dedupe_scripts(context)
    if not context.get("default_mode"):
        context["default_mode"] = "auto"


def setup(app):
    # After the themes and sphinx-thebe have filled in the page context.
    app.connect("html-page-context", _page_context, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
