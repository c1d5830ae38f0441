"""Tests of :func:`lmcnb.assignment.solve_sparse` (shortest augmenting paths on candidate edges priced out against
the dense matrix) and of ``solve_batch``'s ``method`` / ``processes``: the objective equals scipy's on random,
tied, adversarial and teacher–student-structured matrices (identical rows and columns, plateaus, costs far below
the matrix's largest entry), with the compiled and the plain-Python kernels; the certificate is checked
independently; every argument and error."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linear_sum_assignment

from lmcnb import assignment as A
from lmcnb.papers import teacher_student as ts

from _helpers import randn

_NAMES = ("sparse", "repair", "price", "keys", "cand")


@pytest.fixture(params=["python", "compiled"])
def kernels(request, monkeypatch):
    """Each test with the plain-Python sparse kernels and (where numba is installed) the compiled ones."""
    if request.param == "python":
        for name, fn in zip(_NAMES, (A._sparse_sap_kernel, A._sparse_repair_kernel, A._sparse_price_kernel,
                                     A._keys_kernel, A._candidate_kernel)):
            monkeypatch.setitem(A._KERNELS, name, fn)
    elif not A.have_compiled_solver():
        pytest.skip("numba is not installed")
    return request.param


def _scipy_value(C: torch.Tensor, maximize: bool = False) -> float:
    R = C.double().numpy()
    rows, cols = linear_sum_assignment(R, maximize=maximize)
    return float(R[rows, cols].sum())


def _certificate_ok(C: torch.Tensor, duals: A.Duals, maximize: bool) -> bool:
    R = (-C if maximize else C).double().numpy()
    u = (R - duals.v[None, :]).min(1)
    red = R - u[:, None] - duals.v[None, :]
    tol = 1e-12 * max(1e-300, float(np.abs(R).max()))
    return red.min() >= -tol and np.abs(red[np.arange(len(R)), duals.perm]).max() <= tol


def _student(m: int, teacher: torch.Tensor, seed: int, dead: float = 0.1, noise: float = 1e-3) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    kinds = torch.randint(0, teacher.shape[0], (m,), generator=g)
    W = teacher[kinds] * (0.5 + torch.rand(m, generator=g, dtype=torch.float64))[:, None]
    W = W + noise * torch.randn(m, teacher.shape[1], generator=g, dtype=torch.float64)
    W[torch.rand(m, generator=g) < dead] = 0.0
    return W


def _matrices():
    yield "uniform", torch.rand(60, 60, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    yield "integer ties", torch.randint(0, 3, (50, 50), generator=torch.Generator().manual_seed(1)).double()
    yield "all equal", torch.ones(20, 20, dtype=torch.float64)
    yield "identical rows and columns", torch.rand(8, 8, generator=torch.Generator().manual_seed(2),
                                                   dtype=torch.float64).repeat_interleave(5, 0).repeat_interleave(5, 1)
    C = 1e-10 * torch.rand(40, 40, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    C[0, 0] = 1e6  # tiny costs next to a huge one (a tolerance relative to max|C| would be wrong here)
    yield "tiny costs, one huge", C
    i = torch.arange(40, dtype=torch.float64)
    yield "i*j (anti-sorted optimum)", i[:, None] * i[None, :]
    C = torch.rand(40, 40, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    C[:, :20] += 10.0  # half the columns expensive: Hall fails on the cheap candidates of the first rows
    C[:20, 20:] += 10.0
    yield "two blocks, off-diagonal cheap", C
    C = torch.full((30, 30), 5.0, dtype=torch.float64)
    C[:, 0] = 0.0  # every row's best is the same column
    yield "one shared best column", C
    teacher = torch.randn(3, 5, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    yield "teacher-student functional cost", ts.functional_cost(_student(80, teacher, 6), _student(80, teacher, 7))
    yield "teacher-student, exact types", ts.functional_cost(_student(60, teacher, 8, 0.2, 0.0),
                                                             _student(60, teacher, 9, 0.3, 0.0))


@pytest.mark.parametrize("name,C", list(_matrices()), ids=[n for n, _ in _matrices()])
@pytest.mark.parametrize("maximize", [False, True])
def test_solve_sparse_equals_scipy_objective(kernels, name, C, maximize):
    perm, duals = A.solve_sparse(C, maximize)
    n = C.shape[0]
    assert perm.dtype == torch.long and sorted(perm.tolist()) == list(range(n))
    value, ref = A.assignment_value(C, perm), _scipy_value(C, maximize)
    assert value == pytest.approx(ref, rel=1e-12, abs=1e-12 * max(1e-300, float(C.abs().max())) if
                                  name != "tiny costs, one huge" else 1e-24)
    assert _certificate_ok(C, duals, maximize)
    assert duals.maximize == maximize and duals.augmented >= 1


@pytest.mark.parametrize("seed", range(6))
def test_solve_sparse_random_sizes_and_k(kernels, seed):
    g = torch.Generator().manual_seed(seed)
    n = int(torch.randint(1, 90, (1,), generator=g))
    C = torch.randn(n, n, generator=g, dtype=torch.float64)
    if seed % 2:
        C = (2 * C).round()
    ref = _scipy_value(C)
    for k in (1, 3, 100):
        perm, duals = A.solve_sparse(C, k=k)
        assert A.assignment_value(C, perm) == pytest.approx(ref, rel=1e-12, abs=1e-12)


def test_k_changes_the_work_not_the_objective():
    C = torch.rand(200, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    R = C.numpy().copy()
    out1, outn = A._solve_sparse_min(R, 1), A._solve_sparse_min(R, 200)
    assert outn[3] == 200 * 200 and out1[3] < outn[3]  # candidate edges: k = n is the dense matrix
    assert R[np.arange(200), out1[0]].sum() == pytest.approx(R[np.arange(200), outn[0]].sum(), rel=1e-13)


def test_candidate_set_spreads_a_plateau_of_identical_columns():
    """Identical columns (dead neurons) are one class: each row gets k members of it, not all of them."""
    n, k = 60, 4
    R = np.random.default_rng(0).random((n, n))
    R[:, 30:] = -1.0  # 30 identical columns, every row's cheapest (like dead neurons)
    mask, u, v = A._candidate_mask(R, k)
    plateau = mask[:, 30:]
    assert plateau.sum() <= n * (k + 1) + 30 * k  # the representative and a window of k members per row, plus each column's k rows
    assert plateau.any(1).sum() >= n // 2  # most rows reach the plateau (it holds their smallest costs) ...
    assert plateau.sum(0).min() >= k  # ... and every member is reached by k rows, not every row by all 30


def test_sparse_falls_back_after_max_rounds(monkeypatch):
    monkeypatch.setattr(A, "SPARSE_MAX_ROUNDS", 0)
    C = randn(30, 30, seed=1)
    perm, duals = A.solve_sparse(C)
    assert A.assignment_value(C, perm) == pytest.approx(_scipy_value(C), rel=1e-12)
    assert duals.augmented == 1  # the dense solver ran in the first round


def test_solve_sparse_without_numba_uses_scipy(monkeypatch):
    monkeypatch.setitem(A._KERNELS, "sparse", None)
    C = randn(12, 12, seed=2)
    perm, duals = A.solve_sparse(C)
    assert perm.tolist() == linear_sum_assignment(C.numpy())[1].tolist() and duals.augmented == 12


def test_solve_sparse_errors():
    with pytest.raises(ValueError, match="must be square"):
        A.solve_sparse(randn(3, 4, seed=0))
    with pytest.raises(ValueError, match="k must be"):
        A.solve_sparse(randn(3, 3, seed=0), k=0)
    with pytest.raises(TypeError, match="maximize must be"):
        A.solve_sparse(randn(3, 3, seed=0), maximize=1)
    with pytest.raises(ValueError, match="C must be finite"):
        A.solve_sparse(torch.tensor([[0.0, float("inf")], [1.0, 2.0]], dtype=torch.float64))


@pytest.mark.parametrize("processes", [False, True])
def test_solve_batch_methods_and_processes_agree_on_the_objective(processes):
    teacher = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    C = torch.stack([ts.functional_cost(_student(70, teacher, 2 * s), _student(70, teacher, 2 * s + 1))
                     for s in range(3)] + [randn(70, 70, seed=9).double()])
    dense = A.solve_batch(C, method="dense", workers=2, processes=processes)
    sparse = A.solve_batch(C, method="sparse", workers=2, processes=processes)
    for b in range(C.shape[0]):
        ref = _scipy_value(C[b])
        for perms in (dense, sparse):
            assert A.assignment_value(C[b], perms[b]) == pytest.approx(ref, rel=1e-12, abs=1e-20)
        assert sparse[b].tolist() == A.solve_sparse(C[b])[0].tolist()  # same solver, same answer
        assert dense[b].tolist() == A.solve_warm(C[b])[0].tolist()
    assert A.solve_batch(C, method="sparse", workers=1).tolist() == sparse.tolist()


def test_solve_batch_method_errors():
    with pytest.raises(ValueError, match="method must be one of"):
        A.solve_batch(randn(2, 3, 3, seed=0), method="auction")
    with pytest.raises(TypeError, match="processes must be"):
        A.solve_batch(randn(2, 3, 3, seed=0), processes="yes")
