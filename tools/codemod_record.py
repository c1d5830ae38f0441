"""Rewrite chapters written for the old ``checks.record`` keyword form to the current API (idempotent).

Usage::

    python tools/codemod_record.py book/*.ipynb           # rewrite in place; prints the notebooks it changed
    python tools/codemod_record.py --check book/*.ipynb   # change nothing; exit status 1 if any would change

The old form passed every evidence field and the chapter to ``record`` itself (17 parameters)::

    EV = dict(why={"control": "none yet"})
    checks.record("claim", m, "<= 1", m <= 1, source="S", status="derived",
                  **EV, n=(3, "seeds"), chapter="06_lewc")

The new form groups the evidence in a ``checks.Evidence`` and sets the chapter once::

    checks.chapter("06_lewc")                      # inserted after the set-up call
    EV = checks.Evidence(why={"control": "none yet"})
    checks.record("claim", m, "<= 1", m <= 1, source="S", status="derived",
                  evidence=EV.replace(n=(3, "seeds")))

What is rewritten, in the sources of code cells only (cell ids, metadata and stored outputs stay as they are):

- every ``checks.record(...)`` call that passes an old keyword (``chapter=``, ``threshold=``, ``margin=``,
  ``paper=``, ``n=``, ``interval=``, ``control=``, ``why=``, ``verbose=True``) or unpacks a helper holding
  evidence (``**EV``): its evidence keywords become one ``evidence=`` argument, ``chapter=`` is dropped;
- every helper ``NAME = dict(...)`` that some ``checks.record`` call unpacks (``**NAME``): evidence only becomes
  ``NAME = checks.Evidence(...)`` (the calls pass ``evidence=NAME``); ``source``/``status``/``verdict`` only
  stays a ``dict`` without ``chapter=`` (the calls keep ``**NAME``); both split into ``NAME = dict(...)`` and
  ``NAME_EV = checks.Evidence(...)``; an old call unpacking a helper already rewritten to ``checks.Evidence``
  (a call added after the migration) passes ``evidence=NAME`` too;
- a notebook with ``checks.record`` calls and no ``checks.chapter(...)`` gets ``checks.chapter("<chapter>")``
  after its ``lmcnb.setup(...)`` statement (or after the import that binds ``checks``); ``<chapter>`` is the
  literal its old calls passed, else the notebook's file stem.

Unchanged arguments keep their source text; a rewritten call is written on one line if it fits in
``WIDTH`` (77) characters, else one argument per line (black's layout). Calls already in the new form are left
alone, so running the codemod twice changes nothing the second time. A call it cannot rewrite faithfully
(``verbose=False``, ``cell=``, an unpacked ``dict(...)`` helper holding other keywords) raises
:class:`CodemodError` naming the cell and line; nothing is written then. ``tests/test_codemod_record.py`` tests it.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

WIDTH = 77
EVIDENCE_KEYS = ("threshold", "margin", "paper", "n", "interval", "control", "why")
RECORD_KEYS = ("source", "status", "verdict")
_SETUP_FUNCS = ("setup",)


class CodemodError(ValueError):
    """A call or helper the codemod cannot rewrite without changing what the chapter does."""


# --- source positions ----------------------------------------------------------------------------------------

def _mask(source: str) -> str:
    """``source`` with IPython magics / shell lines turned into ``pass`` (same lines, same columns elsewhere)."""
    out = []
    for line in source.split("\n"):
        body = line.lstrip()
        out.append(line[:len(line) - len(body)] + "pass" if body.startswith(("%", "!")) else line)
    return "\n".join(out)


@dataclass
class _Cell:
    index: int
    source: str
    tree: ast.Module | None
    lines: list[str] = field(default_factory=list)
    edits: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, text) as string offsets

    def __post_init__(self):
        self.lines = self.source.split("\n")
        self._starts = [0]
        for ln in self.lines:
            self._starts.append(self._starts[-1] + len(ln) + 1)

    def offset(self, lineno: int, col: int) -> int:
        """String offset of ast position (1-based line, UTF-8 byte column)."""
        line = self.lines[lineno - 1]
        return self._starts[lineno - 1] + len(line.encode("utf-8")[:col].decode("utf-8"))

    def col(self, lineno: int, col: int) -> int:
        """Character column of an ast byte column."""
        return len(self.lines[lineno - 1].encode("utf-8")[:col].decode("utf-8"))

    def span(self, node: ast.AST) -> tuple[int, int]:
        return self.offset(node.lineno, node.col_offset), self.offset(node.end_lineno, node.end_col_offset)

    def text(self, node: ast.AST) -> str:
        a, b = self.span(node)
        return self.source[a:b]

    def indent(self, lineno: int) -> int:
        line = self.lines[lineno - 1]
        return len(line) - len(line.lstrip())

    def where(self, node: ast.AST) -> str:
        return f"code cell {self.index} line {node.lineno}"


# --- layout --------------------------------------------------------------------------------------------------

@dataclass
class _Seg:
    """An argument's original source text, which started at column ``start`` of a line indented ``indent``."""

    text: str
    start: int = 0
    indent: int = 0
    call: "_Call | None" = None  # the same call or tuple, laid out anew when its own text does not fit

    def placed(self, start: int, indent: int) -> str:
        """The text moved to column ``start`` of a line indented ``indent``: continuation lines aligned under
        the text's start move with it, lines indented from the line's indentation (black) move with that."""
        first, *rest = self.text.split("\n")
        if not rest or '"""' in self.text or "'''" in self.text:
            return self.text
        lowest = min((len(ln) - len(ln.lstrip()) for ln in rest if ln.strip()), default=0)
        delta = start - self.start if lowest >= self.start else indent - self.indent
        return "\n".join([first] + [_shift(ln, delta) for ln in rest])


@dataclass
class _Call:
    func: str
    args: list[tuple[str, _Seg | _Call]]  # (prefix such as "n=" or "**" or "", value)


def _flat(value: _Seg | _Call) -> str | None:
    if isinstance(value, _Seg):
        return None if "\n" in value.text else value.text
    parts = [_flat(v) for _, v in value.args]
    if any(p is None for p in parts):
        return None
    return value.func + "(" + ", ".join(pre + p for (pre, _), p in zip(value.args, parts)) + ")"


def _shift(line: str, delta: int) -> str:
    body = line.lstrip()
    return " " * max(0, len(line) - len(body) + delta) + body if body else line


def _fits(text: str, col: int, tail: int = 0) -> bool:
    lines = text.split("\n")
    return (col + len(lines[0]) + (tail if len(lines) == 1 else 0) <= WIDTH
            and all(len(ln) <= WIDTH for ln in lines[1:-1])
            and (len(lines) == 1 or len(lines[-1]) + tail <= WIDTH))


def _render(call: _Call, col: int, indent: int, tail: int) -> str:
    """``call`` laid out starting at column ``col``; continuation lines at ``indent`` (+4 inside the brackets);
    ``tail`` characters follow the closing bracket on its line."""
    flat = _flat(call)
    if flat is not None and col + len(flat) + tail <= WIDTH:
        return flat
    inner = indent + 4
    out = [call.func + "("]
    for prefix, value in call.args:
        col = inner + len(prefix)
        text = _flat(value)
        if text is not None and col + len(text) + 1 <= WIDTH:
            pass
        elif isinstance(value, _Call):
            text = _render(value, col, inner, 1)
        else:
            text = value.placed(col, inner)
            if not _fits(text, col, 1) and value.call is not None:
                text = _render(value.call, col, inner, 1)
        out.append(" " * inner + prefix + text + ",")
    out.append(" " * indent + ")")
    return "\n".join(out)


# --- the rewrite ---------------------------------------------------------------------------------------------

def _is_call(node: ast.AST, attr: str, receiver: str = "checks") -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == attr
            and isinstance(node.func.value, ast.Name) and node.func.value.id == receiver)


def _helper(node: ast.AST) -> tuple[str, ast.Call] | None:
    """``NAME = dict(k=v, ...)`` (keywords only) as (NAME, the call)."""
    if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Name)
            and node.value.func.id == "dict" and not node.value.args
            and all(k.arg is not None for k in node.value.keywords)):
        return node.targets[0].id, node.value
    return None


def _grouped(cell: _Cell, node: ast.AST) -> tuple[int, int]:
    """The span of ``node`` with the grouping parentheses around it (``verdict=("a" if x else "b")``)."""
    src = cell.source
    a, b = cell.span(node)
    while True:
        i = a - 1
        while i >= 0 and src[i] in " \t\n":
            i -= 1
        j = b
        while j < len(src) and src[j] in " \t\n":
            j += 1
        k = i - 1
        while k >= 0 and src[k] in " \t\n":
            k -= 1
        if i >= 0 and src[i] == "(" and j < len(src) and src[j] == ")" and (k < 0 or src[k] in "=,([{:"):
            a, b = i, j + 1
        else:
            return a, b


def _seg(cell: _Cell, node: ast.AST) -> _Seg:
    a, b = _grouped(cell, node)
    text, call = cell.source[a:b], None
    line = cell.source.count("\n", 0, a)
    start = a - cell._starts[line]
    if isinstance(node, ast.Call):
        args = [("", _seg(cell, a)) for a in node.args]
        args += [("**" if k.arg is None else k.arg + "=", _seg(cell, k.value)) for k in node.keywords]
        call = _Call(cell.text(node.func), args)
    elif isinstance(node, ast.Tuple) and len(node.elts) > 1 and text == cell.text(node) and text[0] == "(":
        call = _Call("", [("", _seg(cell, e)) for e in node.elts])
    if isinstance(node, ast.Call) and text != cell.text(node):
        call = None  # keep the grouping parentheses
    return _Seg(text, start, cell.indent(line + 1), call)


def _parse(index: int, source: str) -> _Cell:
    try:
        tree = ast.parse(_mask(source))
    except SyntaxError:
        tree = None
    return _Cell(index, source, tree)


def migrate_sources(sources: list[str], stem: str) -> list[str]:
    """The code-cell ``sources`` of one notebook (in order) rewritten to the current ``checks.record`` API.

    ``stem`` is the notebook's file stem, the chapter named when the old calls name none. Raises
    :class:`CodemodError` for a call or helper it cannot rewrite faithfully."""
    cells = [_parse(i, s) for i, s in enumerate(sources, 1)]
    calls: list[tuple[_Cell, ast.Call]] = []
    helpers: dict[str, list[tuple[_Cell, ast.Assign, ast.Call]]] = {}
    literals: dict[str, set] = {}
    migrated: set[str] = set()  # names already bound to a checks.Evidence(...)
    has_chapter = False
    for cell in cells:
        for node in ast.walk(cell.tree) if cell.tree else []:
            if _is_call(node, "record"):
                calls.append((cell, node))
            elif _is_call(node, "chapter"):
                has_chapter = True
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                    and isinstance(node.value.func, ast.Attribute) and node.value.func.attr == "Evidence"):
                migrated.update(t.id for t in node.targets if isinstance(t, ast.Name))
            found = _helper(node)
            if found:
                helpers.setdefault(found[0], []).append((cell, node, found[1]))
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        literals.setdefault(t.id, set()).add(node.value.value)
    if not calls:
        return list(sources)

    # which helpers the calls unpack, and what they hold
    unpacked = {k.value.id for _, c in calls for k in c.keywords
                if k.arg is None and isinstance(k.value, ast.Name)}
    kinds: dict[str, str] = {}
    chapters: set = set()
    for name in sorted(unpacked & set(helpers)):
        keys = {k.arg for _, _, call in helpers[name] for k in call.keywords}
        strange = sorted(keys - set(EVIDENCE_KEYS) - set(RECORD_KEYS) - {"chapter"})
        if strange:
            cell, node, _ = helpers[name][0]
            raise CodemodError(f"{cell.where(node)}: {name} = dict(...) is unpacked into checks.record but holds "
                               f"{strange}, which record never took")
        ev, rec = keys & set(EVIDENCE_KEYS), keys & set(RECORD_KEYS)
        kinds[name] = "mixed" if ev and rec else "evidence" if ev else "record"
        for cell, _, call in helpers[name]:
            chapters |= {_literal(k.value, literals) for k in call.keywords if k.arg == "chapter"}

    for name in sorted(unpacked & migrated - set(helpers)):  # an old call unpacking a migrated helper
        kinds[name] = "evidence"
    for cell, call in calls:
        chapters |= {_literal(k.value, literals) for k in call.keywords if k.arg == "chapter"}
        _rewrite_call(cell, call, kinds)
    for name, kind in kinds.items():
        for cell, node, call in helpers.get(name, []):
            _rewrite_helper(cell, node, call, kind)
    chapters.discard(None)
    if not has_chapter:
        _declare_chapter(cells, calls, chapters.pop() if len(chapters) == 1 else stem)
    return [_apply(cell) for cell in cells]


def _literal(node: ast.AST, literals: dict[str, set]) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and len(literals.get(node.id, ())) == 1:
        return next(iter(literals[node.id]))
    return None


def _rewrite_call(cell: _Cell, call: ast.Call, kinds: dict[str, str]) -> None:
    receiver = call.func.value.id
    args: list[tuple[str, _Seg | _Call]] = [("", _seg(cell, a)) for a in call.args]
    items: list[tuple[str, _Seg | _Call]] = []
    base: str | None = None
    slot: int | None = None
    changed = False
    for k in call.keywords:
        if k.arg == "chapter":
            changed = True
        elif k.arg == "verbose":
            if not (isinstance(k.value, ast.Constant) and k.value.value is True):
                raise CodemodError(f"{cell.where(k)}: checks.record(verbose=...) other than True: the record "
                                   "now always prints its line; rewrite this call by hand")
            changed = True
        elif k.arg == "cell":
            raise CodemodError(f"{cell.where(k)}: checks.record(cell=...): the runners fill in the cell now; "
                               "rewrite this call by hand")
        elif k.arg in EVIDENCE_KEYS:
            items.append((k.arg + "=", _seg(cell, k.value)))
            slot = len(args) if slot is None else slot
            changed = True
        elif k.arg == "evidence":
            base = cell.text(k.value)
            slot = len(args) if slot is None else slot
        elif k.arg is None and isinstance(k.value, ast.Name) and kinds.get(k.value.id) in ("evidence", "mixed"):
            if kinds[k.value.id] == "mixed":
                args.append(("**", _seg(cell, k.value)))
            base = k.value.id + ("_EV" if kinds[k.value.id] == "mixed" else "")
            slot = len(args) if slot is None else slot
            changed = True
        else:
            args.append(("**" if k.arg is None else k.arg + "=", _seg(cell, k.value)))
    if not changed:
        return
    if slot is not None:
        if base is None:
            evidence: _Seg | _Call = _Call(f"{receiver}.Evidence", items)
        elif items:
            evidence = _Call(f"{base}.replace", items)
        else:
            evidence = _Seg(base)
        args.insert(slot, ("evidence=", evidence))
    start, end = cell.span(call)
    col = cell.col(call.lineno, call.col_offset)
    tail = len(cell.lines[call.end_lineno - 1]) - cell.col(call.end_lineno, call.end_col_offset)
    text = _render(_Call(cell.text(call.func), args), col, cell.indent(call.lineno), tail)
    cell.edits.append((start, end, text))


def _rewrite_helper(cell: _Cell, node: ast.Assign, call: ast.Call, kind: str) -> None:
    name = node.targets[0].id
    keep = [k for k in call.keywords if k.arg != "chapter"]
    indent = cell.indent(node.lineno)
    col = cell.col(node.lineno, node.col_offset)
    ev = [(k.arg + "=", _seg(cell, k.value)) for k in keep if k.arg in EVIDENCE_KEYS]
    rec = [(k.arg + "=", _seg(cell, k.value)) for k in keep if k.arg not in EVIDENCE_KEYS]
    start, end = cell.span(node)
    if kind == "record":
        if len(keep) == len(call.keywords):
            return
        text = f"{name} = " + _render(_Call("dict", rec), col + len(name) + 3, indent, 0)
    elif kind == "evidence" and len(keep) == len(call.keywords):
        # only the name changes; continuation lines aligned after ``dict(`` move with it
        grow = len("checks.Evidence") - len("dict")
        opening = cell.col(call.func.lineno, call.func.end_col_offset)
        text = cell.text(node).replace("dict(", "checks.Evidence(", 1)
        first, *rest = text.split("\n")
        rest = [_shift(ln, grow) if len(ln) - len(ln.lstrip()) > opening else ln for ln in rest]
        text = "\n".join([first, *rest])
        if _fits(text, col):
            cell.edits.append((start, end, text))
            return
        text = f"{name} = " + _render(_Call("checks.Evidence", ev), col + len(name) + 3, indent, 0)
    elif kind == "evidence":
        text = f"{name} = " + _render(_Call("checks.Evidence", ev), col + len(name) + 3, indent, 0)
    else:
        text = (f"{name} = " + _render(_Call("dict", rec), col + len(name) + 3, indent, 0) + "\n" + " " * indent
                + f"{name}_EV = " + _render(_Call("checks.Evidence", ev), indent + len(name) + 6, indent, 0))
    cell.edits.append((start, end, text))


def _binds_checks(stmt: ast.stmt) -> bool:
    if isinstance(stmt, ast.ImportFrom):
        return any((a.asname or a.name) == "checks" for a in stmt.names)
    if isinstance(stmt, ast.Import):
        return any(a.asname == "checks" for a in stmt.names)
    return False


def _is_setup(stmt: ast.stmt) -> bool:
    value = getattr(stmt, "value", None)
    return (isinstance(stmt, (ast.Assign, ast.Expr)) and isinstance(value, ast.Call)
            and isinstance(value.func, ast.Attribute) and value.func.attr in _SETUP_FUNCS)


def _declare_chapter(cells: list[_Cell], calls: list[tuple[_Cell, ast.Call]], chapter: str) -> None:
    """Insert ``checks.chapter(chapter)`` after the set-up statement of the first cell binding ``checks`` (or
    after the import block that binds it), before the first ``checks.record`` call."""
    receiver = calls[0][1].func.value.id
    for cell in cells:
        body = cell.tree.body if cell.tree else []
        binding = next((i for i, s in enumerate(body) if _binds_checks(s)), None)
        if binding is None:
            continue
        after = next((s for s in body[binding:] if _is_setup(s)), None)
        if after is None:
            j = binding
            while j + 1 < len(body) and isinstance(body[j + 1], (ast.Import, ast.ImportFrom)):
                j += 1
            after = body[j]
        first = min((c.lineno for cl, c in calls if cl is cell), default=None)
        if first is not None and first <= after.end_lineno:
            raise CodemodError(f"{cell.where(after)}: checks.record is called before the place the codemod "
                               "would set the chapter; add checks.chapter(...) by hand")
        _, end = cell.span(after)
        cell.edits.append((end, end, f"\n{receiver}.chapter({json.dumps(chapter)})"))
        return
    raise CodemodError(f"no cell imports checks at its top level (from lmcnb import checks): cannot place "
                       f"checks.chapter({chapter!r}); add it by hand")


def _apply(cell: _Cell) -> str:
    source = cell.source
    for start, end, text in sorted(cell.edits, key=lambda e: (e[0], e[1]), reverse=True):
        source = source[:start] + text + source[end:]
    if cell.edits:
        try:
            ast.parse(_mask(source))
        except SyntaxError as err:  # a defect of the codemod, never of the notebook
            raise CodemodError(f"code cell {cell.index}: the rewrite does not parse ({err})") from None
    return source


# --- notebooks -----------------------------------------------------------------------------------------------

def migrate_notebook(path: str | Path, write: bool = True) -> bool:
    """Rewrite notebook ``path`` (its code cells' sources only); return whether anything changed. The file is
    written only when it changed and ``write`` is true, in nbformat's own layout (indent 1, UTF-8)."""
    path = Path(path)
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    code = [c for c in nb.get("cells", []) if c.get("cell_type") == "code"]
    sources = ["".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in code]
    new = migrate_sources(sources, path.stem)
    changed = False
    for c, old, text in zip(code, sources, new):
        if text != old:
            c["source"] = text.splitlines(keepends=True) if isinstance(c["source"], list) else text
            changed = True
    if changed and write:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", help="chapter notebooks (.ipynb)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a notebook would change")
    args = parser.parse_args(argv)
    changed = []
    for nb in args.notebooks:
        try:
            if migrate_notebook(nb, write=not args.check):
                changed.append(nb)
        except CodemodError as err:
            print(f"{nb}: {err}", file=sys.stderr)
            return 2
    for nb in changed:
        print(("would rewrite " if args.check else "rewrote ") + nb)
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
