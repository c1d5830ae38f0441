"""Tests of lmcnb.assignment's compiled solver: :func:`solve_warm` (Jonker–Volgenant start, augmenting row
reduction, shortest augmenting paths, warm starts from :class:`Duals`) and :func:`solve_batch`, against
``scipy.optimize.linear_sum_assignment`` and brute force: random, integer-tied and adversarial matrices, both
senses, with and without numba (the kernels are also run as plain Python, so the algorithm is checked even where
numba is not installed); every argument and error message. Square matrices only (the module's contract)."""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from lmcnb import assignment as A

from _helpers import randn


@pytest.fixture(params=["python", "compiled"])
def kernels(request, monkeypatch):
    """Run each test with the plain-Python kernels and (where numba is installed) with the compiled ones."""
    if request.param == "python":
        monkeypatch.setitem(A._KERNELS, "init", A._init_kernel)
        monkeypatch.setitem(A._KERNELS, "sap", A._sap_kernel)
        monkeypatch.setitem(A._KERNELS, "kept", A._kept_kernel)
        for name, fn in (("wcand", A._warm_candidates_kernel), ("wprice", A._warm_price_kernel),
                         ("wmerge", A._warm_merge_kernel), ("wreduce", A._warm_reduce_kernel),
                         ("sparse", A._sparse_sap_kernel),
                         ("repair", A._sparse_repair_kernel), ("price", A._sparse_price_kernel)):
            monkeypatch.setitem(A._KERNELS, name, fn)
    elif not A.have_compiled_solver():
        pytest.skip("numba is not installed: the compiled kernels are the plain-Python ones tested above")
    return request.param


def _scipy_value(C: torch.Tensor, maximize: bool) -> float:
    R = C.double().numpy()
    rows, cols = linear_sum_assignment(R, maximize=maximize)
    return float(R[rows, cols].sum())


def _value(C: torch.Tensor, perm: torch.Tensor) -> float:
    return A.assignment_value(C, perm)


def _is_perm(perm: torch.Tensor, n: int) -> bool:
    return perm.dtype == torch.long and sorted(perm.tolist()) == list(range(n))


def _certificate_ok(C: torch.Tensor, duals: A.Duals, maximize: bool, tol: float = 1e-9) -> bool:
    """(u, v) dual feasible and every matched edge tight: an independent proof of optimality."""
    R = (-C if maximize else C).double().numpy()
    u = (R - duals.v[None, :]).min(1)
    reduced = R - u[:, None] - duals.v[None, :]
    scale = max(1.0, float(np.abs(R).max()))
    return reduced.min() >= -tol * scale and np.abs(reduced[np.arange(len(R)), duals.perm]).max() <= tol * scale


@settings(max_examples=40)
@given(n=st.integers(1, 7), seed=st.integers(0, 10_000), maximize=st.booleans(), ties=st.booleans())
def test_solve_warm_is_optimal_against_brute_force(n, seed, maximize, ties):
    A._KERNELS.update(init=A._init_kernel, sap=A._sap_kernel, kept=A._kept_kernel)  # plain Python here
    try:
        C = randn(n, n, seed=seed)
        if ties:
            C = (3 * C).round()
        perm, duals = A.solve_warm(C, maximize)
        values = [float(sum(C[i, p[i]] for i in range(n))) for p in itertools.permutations(range(n))]
        assert _is_perm(perm, n)
        assert _value(C, perm) == pytest.approx(max(values) if maximize else min(values), abs=1e-9)
        assert _certificate_ok(C, duals, maximize)
    finally:
        A._KERNELS.clear()


_KINDS = ["random", "integer_ties", "constant", "monge", "rank_one", "wide_range", "one_column_best"]


def _matrix(kind: str, n: int, g: torch.Generator) -> torch.Tensor:
    return {"random": lambda: torch.rand(n, n, generator=g, dtype=torch.float64),
            "integer_ties": lambda: torch.randint(0, 3, (n, n), generator=g).double(),
            "constant": lambda: torch.full((n, n), 2.5, dtype=torch.float64),
            "monge": lambda: torch.outer(torch.arange(n), torch.arange(n)).double(),  # one optimum, many near-ties
            "rank_one": lambda: torch.outer(torch.rand(n, generator=g, dtype=torch.float64),
                                            torch.rand(n, generator=g, dtype=torch.float64)),
            "wide_range": lambda: torch.rand(n, n, generator=g, dtype=torch.float64) * 10.0 ** torch.randint(
                -6, 7, (n, n), generator=g).double(),
            "one_column_best": lambda: torch.rand(n, n, generator=g, dtype=torch.float64)
            + 100 * (torch.arange(n) != 0).double()[None, :]}[kind]()


@pytest.mark.parametrize("n", [1, 2, 17, 60])
@pytest.mark.parametrize("kind", _KINDS)
def test_solve_warm_matches_scipy_objective(kernels, n, kind):
    C = _matrix(kind, n, torch.Generator().manual_seed(n))
    for maximize in (False, True):
        perm, duals = A.solve_warm(C, maximize)
        assert _is_perm(perm, n)
        exact = kind in ("integer_ties", "constant", "monge")
        expected = _scipy_value(C, maximize)
        if exact:
            assert _value(C, perm) == expected
        else:
            assert _value(C, perm) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        assert _certificate_ok(C, duals, maximize)


def test_solve_warm_large_random_equals_scipy_permutation(kernels):
    n = 300 if kernels == "compiled" else 80
    C = randn(n, n, seed=3)
    perm, _ = A.solve_warm(C)
    # continuous costs: the optimum is unique, so the permutation itself equals scipy's
    assert perm.tolist() == linear_sum_assignment(C.numpy())[1].tolist()


def test_warm_start_keeps_rows_and_stays_exact(kernels):
    n = 40
    C = randn(n, n, seed=5)
    perm, duals = A.solve_warm(C, True)
    assert duals.maximize and not duals.warm
    # the same matrix again: the start's certificate is already optimal, nothing is augmented
    perm2, again = A.solve_warm(C, True, start=duals)
    assert again.warm and again.augmented == 0 and again.scanned == 0 and torch.equal(perm2, perm)
    # a perturbed matrix: still optimal, the start is used
    C3 = C + 1e-4 * randn(n, n, seed=6)
    perm3, d3 = A.solve_warm(C3, True, start=duals)
    assert _value(C3, perm3) == pytest.approx(_scipy_value(C3, True), rel=1e-12)
    assert _certificate_ok(C3, d3, True)


def test_a_poor_start_is_used_and_still_exact(kernels):
    n = 30
    C = randn(n, n, seed=7)
    _, duals = A.solve_warm(C)
    # proposals all wrong, potentials huge: every row's candidates are the same last columns plus its old one
    bad = A.Duals(np.roll(duals.perm, 1), 1e6 * np.arange(n, dtype=np.float64), False)
    perm, d = A.solve_warm(C, start=bad)
    assert d.warm and _value(C, perm) == pytest.approx(_scipy_value(C, False), rel=1e-12)
    assert _certificate_ok(C, d, False)


def test_permute_rows_carries_the_certificate(kernels):
    n = 25
    C = randn(n, n, seed=8)
    perm, duals = A.solve_warm(C)
    q = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    moved = duals.permute_rows(q)
    assert np.array_equal(moved.perm, duals.perm[q.numpy()]) and moved.v is duals.v
    perm_q, d = A.solve_warm(C[q], start=moved)  # the same problem with its rows re-indexed
    assert d.warm and d.augmented == 0 and perm_q.tolist() == perm[q].tolist()
    with pytest.raises(ValueError, match="q must be a permutation of 25 rows"):
        duals.permute_rows(torch.zeros(n, dtype=torch.long))
    with pytest.raises(ValueError, match="q must be a permutation"):
        duals.permute_rows(np.arange(n - 1))


def test_solve_warm_errors():
    C = randn(3, 3, seed=0)
    _, duals = A.solve_warm(C)
    with pytest.raises(ValueError, match="start comes from a solve with maximize=False"):
        A.solve_warm(C, True, start=duals)
    with pytest.raises(ValueError, match="start is for 3 columns, C has 4"):
        A.solve_warm(randn(4, 4, seed=0), start=duals)
    with pytest.raises(TypeError, match="start must be None or a Duals"):
        A.solve_warm(C, start=(duals.perm, duals.v))
    with pytest.raises(ValueError, match="C must be square"):
        A.solve_warm(randn(3, 4, seed=0))
    with pytest.raises(TypeError, match="C must be a torch.Tensor"):
        A.solve_warm(C.numpy())
    with pytest.raises(ValueError, match="NaN or inf"):
        A.solve_warm(torch.tensor([[0.0, float("inf")], [1.0, 2.0]]))
    with pytest.raises(TypeError, match="maximize must be a bool"):
        A.solve_warm(C, 1)


def test_solve_warm_input_untouched_dtype_and_transposed_view(kernels):
    C = randn(12, 12, seed=9).float()
    before = C.clone()
    perm, _ = A.solve_warm(C.T, True)
    assert torch.equal(C, before) and perm.dtype == torch.long
    assert perm.tolist() == linear_sum_assignment(C.T.double().numpy(), maximize=True)[1].tolist()


def test_without_numba_falls_back_to_scipy(monkeypatch):
    monkeypatch.setitem(A._KERNELS, "init", None)
    assert not A.have_compiled_solver()
    C = randn(20, 20, seed=10)
    perm, duals = A.solve_warm(C, True)
    assert perm.tolist() == linear_sum_assignment(C.numpy(), maximize=True)[1].tolist()
    assert duals.augmented == 20 and not duals.warm
    batch = A.solve_batch(torch.stack([C, -C]), workers=2)
    assert batch[1].tolist() == linear_sum_assignment(-C.numpy())[1].tolist()


def test_infeasible_kernel_reports():
    C = np.full((2, 2), np.inf)
    u, v = np.zeros(2), np.zeros(2)
    col4row, row4col = np.full(2, -1, np.int64), np.full(2, -1, np.int64)
    assert A._sap_kernel(C, u, v, col4row, row4col) == -1


@pytest.mark.parametrize("workers", [None, 1, 3])
def test_solve_batch_equals_one_by_one(kernels, workers):
    B, n = 5, 30
    C = torch.stack([randn(n, n, seed=s) for s in range(B)])
    C[2] = (3 * C[2]).round()  # ties in one member
    for maximize in (False, True):
        perms = A.solve_batch(C, maximize, workers=workers)
        assert perms.shape == (B, n) and perms.dtype == torch.long
        for b in range(B):
            assert _value(C[b], perms[b]) == pytest.approx(_scipy_value(C[b], maximize), rel=1e-12)
            assert perms[b].tolist() == A.solve_warm(C[b], maximize)[0].tolist()


def test_solve_batch_errors():
    with pytest.raises(ValueError, match="batch of square matrices"):
        A.solve_batch(randn(2, 3, 4, seed=0))
    with pytest.raises(ValueError, match="C must have 3 dimension"):
        A.solve_batch(randn(3, 3, seed=0))
    with pytest.raises(ValueError, match="workers must be"):
        A.solve_batch(randn(2, 3, 3, seed=0), workers=0)
    with pytest.raises(ValueError, match="NaN or inf"):
        A.solve_batch(torch.full((2, 2, 2), float("nan")))
    with pytest.raises(ValueError, match="must be non-empty"):
        A.solve_batch(torch.zeros(0, 3, 3))


@pytest.mark.parametrize("bad", [float("inf"), -float("inf"), float("nan")])
def test_every_entry_point_rejects_non_finite_costs_naming_the_entry(bad):
    C = randn(4, 4, seed=3)
    C[2, 1] = bad
    for call in (lambda: A.solve(C), lambda: A.solve(C, reduced=True), lambda: A.solve_warm(C),
                 lambda: A.solve_batch(torch.stack([randn(4, 4, seed=4), C])),
                 lambda: A.solve_sparse(C)):
        with pytest.raises(ValueError, match=r"C must be finite: 1 NaN or infinite entries, the first C\[(2, 1|1, 2, 1)\]"):
            call()


@pytest.mark.parametrize("compiled", [False, True])
def test_row_best_never_reads_index_minus_one(compiled):
    """An infinite cost seen first used to compare ``row4col[-1]`` (the last column's owner): an all-infinite row
    then reported column 0 as its best. The one helper of both kernels keeps ``arg = −1`` until a finite entry."""
    fn = A._row_best
    if not compiled:
        fn = getattr(fn, "py_func", fn)
    elif not hasattr(fn, "py_func"):
        pytest.skip("numba is not installed")
    C = np.array([[np.inf, np.inf, np.inf], [np.inf, 2.0, 2.0]])
    v = np.zeros(3)
    row4col = np.array([-1, -1, 0], np.int64)  # the last column is taken, the others free
    assert fn(C, v, 0, row4col) == (np.inf, -1)
    assert fn(C, v, 1, row4col) == (2.0, 1)
    assert fn(C, v, 1, np.array([-1, 0, -1], np.int64)) == (2.0, 2)  # ties: the free column wins


def test_kernels_share_the_row_argmin_and_keep_infinite_first_entries_exact(kernels):
    """``_init_kernel`` and ``_kept_kernel`` agree on the rows they keep; a row starting with +inf (only reachable by
    calling the kernels directly) is solved exactly."""
    C = np.array([[np.inf, 1.0, 5.0], [2.0, np.inf, 1.0], [np.inf, 3.0, 0.5]])
    init, sap, kept = A._kernels() if kernels == "compiled" else (A._init_kernel, A._sap_kernel, A._kept_kernel)
    v, prop = np.zeros(3), np.full(3, -1, np.int64)
    u, col4row, row4col = np.empty(3), np.empty(3, np.int64), np.empty(3, np.int64)
    free = init(C, v, prop, u, col4row, row4col, 24)
    assert kept(C, np.zeros(3), prop) == (2, 2)  # rows 0 and 1 keep their argmins; row 2's (column 2) is taken
    assert sap(C, u, v, col4row, row4col) >= 0
    rows, cols = linear_sum_assignment(C)
    assert C[np.arange(3), col4row].sum() == C[rows, cols].sum()


@pytest.mark.parametrize("n", [2, 17, 60])
@pytest.mark.parametrize("kind", _KINDS)
@pytest.mark.parametrize("scale", [0.0, 1e-6, 1e-2, 1.0])
def test_warm_resolve_on_candidates_is_exact(kernels, n, kind, scale):
    """A re-solve from the duals of a neighbouring matrix (candidate edges, pricing) reaches scipy's optimum on
    every kind of matrix and perturbation size, with a valid certificate; the start is used."""
    g = torch.Generator().manual_seed(100 + n)
    C = _matrix(kind, n, g)
    for maximize in (False, True):
        _, duals = A.solve_warm(C, maximize)
        C2 = C + scale * torch.rand(n, n, generator=g, dtype=torch.float64)
        if kind == "integer_ties":
            C2 = C2.round()
        perm, d = A.solve_warm(C2, maximize, start=duals)
        assert _is_perm(perm, n) and d.warm
        assert _value(C2, perm) == pytest.approx(_scipy_value(C2, maximize), rel=1e-12, abs=1e-12)
        assert _certificate_ok(C2, d, maximize)


@pytest.mark.parametrize("k", [1, 2, 8, 64])
def test_warm_candidates_k_changes_the_set_not_the_optimum(kernels, k):
    n = 50
    C = randn(n, n, seed=12)
    _, duals = A.solve_warm(C)
    C2 = C + 0.05 * randn(n, n, seed=13)
    perm, v, freed, scanned = A._solve_warm_sparse_min(C2.numpy(), duals.v, duals.perm, k)
    assert A.assignment_value(C2, torch.as_tensor(perm)) == pytest.approx(_scipy_value(C2, False), rel=1e-12)
    indices, floor = np.empty(n * (min(k, n) + 1), np.int64), np.empty(n)
    A._warm_kernels()[0](C2.numpy(), duals.v, duals.perm, min(k, n), indices, floor, 0, n)
    red = C2.numpy() - duals.v[None, :]
    assert np.allclose(floor, np.sort(red, 1)[:, min(k, n) - 1])  # floor = the k-th smallest of each row


def test_warm_scan_kernels_touch_only_their_rows_and_parts_give_the_one_scan_result(kernels):
    """``[i0, i1)``: candidate selection and pricing write only those rows; two parts give what one scan gives
    (candidates, floors, priced rows and the violated edges in row order)."""
    n, k = 40, 3
    R = randn(n, n, seed=21).numpy()
    v = randn(n, seed=22).numpy()
    proposal = np.random.default_rng(0).permutation(n)
    cand, price = A._warm_kernels()[:2]
    whole = np.full(n * (k + 1), -7, np.int64), np.full(n, -7.0)
    cand(R, v, proposal, k, *whole, 0, n)
    split = np.full(n * (k + 1), -7, np.int64), np.full(n, -7.0)
    cand(R, v, proposal, k, *split, 0, 15)
    assert (split[0][15 * (k + 1):] == -7).all() and (split[1][15:] == -7).all()
    assert np.array_equal(split[0][:15 * (k + 1)], whole[0][:15 * (k + 1)])
    cand(R, v, proposal, k, *split, 15, n)
    assert np.array_equal(split[0], whole[0]) and np.array_equal(split[1], whole[1])
    indptr = np.arange(0, n * (k + 1) + 1, k + 1)
    u = whole[1] + np.abs(randn(n, seed=23).numpy())  # every row above its floor: all are priced
    u[::4] = whole[1][::4] - 1.0  # ... but these
    outs = [(np.empty(n * n, np.int64), np.empty(n * n, np.int64)) for _ in range(3)]
    priced = [np.zeros(n, np.bool_) for _ in range(3)]
    m_all = price(R, u, v, whole[1], indptr, whole[0], *outs[0], priced[0], 0, n)
    m_lo = price(R, u, v, whole[1], indptr, whole[0], *outs[1], priced[1], 0, 15)
    m_hi = price(R, u, v, whole[1], indptr, whole[0], *outs[2], priced[2], 15, n)
    assert m_all > 0 and 0 < m_lo < m_all and not priced[1][15:].any() and not priced[2][:15].any()
    assert np.array_equal(priced[1] | priced[2], priced[0]) and priced[0].sum() == n - len(u[::4])
    for t in range(2):
        assert np.array_equal(np.concatenate([outs[1][t][:m_lo], outs[2][t][:m_hi]]), outs[0][t][:m_all])
    assert (outs[1][0][:m_lo] < 15).all() and (outs[2][0][:m_hi] >= 15).all()


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_warm_resolve_split_over_threads_gives_the_one_thread_result(kernels, monkeypatch, threads):
    """The row scans split over ``torch.get_num_threads()`` parts (from ``SCAN_THREADS_MIN_N`` rows; here every
    size): permutation, potentials and counters equal to the one-part solve, bit for bit."""
    n = 90
    C = randn(n, n, seed=24)
    _, duals = A.solve_warm(C)
    C2 = (C + 0.3 * randn(n, n, seed=25)).numpy()
    one = A._solve_warm_sparse_min(C2, duals.v, duals.perm)
    monkeypatch.setattr(A, "SCAN_THREADS_MIN_N", 1)
    monkeypatch.setattr(A.torch, "get_num_threads", lambda: threads)
    assert len(A._scan_parts(n)) == threads and A._scan_parts(n)[-1][1] == n
    many = A._solve_warm_sparse_min(C2, duals.v, duals.perm)
    assert np.array_equal(one[0], many[0]) and np.array_equal(one[1], many[1]) and one[2:] == many[2:]
    assert one[2] > 0  # a real re-solve: rows were freed and priced


def test_scan_parts_split_rows_evenly_from_the_threshold(monkeypatch):
    monkeypatch.setattr(A.torch, "get_num_threads", lambda: 4)
    assert A._scan_parts(A.SCAN_THREADS_MIN_N - 1) == [(0, A.SCAN_THREADS_MIN_N - 1)]
    n = A.SCAN_THREADS_MIN_N + 2
    parts = A._scan_parts(n)
    assert len(parts) == 4 and parts[0][0] == 0 and parts[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(parts, parts[1:])) and max(b - a for a, b in parts) - min(
        b - a for a, b in parts) <= 1
    monkeypatch.setattr(A, "SCAN_THREADS_MIN_N", 1)
    assert A._scan_parts(2) == [(0, 1), (1, 2)]  # never more parts than rows


def test_min_matrix_reads_float32_in_place_and_negates_exactly():
    C = randn(6, 6, seed=14).float()
    assert np.shares_memory(A._min_matrix(C, False), C.numpy())
    neg = A._min_matrix(C, True)
    assert neg.dtype == np.float32 and np.array_equal(neg, -C.numpy()) and neg.flags.c_contiguous
    assert A._min_matrix(C.T, True).flags.c_contiguous and np.array_equal(A._min_matrix(C.T, True), -C.T.numpy())
    assert A._min_matrix(C.half(), False).dtype == np.float64
    # float32 read directly: the same optimum as on the float64 copy
    assert A.solve_warm(C)[0].tolist() == linear_sum_assignment(C.double().numpy())[1].tolist()


def test_repair_keeps_a_match_tied_within_the_rounding_of_a_large_best_column(kernels):
    """Row 0's matched column 0 (``R = a``, ``v = 0``) and its column 1 (``R ≈ −99 + a``, ``v = −99``) differ by
    one ulp of 100: tight within rounding. A tolerance relative to the matched edge alone freed the row after
    every augmentation (the warm re-solve looped forever on such a matrix)."""
    a, vb = -0.9728316530374965, -99.0
    b = np.nextafter(vb + a, -np.inf)
    R = np.array([[a, b], [1000.0, 10.0]])
    v = np.array([0.0, vb])
    assert 0 < a - (b - vb) < 8 * np.finfo(np.float64).eps * 100  # the case: a few ulps of 100, not of 1
    assert a - (b - vb) > 8 * np.finfo(np.float64).eps * 2 * abs(a)  # beyond a tolerance relative to a alone
    indptr, indices = np.array([0, 2, 4]), np.array([0, 1, 0, 1])
    col4row, row4col, u = np.array([0, 1]), np.array([0, 1]), np.empty(2)
    repair = A._sparse_kernels()[1]
    data = A._edge_costs(R, indptr, indices)
    assert repair(R, data, indptr, indices, u, v, col4row, row4col, 8 * np.finfo(np.float64).eps) == 0
    assert col4row.tolist() == [0, 1] and u[0] == b - vb


@pytest.mark.parametrize("matched_cost, freed", [(1.0, False), (3.0, True)])
def test_repair_reads_edge_costs_from_data_and_the_matched_cost_from_the_dense_matrix(kernels, matched_cost, freed):
    """``u_i`` = the row minimum over ``data`` (the dense ``R`` is 0 off the matched edges); whether row 0's match
    (column 0, edge cost 3 in ``data``, best 1) is still tight is judged on ``R[0, 0]``."""
    R = np.zeros((2, 2))
    R[0, 0], R[1, 1] = matched_cost, 2.0
    indptr, indices, data = np.array([0, 2, 4]), np.array([0, 1, 0, 1]), np.array([3.0, 1.0, 2.0, 5.0])
    u, v = np.empty(2), np.zeros(2)
    col4row, row4col = np.array([0, 1]), np.array([0, 1])
    free = A._sparse_kernels()[1](R, data, indptr, indices, u, v, col4row, row4col, 8 * np.finfo(np.float64).eps)
    assert u.tolist() == [1.0, 2.0]
    assert free == int(freed) and col4row.tolist() == ([-1, 1] if freed else [0, 1])


def test_warm_resolve_of_a_one_column_best_matrix_terminates(kernels):
    """The regression: maximize on ``U(0,1) + 100 (j ≠ 0)`` re-solved after a 1e-2 perturbation (n = 60) hung."""
    n, g = 60, torch.Generator().manual_seed(160)
    C = _matrix("one_column_best", n, g)
    _, duals = A.solve_warm(C, True)
    C2 = C + 0.01 * torch.rand(n, n, generator=g, dtype=torch.float64)
    perm, d = A.solve_warm(C2, True, start=duals)
    assert d.warm and _value(C2, perm) == pytest.approx(_scipy_value(C2, True), rel=1e-12)


def test_warm_resolve_falls_back_to_the_dense_solve_after_max_rounds(kernels, monkeypatch):
    monkeypatch.setattr(A, "SPARSE_MAX_ROUNDS", 0)
    C = randn(30, 30, seed=15)
    _, duals = A.solve_warm(C)
    C2 = C + 0.1 * randn(30, 30, seed=16)
    perm, v, augmented, scanned = A._solve_warm_sparse_min(C2.numpy(), duals.v, duals.perm)
    cold = A._solve_min(C2.numpy(), None, None)
    assert perm.tolist() == cold[0].tolist() and np.array_equal(v, cold[1]) and augmented == cold[2]


@pytest.mark.parametrize("n, nc", [(1, 1), (5, 3), (64, 1), (65, 2), (130, 3), (130, 64), (7, 9)])
def test_class_mins_are_the_minima_of_each_residue_class(n, nc):
    g = torch.Generator().manual_seed(n + nc)
    C = torch.randn(n, n, generator=g).numpy()  # float32, as the PCD similarities are read in place
    v = torch.randn(n, generator=g, dtype=torch.float64).numpy()
    out = np.full(nc, -7.0)
    for i in (0, n - 1):
        A._class_mins(C, v, i, nc, out)
        red = C[i].astype(np.float64) - v
        assert out.tolist() == [red[c::nc].min() if c < n else np.inf for c in range(nc)]


def test_edge_costs_are_the_csr_edges_entries_in_order_as_float64():
    R = torch.randn(5, 5, generator=torch.Generator().manual_seed(5)).numpy()  # float32
    indptr, indices = np.array([0, 2, 2, 5, 6, 7]), np.array([4, 0, 1, 3, 1, 2, 0])
    data = A._edge_costs(R, indptr, indices)
    assert data.dtype == np.float64 and data.tolist() == [float(R[i, j]) for i, j in
                                                          zip([0, 0, 2, 2, 2, 3, 4], indices)]


def _reduce_case(n: int, seed: int) -> tuple[np.ndarray, ...]:
    """A random float64 matrix and potentials, each row's candidates 3 random columns and its proposal (a
    permutation: a perfect matching inside the set), every row free."""
    rng = np.random.default_rng(seed)
    R, v = rng.random((n, n)), rng.random(n)
    proposal = rng.permutation(n)
    indices = np.concatenate([rng.integers(0, n, (n, 3)), proposal[:, None]], axis=1).reshape(-1)
    indptr = np.arange(0, 4 * n + 1, 4)
    return R, v, indptr, indices.astype(np.int64), np.full(n, -1, np.int64), np.full(n, -1, np.int64)


@pytest.mark.parametrize("max_steps", [0, 5, 10_000])
def test_warm_reduce_bids_lower_v_and_leave_every_matched_edge_a_row_minimum(kernels, max_steps):
    n = 40
    R, v0, indptr, indices, col4row, row4col = _reduce_case(n, 3)
    v = v0.copy()
    data = A._edge_costs(R, indptr, indices)
    free = A._warm_kernels()[3](data, indptr, indices, np.full(n, np.inf), v, col4row, row4col, max_steps)
    matched = np.flatnonzero(col4row >= 0)
    assert free == n - matched.size and np.array_equal(row4col[col4row[matched]], matched)
    assert (row4col >= 0).sum() == matched.size and np.all(v <= v0)
    if max_steps == 0:
        assert free == n and np.array_equal(v, v0)  # no bid
    else:
        assert n - max_steps <= free < n and 0 < np.flatnonzero(v < v0).size <= max_steps
    for i in matched:  # every match was won by a bid: its edge ties the row's minimum on the set
        cols = indices[indptr[i]:indptr[i + 1]]
        assert R[i, col4row[i]] - v[col4row[i]] <= (R[i, cols] - v[cols]).min() + 1e-12


def test_warm_reduce_bids_stay_below_the_floor_of_the_left_out_columns(kernels):
    """A bid lifts the bidder's minimum by its gap to the second best, capped at ``floor[i]`` (the left-out
    columns' lower bound): no bid creates a pricing violation; a row whose best is not below it does not bid."""
    n = 40
    R, v0, indptr, indices, _, _ = _reduce_case(n, 4)
    red0 = R - v0[None, :]
    cols = indices.reshape(n, 4)
    best = np.take_along_axis(red0, cols, 1).min(1)
    floor = best + 1e-3 * np.arange(n) * (np.arange(n) % 4 != 0) - (np.arange(n) % 4 == 0)  # every 4th below
    for cap, expect_bids in ((floor, True), (best - 1.0, False)):
        v, col4row, row4col = v0.copy(), np.full(n, -1, np.int64), np.full(n, -1, np.int64)
        free = A._warm_kernels()[3](A._edge_costs(R, indptr, indices), indptr, indices, cap, v, col4row, row4col,
                                    10_000)
        if not expect_bids:
            assert free == n and np.array_equal(v, v0)
            continue
        matched = np.flatnonzero(col4row >= 0)
        assert matched.size > 0 and not np.isin(np.arange(0, n, 4), matched).any()
        for i in matched:
            red = R[i, cols[i]] - v[cols[i]]
            assert R[i, col4row[i]] - v[col4row[i]] == pytest.approx(red.min(), abs=1e-12)
            assert red.min() <= cap[i] + 1e-12


def test_duals_proposal_starts_a_warm_resolve_from_a_permutation_and_rejects_anything_else(kernels):
    """``Duals.proposal(perm, maximize)``: ``v = 0`` and ``perm`` proposed; the re-solve from it is optimal in
    the proposal's own sense (a start of the other sense is refused); a non-permutation is a clear error."""
    n = 30
    C = randn(n, n, seed=31)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(3))
    start = A.Duals.proposal(perm)
    assert start.perm.tolist() == perm.tolist() and not start.v.any() and not start.maximize and not start.warm
    for maximize in (False, True):
        got, d = A.solve_warm(C, maximize, start=A.Duals.proposal(perm.numpy(), maximize))
        assert _value(C, got) == pytest.approx(_scipy_value(C, maximize), rel=1e-12) and d.maximize is maximize
    with pytest.raises(ValueError, match="maximize=True"):
        A.solve_warm(C, False, start=A.Duals.proposal(perm, True))
    for bad in (np.zeros(n, np.int64), np.arange(n).reshape(5, 6), [0, 2]):
        with pytest.raises(ValueError, match="perm must be a permutation of range"):
            A.Duals.proposal(bad)
    with pytest.raises(TypeError, match="maximize must be a bool"):
        A.Duals.proposal(perm, 1)
