"""The package's layers, read from the imports: infra < toolkit < papers < experiments (GUIDE §5).

``lmcnb._validate`` (argument checks) is below them all. A module may import its own layer and the layers below it, never above: the toolkit never imports a paper's model
or an experiment, the papers' models never import an experiment, and the infrastructure imports no model at all.
Every ``import`` counts, including lazy ones inside functions. Also: the old flat module names are aliases of the
very same module objects, and names moved between modules fail with a message naming their new home.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import lmcnb

PACKAGE = Path(lmcnb.__file__).parent
RANK = {"base": -1, "infra": 0, "toolkit": 1, "papers": 2, "experiments": 3}


def _layer(module: str) -> str:
    parts = module.split(".")
    assert parts[0] == "lmcnb", module
    if len(parts) == 1:
        return "root"
    if parts[1] == "_validate":  # argument validators: below every layer, import nothing
        return "base"
    if parts[1] in ("infra", "papers", "experiments"):
        return parts[1]
    if parts[1] in lmcnb.MOVED:
        return _layer(lmcnb.MOVED[parts[1]])
    return "toolkit"


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path) -> set[str]:
    """Absolute names of the ``lmcnb`` modules (or their attributes) that ``module`` imports anywhere."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lmcnb"}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "lmcnb":
                continue
            found.add(target)
            # ``from lmcnb import matching`` / ``from ..papers import teacher_student``: the imported submodule
            found |= {f"{target}.{a.name}" for a in node.names
                      if (PACKAGE.parent / Path(*f"{target}.{a.name}".split("."))).with_suffix(".py").exists()
                      or (PACKAGE.parent / Path(*f"{target}.{a.name}".split("."))).is_dir()
                      or (target == "lmcnb" and a.name in lmcnb.MOVED)}
    return found


def _edges():
    for module, path in _modules().items():
        for target in _imports(module, path):
            yield module, target


def test_the_folders_hold_the_layers():
    modules = _modules()
    assert {m for m in modules if _layer(m) == "infra"} >= {"lmcnb.infra.profiles", "lmcnb.infra.checks",
                                                            "lmcnb.infra.plotting", "lmcnb.infra.sweep"}
    assert {"lmcnb.papers.meanfield", "lmcnb.papers.lewc", "lmcnb.papers.teacher_student"} <= set(modules)
    assert {"lmcnb.experiments.width_rates", "lmcnb.experiments.lr_sparsity",
            "lmcnb.experiments.real_data", "lmcnb.experiments.ot_rates"} <= set(modules)
    for name in ("infra", "papers", "experiments"):
        doc = importlib.import_module(f"lmcnb.{name}").__doc__
        assert doc and "Belongs here" in doc, name


def test_no_module_imports_a_layer_above_it():
    upward = []
    for module, target in _edges():
        src, dst = _layer(module), _layer(target)
        if src == "root" or dst == "root":
            continue
        if RANK[dst] > RANK[src]:
            upward.append(f"{module} ({src}) imports {target} ({dst})")
    assert not upward, "\n".join(upward)


def test_old_flat_paths_are_not_imported_inside_the_package():
    old = [f"{m} imports {t}" for m, t in _edges() if t.split(".")[1:2] and t.split(".")[1] in lmcnb.MOVED]
    assert not old, "\n".join(old)


def test_the_layering_test_sees_upward_imports(tmp_path):
    # the checker itself could fail: a toolkit module importing a paper's model lazily is caught
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    from .papers.teacher_student import functional_cost\n"
                    "from .infra import sweep\nfrom . import matching\n")
    assert _imports("lmcnb.bad", path) >= {"lmcnb.papers.teacher_student", "lmcnb.infra.sweep", "lmcnb.matching"}


@pytest.mark.parametrize("old", sorted(lmcnb.MOVED))
def test_old_module_paths_are_the_same_objects(old):
    new = importlib.import_module(lmcnb.MOVED[old])
    assert importlib.import_module(f"lmcnb.{old}") is new
    assert getattr(lmcnb, old) is new
    assert new.__spec__.name == new.__name__ == lmcnb.MOVED[old]
    exec(f"import lmcnb.{old} as alias; from lmcnb import {old} as alias2", ns := {})
    assert ns["alias"] is new and ns["alias2"] is new


@pytest.mark.parametrize("module, name, home", [
    ("lmcnb.matching", "FunctionalMatching", "lmcnb.papers.teacher_student"),
    ("lmcnb.transport", "two_sample_wasserstein", "lmcnb.experiments.ot_rates"),
    ("lmcnb.transport", "gaussian_sampler", "lmcnb.experiments.ot_rates"),
    ("lmcnb.transport", "matching_dimensions", "lmcnb.experiments.ot_rates"),
])
def test_moved_names_fail_naming_their_new_home(module, name, home):
    with pytest.raises(AttributeError, match=f"moved to {home}.{name}"):
        getattr(importlib.import_module(module), name)
    assert getattr(importlib.import_module(home), name) is not None
    with pytest.raises(AttributeError, match="has no attribute 'no_such_name'"):
        importlib.import_module(module).no_such_name


@pytest.mark.parametrize("layer", ["infra", "papers", "experiments"])
def test_every_module_of_a_layer_is_named_in_its_docstring(layer):
    package = importlib.import_module(f"lmcnb.{layer}")
    names = {p.stem for p in (PACKAGE / layer).glob("*.py") if not p.stem.startswith("_")}
    names |= {p.name for p in (PACKAGE / layer).iterdir() if (p / "__init__.py").exists()}
    missing = sorted(n for n in names if f"``{n}``" not in package.__doc__)
    assert not missing, f"not described in lmcnb.{layer}'s docstring: {missing}"


def test_matching_is_split_by_concept_and_keeps_its_names():
    """``from lmcnb import matching`` names every matcher (weight matching here; activation and OT matching in
    their own modules); the architectures' activation sites and dense layers live with the specs."""
    from lmcnb import matching, models, permutation

    for name in matching.__all__:
        assert getattr(matching, name) is not None, name
    assert matching.ActivationMatching.__module__ == "lmcnb._matching_activation"
    assert matching.OTMatching.__module__ == matching.CovarianceWeightedMatching.__module__ == "lmcnb._matching_ot"
    mlp = models.MLP(4, (5, 6), 3)
    assert set(permutation.activation_sites(mlp)) == set(permutation.spec_for(mlp).perm_names)
    assert permutation.dense_layers(mlp) == list(mlp.layers)
    assert sum(1 for _ in open(PACKAGE / "matching.py")) <= 700
