"""Tests of tools/codemod_record.py: old ``checks.record`` keyword calls rewritten to ``evidence=`` and
``checks.chapter``; the rewritten chapter records exactly what the old one did."""
from __future__ import annotations

import ast
import importlib.util
import json
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from lmcnb import checks

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("codemod_record", ROOT / "tools" / "codemod_record.py")
codemod = importlib.util.module_from_spec(_spec)
sys.modules["codemod_record"] = codemod
_spec.loader.exec_module(codemod)

OLD = [
    'import sys\nif "google.colab" in sys.modules:\n    %pip install -q lmcnb',
    "import lmcnb\nfrom lmcnb import checks\nS = lmcnb.setup(seed=0, verbose=False)\nx = 0.25",
    'CH = "01_demo"\nEV = dict(why={"control": "no control yet", "n": "not recorded"})\n'
    'KW = dict(source="S", status="derived", chapter=CH)\n'
    'MIX = dict(source="M", status="derived", why={"control": "none"}, chapter=CH)',
    # every form a chapter used: **EV alone, **EV with per-check fields, inline evidence, **KW, mixed helpers
    'checks.record("a", x, "<= 0.5", x <= 0.5, source="S", status="derived", **EV, chapter="01_demo")\n'
    'r = checks.record(\n    "b – ≤ text",\n    x,\n    "<= 0.5",\n    x <= 0.5,\n    source="S",\n'
    '    status="calibrated",\n    **EV,\n    threshold=0.5,\n    chapter=CH,\n)\n'
    'checks.record("c", x, "< 1", x < 1, threshold=1, n=(3, "seeds"),\n'
    '              control=("identity matcher", 1.0, False), **KW)\n'
    'checks.record("d", x, "<= 1", x <= 1, n=(2, "runs"), verbose=True, **MIX)',
    'for k in range(2):\n    checks.record(\n        f"reported {k}", x, "x > 0", None,\n'
    '        status="reported",\n        verdict=("consistent" if x > 0\n                 else "inconclusive"),\n'
    '        source="S", chapter="01_demo",\n        n=(k + 1, "pairs"),\n'
    '        interval=(0.1, 0.4, 0.95, "bootstrap over a rather long description of pairs"),\n    )',
]


def migrate(sources, stem="01_demo"):
    return codemod.migrate_sources(list(sources), stem)


def old_api():
    """A ``checks`` whose ``record`` takes the old keywords (the reference the rewrite must reproduce)."""
    def record(claim, measured, predicted, passed, *, source, status, chapter="", verdict=None, verbose=True,
               **ev):
        checks.chapter(chapter)
        return checks.record(claim, measured, predicted, passed, source=source, status=status, verdict=verdict,
                             evidence=checks.Evidence(**ev))

    shim = types.SimpleNamespace(**{n: getattr(checks, n) for n in dir(checks) if not n.startswith("__")})
    shim.record = record
    return shim


def run(sources, api, monkeypatch):
    """Execute the cells (magics skipped) with ``from lmcnb import checks`` bound to ``api``; the records."""
    monkeypatch.setattr(checks, "_CHAPTER", [])
    fake = types.ModuleType("lmcnb_fake")
    fake.checks, fake.setup = api, lambda **kw: None
    monkeypatch.setitem(sys.modules, "lmcnb", fake)
    before = len(checks.results())
    namespace: dict = {}
    for src in sources:
        exec(compile(codemod._mask(src), "<cell>", "exec"), namespace)
    return [r.to_dict() for r in checks.results()[before:]]


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.delenv("LMCNB_RESULTS_DIR", raising=False)
    monkeypatch.delenv("LMCNB_CHECKS_ENFORCE", raising=False)


def test_rewritten_chapter_records_what_the_old_one_did(monkeypatch, capsys):
    new = migrate(OLD)
    old_records = run(OLD, old_api(), monkeypatch)
    old_out = capsys.readouterr().out
    new_records = run(new, checks, monkeypatch)
    assert new_records == old_records and len(new_records) == 6
    assert capsys.readouterr().out == old_out  # the printed lines too
    assert {r["chapter"] for r in new_records} == {"01_demo"}
    assert json.dumps(new_records) == json.dumps(old_records)  # same key order, e.g. of ``why``


def test_rewrite_uses_the_new_api_only_and_fits_the_code_box():
    new = migrate(OLD)
    assert new[0] == OLD[0], "a cell without record calls (and its magic) is left alone"
    assert new[1] == OLD[1].replace("verbose=False)", 'verbose=False)\nchecks.chapter("01_demo")'), \
        "right after the set-up statement"
    for src in new:
        tree = ast.parse(codemod._mask(src))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "record":
                assert not {k.arg for k in node.keywords} & (set(checks.MOVED_KEYWORDS) - {None})
        assert all(len(ln) <= codemod.WIDTH for ln in src.splitlines()), src
    assert 'EV = checks.Evidence(why={"control": "no control yet", "n": "not recorded"})' in new[2]
    assert 'KW = dict(source="S", status="derived")' in new[2]
    assert 'MIX = dict(source="M", status="derived")\nMIX_EV = checks.Evidence(why={"control": "none"})' in new[2]
    assert '    status="derived",\n    evidence=EV,\n)' in new[3], "too long for one line: one argument a line"
    assert '    status="calibrated",\n    evidence=EV.replace(threshold=0.5),\n)' in new[3]
    assert ('    evidence=checks.Evidence(\n        threshold=1,\n        n=(3, "seeds"),\n'
            '        control=("identity matcher", 1.0, False),\n    ),\n    **KW,\n)') in new[3]
    assert '    evidence=MIX_EV.replace(n=(2, "runs")),\n    **MIX,\n)' in new[3]
    assert 'verdict=("consistent" if x > 0\n                 else "inconclusive"),' in new[4], \
        "grouping parentheses and their layout are kept"
    assert '        evidence=checks.Evidence(\n            n=(k + 1, "pairs"),\n            interval=(\n' in new[4]


def test_idempotent_and_leaves_new_calls_alone():
    new = migrate(OLD)
    assert migrate(new) == new
    done = ['from lmcnb import checks\nchecks.chapter("02_x")\nKW = dict(source="s", status="derived")',
            'checks.record("a", 1, 1, True, **KW,\n   evidence=checks.Evidence(n=(1, "r")))']
    assert migrate(done, "02_x") == done
    assert migrate(["print(1)"], "02_x") == ["print(1)"]
    # an old-form call added to a migrated chapter (a parallel edit) is rewritten against the migrated helper
    late = new + ['checks.record("e", x, "<= 1", x <= 1, source="S", status="derived", **EV, chapter=CH)']
    assert migrate(late)[:-1] == new
    assert migrate(late)[-1] == ('checks.record(\n    "e",\n    x,\n    "<= 1",\n    x <= 1,\n    source="S",\n'
                                 '    status="derived",\n    evidence=EV,\n)')


def test_chapter_is_placed_and_named():
    plain = ["from lmcnb import checks\nimport numpy as np\n\nx = 1",
             'checks.record("a", 1, 1, True, source="s", status="derived", n=(1, "r"), chapter="03_lit")']
    new = migrate(plain, "03_stem")
    assert new[0] == 'from lmcnb import checks\nimport numpy as np\nchecks.chapter("03_lit")\n\nx = 1', \
        "after the import block; the old calls' literal wins over the file stem"
    unnamed = ['from lmcnb import checks', 'checks.record("a", 1, 1, True, source="s", status="derived")']
    assert migrate(unnamed, "03_stem")[0] == 'from lmcnb import checks\nchecks.chapter("03_stem")'
    assert migrate(unnamed, "03_stem")[1] == unnamed[1], "a call without old keywords stays as it is"
    declared = ['from lmcnb import checks\nchecks.chapter("03_stem")', plain[1]]
    assert migrate(declared, "03_stem")[0] == declared[0], "an existing checks.chapter is kept"
    same_cell = ['from lmcnb import checks\nchecks.record("a", 1, 1, True, source="s", status="d", chapter="c")']
    assert migrate(same_cell, "c")[0].startswith('from lmcnb import checks\nchecks.chapter("c")\nchecks.record(')
    with pytest.raises(codemod.CodemodError, match="no cell imports checks"):
        migrate(['import lmcnb.checks\nchecks.record("a", 1, 1, True, source="s", status="d", chapter="c")'], "c")


@pytest.mark.parametrize("call, match", [
    ('checks.record("a", 1, 1, True, source="s", status="d", verbose=False)', "verbose"),
    ('checks.record("a", 1, 1, True, source="s", status="d", cell="c1")', "cell="),
])
def test_refuses_what_it_cannot_rewrite_faithfully(call, match):
    with pytest.raises(codemod.CodemodError, match=match):
        migrate(["from lmcnb import checks", call])


def test_refuses_a_helper_with_foreign_keys():
    with pytest.raises(codemod.CodemodError, match=r"P = dict\(...\).*\['arch'\]"):
        migrate(["from lmcnb import checks\nP = dict(arch=3, n=(1, 'r'))",
                 'checks.record("a", 1, 1, True, source="s", status="d", **P)'])
    # a dict that no record call unpacks is not a helper, whatever it holds
    other = ["from lmcnb import checks\nP = dict(arch=3, n=500)", "print(P)"]
    assert migrate(other) == other


def test_long_arguments_are_laid_out_anew():
    src = ["from lmcnb import checks\nchecks.chapter('c')",
           'checks.record("a", 1, 1, True, source="s", status="d",\n'
           '              control=("a rather long label of the control variant", 0.5, False))']
    new = migrate(src, "c")[1]
    assert all(len(ln) <= codemod.WIDTH for ln in new.splitlines())
    assert new == ('checks.record(\n    "a",\n    1,\n    1,\n    True,\n    source="s",\n    status="d",\n'
                   '    evidence=checks.Evidence(\n'
                   '        control=("a rather long label of the control variant", 0.5, False),\n    ),\n)')


def test_notebook_file_keeps_ids_metadata_and_outputs(tmp_path, capsys):
    cells = [new_markdown_cell("# t"), *(new_code_cell(s) for s in OLD)]
    cells[4].outputs = [new_output("stream", name="stdout", text="a: measured 0.25 vs predicted <= 0.5: PASS\n")]
    cells[4].metadata["tags"] = ["keep-me"]
    nb = new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3"}})
    path = tmp_path / "01_demo.ipynb"
    nbformat.write(nb, path)
    before = path.read_text(encoding="utf-8")
    assert codemod.main(["--check", str(path)]) == 1 and path.read_text(encoding="utf-8") == before
    assert codemod.migrate_notebook(path, write=False) and path.read_text(encoding="utf-8") == before
    assert codemod.main([str(path)]) == 0
    after = json.loads(path.read_text(encoding="utf-8"))
    old = json.loads(before)
    assert old["metadata"] == after["metadata"] and len(old["cells"]) == len(after["cells"])
    for a, b in zip(old["cells"], after["cells"]):
        assert {k: v for k, v in a.items() if k != "source"} == {k: v for k, v in b.items() if k != "source"}
    assert ["".join(c["source"]) for c in after["cells"][1:]] == migrate(OLD)
    nbformat.validate(nbformat.reads(path.read_text(encoding="utf-8"), as_version=4))
    assert codemod.main(["--check", str(path)]) == 0, "a second run changes nothing"
    bad = tmp_path / "bad.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("from lmcnb import checks\n"
                                                     "checks.record('a', 1, 1, True, source='s', status='d', "
                                                     "cell='x')")]), bad)
    assert codemod.main([str(bad)]) == 2 and "cell=" in capsys.readouterr().err


def test_book_chapters_are_migrated():
    """The stored chapters use the new API (the integrator reruns the codemod after merges)."""
    assert codemod.main(["--check", *map(str, sorted((ROOT / "book").glob("*.ipynb")))]) == 0
