"""Tests of lmcnb.assignment: the exact LAP against brute force over all permutations (minimise and maximise, both
strategies, asymmetric matrices), the reduced strategy's shortcut and its fall-back, the objective, and the
permutation-plan reading with its relative tolerance; every argument and error message."""
from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lmcnb import assignment as A

from _helpers import randn


def _brute(C: torch.Tensor, maximize: bool) -> float:
    n = C.shape[0]
    values = [float(sum(C[i, p[i]] for i in range(n))) for p in itertools.permutations(range(n))]
    return max(values) if maximize else min(values)


@settings(max_examples=30)
@given(n=st.integers(1, 6), seed=st.integers(0, 10_000), maximize=st.booleans(), reduced=st.booleans(),
       ties=st.booleans())
def test_solve_is_optimal_against_brute_force(n, seed, maximize, reduced, ties):
    C = randn(n, n, seed=seed)
    if ties:  # integer costs: many optima and many rows sharing a best column
        C = (3 * C).round()
    perm = A.solve(C, maximize, reduced=reduced)
    assert perm.dtype == torch.long and sorted(perm.tolist()) == list(range(n))
    assert A.assignment_value(C, perm) == pytest.approx(_brute(C, maximize), abs=1e-9)


def test_maximize_on_an_asymmetric_matrix():
    C = torch.tensor([[4.0, 1.0, 3.0], [2.0, 0.0, 5.0], [3.0, 2.0, 2.0]], dtype=torch.float64)
    for reduced in (False, True):
        assert A.solve(C, reduced=reduced).tolist() == [1, 0, 2]  # 1 + 2 + 2 = 5, the unique minimum
        assert A.solve(C, True, reduced=reduced).tolist() == [0, 2, 1]  # 4 + 5 + 2 = 11, the unique maximum
        assert A.solve(C.T, True, reduced=reduced).tolist() == [0, 2, 1]  # of Cᵀ too (a transposed view)
        assert A.solve(-C, True, reduced=reduced).tolist() == [1, 0, 2]


def test_reduced_shortcut_and_fall_back_keep_the_input_and_device():
    distinct = torch.tensor([[0.0, 5.0, 9.0], [7.0, 8.0, 1.0], [6.0, 2.0, 7.0]], dtype=torch.float64)
    before = distinct.clone()
    assert A.solve(distinct, reduced=True).tolist() == [0, 2, 1]  # every row's best column differs: taken as is
    # maximising, rows 0 and 2 both prefer column 2: the fall-back finds 9 + 8 + 6 = 23
    assert A.solve(distinct, True, reduced=True).tolist() == [2, 1, 0]
    clash = torch.tensor([[1.0, 2.0, 10.0], [1.0, 4.0, 10.0], [0.0, 9.0, 3.0]], dtype=torch.float64)
    clash_before = clash.clone()
    assert A.solve(clash, reduced=True).tolist() == [1, 0, 2]  # every row prefers column 0: 2 + 1 + 3 = 6
    assert torch.equal(distinct, before) and torch.equal(clash, clash_before)
    perm = A.solve(distinct.float(), reduced=True)
    assert perm.device == distinct.device and perm.dtype == torch.long


def test_assignment_value_in_float64():
    C = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float32) + 1e-9
    value = A.assignment_value(C, torch.tensor([1, 0]))
    assert isinstance(value, float) and value == float(C.double()[0, 1] + C.double()[1, 0])


def test_permutation_plans_and_their_relative_tolerance():
    perm = torch.tensor([2, 0, 1])
    Pi = torch.zeros(3, 3, dtype=torch.float64)
    Pi[torch.arange(3), perm] = 1.0
    for mass in (1.0, 1 / 3, 7.5):  # any total mass: P = (mass / n)·Π
        P = Pi * (mass / 3)
        assert A.is_permutation_plan(P) and A.plan_to_permutation(P).tolist() == perm.tolist()
    P = Pi / 3
    P[0, 0] = 1e-3 / 3  # an entry of 1e-3 relative to a plan entry of 1/n
    assert A.is_permutation_plan(P, tol=2e-3) and not A.is_permutation_plan(P, tol=5e-4)
    assert not A.is_permutation_plan(P)  # default tolerance PLAN_TOL
    assert A.plan_to_permutation(P, tol=2e-3).tolist() == perm.tolist()
    assert A.is_permutation_plan(Pi, tol=0.0)
    assert not A.is_permutation_plan(torch.full((3, 3), 1 / 9, dtype=torch.float64))  # fractional
    assert not A.is_permutation_plan(torch.zeros(3, 3, dtype=torch.float64))  # no mass
    assert not A.is_permutation_plan(-Pi)  # negative mass
    assert not A.is_permutation_plan(Pi[:, :2])  # not square
    two_in_one_column = torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=torch.float64)
    assert not A.is_permutation_plan(two_in_one_column, tol=0.49)
    assert A.is_permutation_plan(torch.ones(1, 1, dtype=torch.float64))


def test_error_messages_name_the_argument():
    with pytest.raises(ValueError, match=r"^C must be square \(n, n\) for a permutation, got shape \(2, 3\)$"):
        A.solve(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"^C must have 2 dimension"):
        A.solve(torch.zeros(3, dtype=torch.float64))
    with pytest.raises(TypeError, match=r"^maximize must be a bool, got int$"):
        A.solve(torch.eye(2), 1)
    with pytest.raises(TypeError, match=r"^reduced must be a bool, got int$"):
        A.solve(torch.eye(2), reduced=1)
    for tol in (-0.1, 0.5, True, "0.1"):
        with pytest.raises(ValueError, match=r"^tol must be a real number in \[0, 0\.5\), got "):
            A.is_permutation_plan(torch.eye(2), tol)
    with pytest.raises(ValueError, match=r"^P \(shape \(2, 2\)\) is not a scaled permutation matrix within "
                                         r"tol=1e-06$"):
        A.plan_to_permutation(torch.full((2, 2), 0.25))
    with pytest.raises(ValueError, match=r"^P must have 2 dimension"):
        A.plan_to_permutation(torch.ones(2))
