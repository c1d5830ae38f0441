"""Empirical optimal-transport rates and dimensions (Ferbach et al. §5, chapter 5).

- :func:`two_sample_wasserstein` with the samplers :func:`gaussian_sampler`, :func:`uniform_sampler` and
  :func:`subspace_sampler`: the ``m^{-1/d}`` engine behind LMC via OT, its lower bound and low-dimensional supports;
- :func:`matching_dimensions`: the approximate dimension of what each matcher transports (their Fig. 2, right);
- :func:`matcher_barriers`: one pair of the Fig. 2 grid — every matcher's loss, calibrated-loss and accuracy
  barriers and the dimension of its space;
- :func:`width_needed` and :func:`layerwise_errors`: chapter 5b's deep i.i.d. networks quantitatively — the
  exponent of ``1/ε`` in the width needed (Thm 5.2's ``ε^{−m_0}``) with a bootstrap interval, and Lemma 4.1's
  error propagation measured layer by layer;
- :func:`birkhoff_statistics` and :func:`identity_cost_ratio`: chapter 5a's Birkhoff check and identity-pairing
  gap as one statistic each, so that the check and its negative control (unequal weights, coupled samples)
  measure the same thing;
- :func:`subsample_wasserstein`: ``W_p`` between two disjoint random subsamples of one large cloud — the i.i.d.
  reference for a measure known only through a large sample (the mean-field measure ``ρ_t`` of a wide network);
- :func:`sgd_pair_trajectory` (:class:`PairTrajectory`): Theorem 3.1's experiment — pairs of mean-field networks
  trained by independent online SGD, measured at checkpoints along the trajectory (OT and identity barriers,
  functional error, ``W_2`` between the two neuron clouds).
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validate import RenamedKeys, check_bool, check_generator, check_int, check_real, check_tensor
from .. import merge
from ..infra import sweep as _sweep
from ..barrier import linear_baseline
from ..data import Split
from ..diagnostics import approximate_dimension
from ..fit import SlopeFit, bootstrap_slope
from ..models import MLP
from ..papers import meanfield
from ..transport import cost_matrix, hungarian, is_permutation_plan, ot_plan, wasserstein

__all__ = ["GaussianSampler", "UniformSampler", "SubspaceSampler", "gaussian_sampler", "uniform_sampler",
           "subspace_sampler", "two_sample_wasserstein", "matching_dimensions",
           "FIG2_SPACES", "matcher_barriers", "birkhoff_statistics", "identity_cost_ratio", "WidthNeeded", "width_needed", "LayerwiseErrors",
           "layerwise_errors", "subsample_wasserstein", "PairTrajectory", "sgd_pair_trajectory"]


def _check_sizes(ms: object) -> list[int]:
    """``ms`` as a non-empty list of positive ints (sample sizes); ``ValueError`` naming the bad entry."""
    if isinstance(ms, (str, bytes)) or not hasattr(ms, "__len__") or len(ms) == 0:
        raise ValueError(f"ms must be a non-empty sequence of positive ints, got {ms!r}")
    return [check_int(f"ms[{i}]", m, 1) for i, m in enumerate(ms)]


# ----------------------------------------------------------------------------------------------------------
# Empirical rates (Ferbach et al. §5: the m^{-1/d} engine, its lower bound and low-dimensional supports)
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class GaussianSampler:
    """``sampler(m, g)``: ``m`` draws of ``N(0, scale² I_d)``, ``(m, d)`` float64 (:func:`gaussian_sampler`). A
    dataclass, so a sweep can key it by its fields and send it to a worker."""

    d: int
    scale: float = 1.0

    def __call__(self, m: int, g: torch.Generator) -> torch.Tensor:
        return self.scale * torch.randn(m, self.d, generator=g, dtype=torch.float64)


@dataclass(frozen=True)
class UniformSampler:
    """``sampler(m, g)``: ``m`` draws of the uniform measure on ``[0, 1]^d`` (:func:`uniform_sampler`)."""

    d: int

    def __call__(self, m: int, g: torch.Generator) -> torch.Tensor:
        return torch.rand(m, self.d, generator=g, dtype=torch.float64)


@dataclass(frozen=True)
class SubspaceSampler:
    """``sampler(m, g)``: ``m`` draws of ``U z + η ξ`` (:func:`subspace_sampler`); ``U`` ``(d, k)`` is the
    orthonormal frame drawn from ``seed`` on construction."""

    d: int
    k: int
    eta: float
    seed: int = 0
    U: torch.Tensor = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        frame = torch.randn(self.d, self.k, generator=torch.Generator().manual_seed(self.seed), dtype=torch.float64)
        U, _ = torch.linalg.qr(frame)
        object.__setattr__(self, "U", U)

    def __call__(self, m: int, g: torch.Generator) -> torch.Tensor:
        z = torch.randn(m, self.k, generator=g, dtype=torch.float64) @ self.U.T
        return z + self.eta * torch.randn(m, self.d, generator=g, dtype=torch.float64) if self.eta > 0 else z


def gaussian_sampler(d: int, scale: float = 1.0) -> GaussianSampler:
    """Sampler of ``N(0, scale² I_d)`` (a density on R^d: W_2 rate m^{-1/d} for d ≥ 5)."""
    d = check_int("d", d, 1)
    scale = check_real("scale", scale, 0.0, low_open=True)
    return GaussianSampler(d, scale)


def uniform_sampler(d: int) -> UniformSampler:
    """Sampler of the uniform measure on ``[0, 1]^d`` (a bounded density: the lower bound applies)."""
    d = check_int("d", d, 1)
    return UniformSampler(d)


def subspace_sampler(d: int, k: int, eta: float, seed: int = 0) -> SubspaceSampler:
    """Sampler of ``w = U z + η ξ``: ``U`` a fixed random orthonormal ``(d, k)`` frame, ``z ~ N(0, I_k)``,
    ``ξ ~ N(0, I_d)`` (Ferbach et al. Assumption 8 shape: a measure η-close to a k-dimensional subspace).

    ``η = 0`` is supported exactly on the subspace (rate m^{-1/k}); ``η > 0`` has a full-dimensional density
    (the rate returns to m^{-1/d} below a floor of order η·√(2d)). ``seed`` fixes ``U`` only.
    """
    d = check_int("d", d, 1)
    k = check_int("k", k, 1)
    if k > d:
        raise ValueError(f"k must be <= d, got k={k}, d={d}")
    eta = check_real("eta", eta, 0.0)
    seed = check_int("seed", seed, 0)
    return SubspaceSampler(d, k, eta, seed)


#: Key namespace of the sweep cache of :func:`two_sample_wasserstein` and :func:`subsample_wasserstein`.
WASSERSTEIN_NAMESPACE = "ch05a-wasserstein-v1"


def _wasserstein_unit(compute: Callable[[], np.ndarray], /, **key: Any) -> torch.Tensor:
    """A cached Wasserstein table: ``compute()`` (a partial of a module-level function) as a CPU tensor."""
    return torch.from_numpy(np.ascontiguousarray(compute()))


def _cached_table(compute: Callable[[], np.ndarray], key: dict[str, Any] | None, cache_dir: Any,
                  executor: Any) -> np.ndarray:
    """``compute()`` as the one configuration ``key`` of :func:`lmcnb.infra.sweep.run_grid` (``key`` None: the
    inputs cannot be keyed; computed here, an explicit cache or executor refused)."""
    explicit = cache_dir is not _sweep.RUNNER or executor is not _sweep.RUNNER
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    if key is None:
        if explicit and (cache_dir is not None or executor is not None):
            raise TypeError("only a dataclass sampler (gaussian_sampler, uniform_sampler, subspace_sampler, or your "
                            "own dataclass) can be cached or sent to an executor; pass cache_dir=None, executor=None")
        return compute()
    [(_, stored)] = _sweep.run_grid(functools.partial(_wasserstein_unit, compute), [key], cache_dir=cache_dir,
                                    namespace=WASSERSTEIN_NAMESPACE, progress=False, executor=executor)
    return stored.numpy()


def two_sample_wasserstein(sampler, ms, reps: int, p: float = 2, seed: int = 0, *,
                           cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER,
                           executor: Any = _sweep.RUNNER) -> np.ndarray:
    """``W_p(μ̂_m, ν̂_m)`` between two independent ``m``-point samples of the same measure, for each ``m``.

    Ferbach et al. bound the matched distance of two networks' neurons by this quantity
    (``W_p(μ̂_m, ν̂_m) ≤ W_p(μ̂_m, μ) + W_p(μ, ν̂_m)``): it is what decays like ``m^{-1/d}``.
    Uses the exact Hungarian fast path of :func:`wasserstein` (Birkhoff).

    Args:
        sampler: ``sampler(m, generator) -> (m, d)`` float64, e.g. :func:`gaussian_sampler`.
        ms: sample sizes ``(K,)``, positive ints.
        reps: independent repetitions per size (``≥ 1``).
        p: order ``≥ 1``.
        seed: seeds one ``torch.Generator`` for all draws (results are deterministic in it).
        cache_dir, executor: the call is one configuration of :func:`lmcnb.infra.sweep.run_grid`
            (:data:`WASSERSTEIN_NAMESPACE`, keyed by the sampler's fields and the arguments), so a chapter that
            calls it per setting resumes from ``cache_dir``. Both default to the headless runner's settings
            (:data:`lmcnb.infra.sweep.RUNNER`: ``$LMCNB_CACHE_DIR``, ``$LMCNB_ENGINE``; unset in CI and the quick
            profile); None: no cache / here. Only a dataclass sampler (the three above) can be keyed: any other
            callable is computed here (an explicit ``cache_dir`` or ``executor`` then raises ``TypeError``).

    Returns:
        ``W`` ``(K, reps)`` float64 array.
    """
    if not callable(sampler):
        raise TypeError(f"sampler must be callable (m, generator) -> (m, d), got {type(sampler).__name__}")
    ms = _check_sizes(ms)
    reps = check_int("reps", reps, 1)
    p = check_real("p", p, 1)
    seed = check_int("seed", seed, 0)
    key = None
    if dataclasses.is_dataclass(sampler) and not isinstance(sampler, type):
        key = {"two_sample": _sweep.dataclass_key(sampler), "ms": ms, "reps": reps, "p": p, "seed": seed}
    return _cached_table(functools.partial(_two_sample_wasserstein, sampler, ms, reps, p, seed), key, cache_dir,
                         executor)


def _two_sample_wasserstein(sampler, ms: list[int], reps: int, p: float, seed: int) -> np.ndarray:
    """The computation of :func:`two_sample_wasserstein` (arguments validated)."""
    g = torch.Generator().manual_seed(seed)
    out = np.empty((len(ms), reps))
    for i, m in enumerate(ms):
        for r in range(reps):
            X, Y = sampler(m, g), sampler(m, g)
            if not isinstance(X, torch.Tensor) or X.shape[0] != m or X.ndim != 2:
                raise ValueError(f"sampler(m={m}) must return an (m, d) tensor, got "
                                 f"{getattr(X, 'shape', type(X).__name__)}")
            out[i, r] = wasserstein(X, Y, p=p)
    return out


# ----------------------------------------------------------------------------------------------------------
# Approximate dimension of what each matcher transports (Ferbach et al. Fig. 2, right panel)
# ----------------------------------------------------------------------------------------------------------

def _dimension(S: torch.Tensor) -> float:
    return approximate_dimension((S + S.T) / 2)


def matching_dimensions(model: torch.nn.Module, x: torch.Tensor, centered: bool = False) -> dict[str, list[float]]:
    """Approximate dimension ``Dim(S) = tr(S)²/tr(S²)`` of the three matrices of Ferbach et al.'s Fig. 2.

    For every hidden layer ``ℓ = 1 … L−1`` of an MLP (weights ``W_ℓ`` ``(m_ℓ, m_{ℓ−1})``, biases ignored as in
    the authors' code), with ``h_{ℓ−1}`` the layer's input over ``x`` (``h_0 = x``) and ``z_ℓ`` its post-ReLU
    output, all from this one model:

    - ``"euclidean"`` (Euclidean weight matching, the authors' "naive WM"): ``S = W_ℓᵀ W_ℓ``, the neurons' incoming weights as points in R^{m_{ℓ−1}}
      (uncentred; ``centered=True`` subtracts the mean neuron);
    - ``"covariance"`` (Σ-weighted matching): ``S = W_ℓ Σ_{ℓ−1} W_ℓᵀ`` with ``Σ_{ℓ−1} = E[h hᵀ]`` (uncentred, as
      in the authors' code) or ``Cov(h)`` (``centered=True``) — the pre-activation second moment;
    - ``"activation"`` (activation matching): ``S = E[z zᵀ]`` (or ``Cov(z)``).

    Args:
        model: :class:`lmcnb.models.MLP`. x: inputs ``(n, *)`` in the model's dtype and device.
        centered: use centred matrices (covariances) instead of the authors' uncentred second moments.

    Returns:
        ``{"euclidean": [...], "covariance": [...], "activation": [...]}``, one float per hidden layer.
    """
    if not isinstance(model, MLP):
        raise TypeError(f"model must be an lmcnb.models.MLP, got {type(model).__name__}")
    check_bool("centered", centered)
    x = check_tensor("x", x, min_ndim=2)
    out: dict[str, list[float]] = {"euclidean": [], "covariance": [], "activation": []}
    with torch.no_grad():
        h = x.flatten(1).double()
        for layer in list(model.layers)[:-1]:
            W = layer.weight.detach().double().to(h.device)
            Wc = W - W.mean(0, keepdim=True) if centered else W
            hc = h - h.mean(0, keepdim=True) if centered else h
            sigma = hc.T @ hc / h.shape[0]
            z = torch.relu(torch.nn.functional.linear(h, W, None if layer.bias is None
                                                      else layer.bias.detach().double().to(h.device)))
            zc = z - z.mean(0, keepdim=True) if centered else z
            out["euclidean"].append(_dimension(Wc.T @ Wc))
            out["covariance"].append(_dimension(W @ sigma @ W.T))
            out["activation"].append(_dimension(zc.T @ zc / z.shape[0]))
            h = z
    return RenamedKeys(out, {"naive": "euclidean"})  # the old key of Euclidean weight matching


#: Which matrix of :func:`matching_dimensions` is the space each Fig. 2 matcher works in.
FIG2_SPACES = {"Euclidean WM": "euclidean", "Σ-weighted WM": "covariance", "activation matching": "activation"}


def matcher_barriers(pair: merge.Pair, matchers: Mapping[str, Callable[..., object]], evaluation: Split, *,
                     data: torch.Tensor, lambdas: torch.Tensor, calibration: Split | None = None,
                     spaces: Mapping[str, str] | None = None,
                     cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER, executor: Any = _sweep.RUNNER) -> dict:
    """One pair of Ferbach et al.'s Fig. 2 grid: every matcher's barriers and the dimension of its space.

    ``b`` is aligned to ``a`` by each matcher (on ``data``), the path ``θ_λ`` is evaluated on ``evaluation``
    (:class:`lmcnb.merge.Empirical`; with ``calibration`` every point is temperature-calibrated on that held-out
    split, :class:`lmcnb.merge.CalibrateTemperature`), and the ``linear`` barrier is taken of each metric.

    Args:
        pair: two :class:`lmcnb.models.MLP` classifiers. matchers: ``name → matcher``; the first one is the
            reference whose curve gives the endpoint statistics (the identity in chapter 5b).
        evaluation: the split the barriers are measured on. data: inputs ``(n, *)`` for the matchers and for
            the dimensions (model a's statistics). lambdas: the path grid ``(T,)`` with 0 and 1.
        calibration: held-out split for per-λ temperature calibration, or None (no calibrated metrics).
        spaces: matcher name → key of :func:`matching_dimensions` (default :data:`FIG2_SPACES`, matchers not in
            it get no dimension).
        cache_dir, executor: with either set, the call is one configuration of :func:`lmcnb.infra.sweep.run_grid`
            (:data:`MATCHER_BARRIERS_NAMESPACE`, keyed by the two networks' parameters, the matchers' fields,
            the splits' and inputs' contents, ``lambdas`` and ``spaces``), so a chapter calling it per pair
            resumes from ``cache_dir``. Both default to the headless runner's settings
            (:data:`lmcnb.infra.sweep.RUNNER`: ``$LMCNB_CACHE_DIR``, ``$LMCNB_ENGINE``; unset in CI and the quick
            profile, where the row is computed here directly); None: no cache / here.

    Returns:
        ``{"acc", "loss"}`` (means over the two endpoints; with ``calibration`` also ``"cal"``, the calibrated
        endpoint loss, and ``"T"``, the mean fitted temperature), ``(name, metric)`` barriers for ``metric`` in
        ``"loss"``, ``"accuracy"`` (and ``"calibrated_loss"``), and ``(name, "dim")`` arrays, one
        uncentred approximate dimension per hidden layer of model a.
    """
    if not isinstance(evaluation, Split) or (calibration is not None and not isinstance(calibration, Split)):
        raise TypeError("evaluation and calibration must be lmcnb.data.Split (calibration may be None)")
    spaces = dict(FIG2_SPACES if spaces is None else spaces)
    unknown = set(spaces) - set(matchers)
    if unknown:
        raise ValueError(f"spaces name matchers that are not given: {sorted(unknown)}")
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    if cache_dir is None and executor is None:
        return _matcher_barriers(pair, matchers, evaluation, data, lambdas, calibration, spaces)
    digest = _sweep.tensor_digest
    key = {"pair": [{k: digest(v) for k, v in m.state_dict().items()} for m in (pair.model_a, pair.model_b)],
           "matchers": {str(k): _sweep.dataclass_key(m) for k, m in matchers.items()},
           "evaluation": [digest(evaluation.x), digest(evaluation.y)], "data": digest(data),
           "lambdas": digest(torch.as_tensor(lambdas)),
           "calibration": None if calibration is None else [digest(calibration.x), digest(calibration.y)],
           "spaces": {str(k): str(v) for k, v in spaces.items()}}
    fn = functools.partial(_matcher_barriers_unit, pair, dict(matchers), evaluation, data, lambdas, calibration,
                           spaces)
    [(_, stored)] = _sweep.run_grid(fn, [key], cache_dir=cache_dir, namespace=MATCHER_BARRIERS_NAMESPACE,
                                    progress=False, executor=executor)
    return {(tuple(k) if isinstance(k, list) else k): (v.numpy() if isinstance(v, torch.Tensor) else v)
            for k, v in stored}


#: Key namespace of :func:`matcher_barriers`'s sweep cache.
MATCHER_BARRIERS_NAMESPACE = "ch05b-matcher-barriers-v1"


def _matcher_barriers_unit(pair: merge.Pair, matchers: dict, evaluation: Split, data: torch.Tensor,
                           lambdas: torch.Tensor, calibration: Split | None, spaces: dict, /,
                           **content: Any) -> list[tuple[Any, Any]]:
    """:func:`matcher_barriers` as a sweep configuration: the row as ``(key, value)`` items with the arrays as
    CPU tensors (what the cache stores; module level, picklable)."""
    row = _matcher_barriers(pair, matchers, evaluation, data, lambdas, calibration, spaces)
    return [(k, torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v)
            for k, v in row.items()]


def _matcher_barriers(pair: merge.Pair, matchers: Mapping[str, Callable[..., object]], evaluation: Split,
                      data: torch.Tensor, lambdas: torch.Tensor, calibration: Split | None,
                      spaces: dict[str, str]) -> dict:
    """The computation of :func:`matcher_barriers` (arguments validated)."""
    repairs = [] if calibration is None else [merge.CalibrateTemperature(calibration)]
    res = merge.compare(pair, matchers, lambdas, merge.Empirical(evaluation.x, evaluation.y), data=data,
                        repairs=repairs)
    c0 = next(iter(res.outcomes.values())).curve
    row: dict = {"acc": float(np.mean(c0.endpoints("accuracy"))), "loss": float(np.mean(c0.endpoints("loss")))}
    metrics = ["loss", "accuracy"]
    if calibration is not None:
        row["cal"] = float(np.mean(c0.endpoints("calibrated_loss")))
        row["T"] = float(np.mean(c0.endpoints("temperature")))
        metrics.insert(1, "calibrated_loss")
    for name, outcome in res.outcomes.items():
        for metric in metrics:
            row[name, metric] = outcome.curve.barrier("linear", metric)
    if spaces:
        dims = matching_dimensions(pair.model_a, data)
        for name, key in spaces.items():
            row[name, "dim"] = np.array(dims[key])
    return row


# ----------------------------------------------------------------------------------------------------------
# Chapter 5b: deep i.i.d. networks quantitatively — width needed for ε (Thm 5.2 exponent), Lemma 4.1 per layer
# ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WidthNeeded:
    """The width needed for a midpoint error ``ε``, from a power-law fit ``err(m) ≈ C m^{−α}``.

    Attributes:
        decay: the log–log fit of ``err`` against ``m`` (:class:`lmcnb.fit.SlopeFit`; its slope is ``−α``).
        exponent, ci_low, ci_high: ``1/α``, the exponent of ``1/ε`` in the needed width
            ``m(ε) = (C/ε)^{1/α}``, with the interval mapped from the slope's bootstrap interval (``inf`` when
            the slope's interval reaches 0: the error may not fall at all). Ferbach et al.'s Thm 5.2 (upper
            bound) and Thm 5.3 (lower bound) put this exponent at ``m_0`` for one hidden layer, up to logs.
    """

    decay: SlopeFit
    exponent: float
    ci_low: float
    ci_high: float

    def width(self, eps: float) -> float:
        """The fitted width ``(C/ε)^{1/α}`` at which the error reaches ``eps`` (``> 0``; ``inf`` if ``α ≤ 0``)."""
        eps = check_real("eps", eps, 0.0, low_open=True)
        if self.decay.slope >= 0:
            return math.inf
        return float(math.exp((math.log(eps) - self.decay.intercept) / self.decay.slope))


def _inverse_decay(slope: float) -> float:
    return math.inf if slope >= 0 else -1.0 / slope


def width_needed(widths, errors, n_boot: int = 1000, ci: float = 0.95, seed: int = 0) -> WidthNeeded:
    """Fit ``err(m) ≈ C m^{−α}`` over widths (bootstrap over replicate pairs within each width) and invert it:
    the width needed for error ``ε`` grows like ``ε^{−1/α}``; ``1/α`` is what Thm 5.2's ``ε^{−m_0}`` predicts.

    Args:
        widths: the ``K ≥ 2`` distinct widths ``(K,)``, positive.
        errors: ``(K, R)`` positive midpoint errors, ``R`` replicate pairs per width (or ``K`` sequences).
        n_boot, ci, seed: the bootstrap of :func:`lmcnb.fit.bootstrap_slope` (replicates resampled per width).

    Returns:
        :class:`WidthNeeded`; its interval on ``1/α`` maps the slope interval ``[lo, hi]`` to
        ``[1/|lo|, 1/|hi|]`` (``inf`` where the slope's bound is ``≥ 0``).
    """
    decay = bootstrap_slope(widths, [list(map(float, e)) for e in errors], n_boot=n_boot, ci=ci, seed=seed)
    return WidthNeeded(decay, _inverse_decay(decay.slope), _inverse_decay(decay.ci_low),
                       _inverse_decay(decay.ci_high))


@dataclass(frozen=True)
class LayerwiseErrors:
    """Ferbach et al.'s Lemma 4.1, measured: the midpoint error layer by layer and its two sources.

    For layer ``ℓ = 1 … L`` (``L`` the output), with ``h^A_ℓ, h^B_ℓ`` the activations of A and of the aligned B,
    ``h̄_ℓ = ½(h^A_ℓ + h^B_ℓ)``, ``h^½_ℓ`` those of the midpoint network ``θ_½`` (``W̄_ℓ = ½(W^A_ℓ + W^B_ℓ)``) and
    ``φ`` ReLU (identity at the output), every entry is a Frobenius norm over the ``n`` inputs and ``m_ℓ`` units
    divided by ``‖h^A_ℓ‖`` (one ``(L,)`` float64 array each):

    - ``error``: ``E_ℓ = ‖h^½_ℓ − h̄_ℓ‖`` (the last entry is the relative midpoint error of the output);
    - ``propagated``: ``‖φ(W̄_ℓ h^½_{ℓ−1} + b̄_ℓ) − φ(W̄_ℓ h̄_{ℓ−1} + b̄_ℓ)‖``, the error carried in from layer ℓ−1;
    - ``gain_bound``: ``‖W̄_ℓ‖_op ‖h^½_{ℓ−1} − h̄_{ℓ−1}‖`` — Lemma 4.1's ``C₂ E_{ℓ−1}`` term with ``C₂`` the
      operator norm (``φ`` is 1-Lipschitz, so ``propagated ≤ gain_bound``); 0 at ``ℓ = 1``;
    - ``new``: ``‖φ(W̄_ℓ h̄_{ℓ−1} + b̄_ℓ) − h̄_ℓ‖``, the error the layer makes on exact inputs — Lemma 4.1's
      matching term ``C₁ m̃ Ē_ℓ``;
    - ``matching``: ``Ē_ℓ = ‖Z^A_ℓ − Z^B_ℓ‖ / ‖Z^A_ℓ‖`` with ``Z`` the pre-activations on each network's own
      inputs: for ``ℓ = 1`` exactly the Σ₀-weighted distance of the matched rows.

    By the triangle inequality ``E_ℓ ≤ propagated_ℓ + new_ℓ ≤ gain_bound_ℓ + new_ℓ`` (the recursion).
    """

    error: np.ndarray
    propagated: np.ndarray
    gain_bound: np.ndarray
    new: np.ndarray
    matching: np.ndarray

    def recursion(self) -> np.ndarray:
        """``gain_bound + new`` ``(L,)``: the right-hand side of the measured Lemma 4.1 recursion."""
        return self.gain_bound + self.new


def layerwise_errors(model_a: torch.nn.Module, model_b: torch.nn.Module, x: torch.Tensor) -> LayerwiseErrors:
    """Measure Lemma 4.1's layer-wise propagation (see :class:`LayerwiseErrors`) for two MLPs, ``model_b`` already
    aligned to ``model_a`` (e.g. by :func:`lmcnb.matching.align`).

    Args:
        model_a, model_b: :class:`lmcnb.models.MLP` of the same widths. x: inputs ``(n, *)``.

    Returns:
        :class:`LayerwiseErrors`, one entry per layer (hidden layers, then the output).
    """
    for name, m in (("model_a", model_a), ("model_b", model_b)):
        if not isinstance(m, MLP):
            raise TypeError(f"{name} must be an lmcnb.models.MLP, got {type(m).__name__}")
    if model_a.widths != model_b.widths:
        raise ValueError(f"model_a and model_b must have the same widths, got {model_a.widths} and "
                         f"{model_b.widths}")
    x = check_tensor("x", x, min_ndim=2)

    def params(layer):
        W = layer.weight.detach().double().to(x.device)
        b = None if layer.bias is None else layer.bias.detach().double().to(x.device)
        return W, b

    out = {k: [] for k in ("error", "propagated", "gain_bound", "new", "matching")}
    la, lb = list(model_a.layers), list(model_b.layers)
    with torch.no_grad():
        ha = hb = hm = x.flatten(1).double()
        for k, (A, B) in enumerate(zip(la, lb)):
            (Wa, ba), (Wb, bb) = params(A), params(B)
            Wm = (Wa + Wb) / 2
            bm = None if ba is None else (ba + bb) / 2
            phi = torch.relu if k < len(la) - 1 else (lambda t: t)
            lin = torch.nn.functional.linear
            za, zb = lin(ha, Wa, ba), lin(hb, Wb, bb)
            hbar_in = (ha + hb) / 2
            ha_new, hb_new = phi(za), phi(zb)
            hm_new = phi(lin(hm, Wm, bm))
            exact_in = phi(lin(hbar_in, Wm, bm))
            hbar = (ha_new + hb_new) / 2
            scale = float(ha_new.norm())
            if scale == 0.0:
                raise ValueError(f"layer {k + 1} of model_a is identically 0 on x: relative errors undefined")
            out["error"].append(float((hm_new - hbar).norm()) / scale)
            out["propagated"].append(float((hm_new - exact_in).norm()) / scale)
            out["gain_bound"].append(float(torch.linalg.matrix_norm(Wm, ord=2)) * float((hm - hbar_in).norm())
                                     / scale)
            out["new"].append(float((exact_in - hbar).norm()) / scale)
            out["matching"].append(float((za - zb).norm()) / max(float(za.norm()), 1e-300))
            ha, hb, hm = ha_new, hb_new, hm_new
    return LayerwiseErrors(**{k: np.array(v) for k, v in out.items()})


# ----------------------------------------------------------------------------------------------------------
# Birkhoff and the identity pairing as statistics (chapter 5a's checks and their negative controls)
# ----------------------------------------------------------------------------------------------------------

def birkhoff_statistics(a: torch.Tensor, b: torch.Tensor, C: torch.Tensor,
                        tol: float = 1e-12) -> tuple[int, float, bool]:
    """How far the exact OT plan ``π`` between ``a`` and ``b`` for the cost ``C`` is from a permutation.

    Birkhoff (Ferbach et al. Lemma B.3): for two uniform measures on ``m`` points each the exact (vertex) plan is
    ``1/m`` times a permutation matrix, so it has ``m`` non-zeros, ``is_permutation_plan`` holds and its cost
    equals the optimal assignment cost ``min_σ (1/m) Σ_i C_{iσ(i)}``. With unequal weights (the negative
    control) the plan splits mass: more than ``m`` non-zeros and a cost gap.

    Args:
        a, b: weights ``(m,)`` of equal total mass (probability vectors).
        C: cost matrix ``(m, m)``.
        tol: an entry counts as non-zero above ``tol`` (``> 0``).

    Returns:
        ``(non-zeros of π, |⟨π, C⟩ − assignment cost| / assignment cost, is_permutation_plan(π))``.
    """
    C = check_tensor("C", C, ndim=2)
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"C must be square (m, m), got {tuple(C.shape)}")
    tol = check_real("tol", tol, 0.0, low_open=True)
    plan = ot_plan(a, b, C)
    m = C.shape[0]
    perm = hungarian(C)
    assignment = float(C[torch.arange(m), perm].double().mean())
    if assignment <= 0.0:
        raise ValueError("the optimal assignment cost is 0; the relative gap is undefined")
    gap = abs(float((plan.double() * C.double()).sum()) - assignment) / assignment
    return int((plan > tol).sum()), gap, bool(is_permutation_plan(plan))


def identity_cost_ratio(X: torch.Tensor, Y: torch.Tensor, p: float = 2) -> float:
    """Cost of the identity pairing ``x_i ↔ y_i`` over the optimal one: ``Σ_i c(x_i, y_i) / min_σ Σ_i c(x_i, y_σ(i))``
    with ``c = ‖·‖^p`` (:func:`lmcnb.transport.cost_matrix`).

    At least 1; large for two independent samples (the index carries no information), about 1 when ``Y`` is a
    small perturbation of ``X`` (coupled samples: the negative control of "the identity is far from optimal").

    Args:
        X, Y: point clouds ``(m, d)`` of one dtype; p: cost exponent ``≥ 1``.
    """
    C = cost_matrix(X, Y, p=check_real("p", p, 1))
    if C.shape[0] != C.shape[1]:
        raise ValueError(f"X and Y must hold the same number of points, got {C.shape[0]} and {C.shape[1]}")
    best = float(C[torch.arange(C.shape[0]), hungarian(C)].double().mean())
    if best <= 1e-12 * float(C.double().mean()):  # rounding of the squared-distance formula, not a cost
        raise ValueError("the optimal pairing has cost 0 (Y is a permutation of X); the ratio is undefined")
    return float(C.diagonal().double().mean()) / best


# ----------------------------------------------------------------------------------------------------------
# Theorem 3.1: independently trained mean-field networks along their trajectory, and the i.i.d. reference
# ----------------------------------------------------------------------------------------------------------

def subsample_wasserstein(cloud: torch.Tensor, ms, reps: int, p: float = 2, seed: int = 0, *,
                          cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER,
                          executor: Any = _sweep.RUNNER) -> np.ndarray:
    """``W_p`` between two *disjoint* uniformly random ``m``-point subsamples of one cloud, for each ``m``.

    When ``cloud`` holds ``n`` (nearly) i.i.d. draws of a measure ``ρ`` (e.g. the neurons of one very wide
    mean-field network, i.i.d. from ``ρ_t`` up to propagation of chaos), two disjoint subsamples are two
    independent ``m``-samples of ``ρ``: this is the i.i.d. two-sample distance :func:`two_sample_wasserstein`
    computes, for a measure that can only be sampled through ``cloud``.

    Args:
        cloud: points ``(n, D)``. ms: subsample sizes ``(K,)``, each with ``2 m ≤ n``.
        reps: independent pairs of subsamples per size (``≥ 1``). p: order ``≥ 1``.
        seed: seeds the random subsets (deterministic in it).
        cache_dir, executor: as in :func:`two_sample_wasserstein` (keyed by the cloud's content).

    Returns:
        ``W`` ``(K, reps)`` float64 array.
    """
    cloud = check_tensor("cloud", cloud, ndim=2)
    ms = _check_sizes(ms)
    n = cloud.shape[0]
    if 2 * max(ms) > n:
        raise ValueError(f"two disjoint subsamples of m = {max(ms)} need 2 m <= n points, cloud has n = {n}")
    reps = check_int("reps", reps, 1)
    p = check_real("p", p, 1)
    seed = check_int("seed", seed, 0)
    key = {"subsample": _sweep.tensor_digest(cloud), "ms": ms, "reps": reps, "p": p, "seed": seed}
    return _cached_table(functools.partial(_subsample_wasserstein, cloud, ms, reps, p, seed), key, cache_dir,
                         executor)


def _subsample_wasserstein(cloud: torch.Tensor, ms: list[int], reps: int, p: float, seed: int) -> np.ndarray:
    """The computation of :func:`subsample_wasserstein` (arguments validated)."""
    n = cloud.shape[0]
    g = torch.Generator().manual_seed(seed)
    out = np.empty((len(ms), reps))
    for i, m in enumerate(ms):
        for r in range(reps):
            idx = torch.randperm(n, generator=g)
            out[i, r] = wasserstein(cloud[idx[:m]], cloud[idx[m:2 * m]], p=p)
    return out


@dataclass(frozen=True)
class PairTrajectory:
    """Pairs of independently trained mean-field networks, measured at ``K`` checkpoints (Ferbach et al. Thm 3.1).

    Every array is ``(K, P)``: checkpoint ``k`` (after ``steps[k]`` SGD steps) of pair ``p``; ``B`` is aligned
    to ``A`` by OT on the neuron clouds (:func:`lmcnb.meanfield.ot_align`) afresh at each checkpoint.

    - ``ot_barrier`` / ``identity_barrier``: test-MSE barrier ``sup_t [L(θ_t) − ((1−t) L_A + t L_B)]``
      (:func:`lmcnb.meanfield.mse_barrier`) after OT / with B's neurons in their own order;
    - ``ot_error``: the theorem's functional error ``sup_t RMS_x[f(θ_t) − ((1−t) f_A + t f_B)]`` after OT;
    - ``w2``: ``W_2(μ̂_A, μ̂_B) = (min_π (1/N) Σ_i ‖θ^A_i − θ^B_{π(i)}‖²)^{1/2}`` (Birkhoff: OT attains it);
      ``identity_distance``: the same mean with ``π`` the identity;
    - ``endpoint_mse``: the larger of the two endpoints' test MSEs.
    """

    steps: np.ndarray
    ot_barrier: np.ndarray
    identity_barrier: np.ndarray
    ot_error: np.ndarray
    w2: np.ndarray
    identity_distance: np.ndarray
    endpoint_mse: np.ndarray

    @property
    def max_over_time(self) -> np.ndarray:
        """``sup_k`` of the OT barrier over the checkpoints, per pair ``(P,)`` (uniformity in time)."""
        return self.ot_barrier.max(0)


_TRAJ_FIELDS = ("ot_barrier", "identity_barrier", "ot_error", "w2", "identity_distance", "endpoint_mse")


def sgd_pair_trajectory(theta: torch.Tensor, target: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                        steps: int, lr: float, batch_size: int, generator: torch.Generator, checkpoints: int = 1,
                        activation: str = "tanh", *, cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER,
                        executor: Any = _sweep.RUNNER) -> PairTrajectory:
    """Train ``P`` pairs of mean-field networks by independent online SGD and measure them along the way.

    Each network follows :func:`lmcnb.meanfield.sgd` (its own fresh inputs at every step); after every
    ``steps / checkpoints`` steps the pairs are compared on the test inputs ``x`` with targets ``target(x)``
    (see :class:`PairTrajectory`). Theorem 3.1 holds uniformly over steps ``k ≤ T/ε``: its quantity is the
    maximum over the checkpoints, :attr:`PairTrajectory.max_over_time`.

    Args:
        theta: initial neurons ``(P, 2, N, d + 2)`` float64 (pair ``p``'s networks A and B are
            ``theta[p, 0]`` and ``theta[p, 1]``), not modified.
        target: ``x (n, d) -> y (n,)``, the teacher. x: test inputs ``(n, d)``.
        steps, lr, batch_size: the SGD recipe (``steps`` a multiple of ``checkpoints``); the horizon is
            ``T = lr · steps`` in the mean-field time.
        generator: the only source of randomness (SGD inputs). checkpoints: ``K ≥ 1`` equally spaced
            measurements, the last one after all ``steps``. activation: ``"tanh"`` or ``"relu"``.
        cache_dir, executor: the call is one configuration of :func:`lmcnb.infra.sweep.run_grid`
            (:data:`TRAJECTORY_NAMESPACE`; keyed by the contents of ``theta``, ``x``, ``target``'s fields, the
            recipe and the generator's state), so a chapter that calls it per width resumes from ``cache_dir``;
            ``generator`` ends in the state the SGD leaves it in, cache hit or not, so later draws from it are the
            same. Both default to the headless runner's settings (:data:`lmcnb.infra.sweep.RUNNER`:
            ``$LMCNB_CACHE_DIR``, ``$LMCNB_ENGINE``; unset in CI and the quick profile); None: no cache / here.
            Only a dataclass ``target`` (e.g. :func:`lmcnb.meanfield.tanh_teacher`) on a CPU generator can be
            keyed: with any other the trajectory is computed here without a cache (an explicit ``cache_dir``
            or ``executor`` then raises ``TypeError``).

    Returns:
        :class:`PairTrajectory` with ``steps = (steps/K, 2 steps/K, …, steps)``.
    """
    theta = check_tensor("theta", theta, ndim=4)
    if theta.shape[1] != 2:
        raise ValueError(f"theta must have shape (P, 2, N, D) (a pair per row), got {tuple(theta.shape)}")
    steps, checkpoints = check_int("steps", steps, 1), check_int("checkpoints", checkpoints, 1)
    if steps % checkpoints:
        raise ValueError(f"steps = {steps} must be a multiple of checkpoints = {checkpoints}")
    check_generator("generator", generator)
    x = check_tensor("x", x, ndim=2)
    if not callable(target):
        raise TypeError(f"target must be callable x (n, d) -> y (n,), got {type(target).__name__}")
    lr, batch_size = check_real("lr", lr, 0.0, low_open=True), check_int("batch_size", batch_size, 1)
    keyable = dataclasses.is_dataclass(target) and not isinstance(target, type) and generator.device.type == "cpu"
    explicit = cache_dir is not _sweep.RUNNER or executor is not _sweep.RUNNER
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    if not keyable:
        if explicit and (cache_dir is not None or executor is not None):
            raise TypeError("sgd_pair_trajectory can cache or send to an executor only a dataclass target (e.g. "
                            "meanfield.tanh_teacher) with a CPU generator; pass cache_dir=None, executor=None")
        return _sgd_pair_trajectory(theta, target, x, steps, lr, batch_size, generator, checkpoints, activation)
    digest = _sweep.tensor_digest
    key = {"theta": digest(theta), "target": _sweep.dataclass_key(target), "x": digest(x), "steps": steps,
           "lr": lr, "batch_size": batch_size, "generator": digest(generator.get_state()),
           "checkpoints": checkpoints, "activation": activation}
    fn = functools.partial(_trajectory_unit, theta, target, x, generator.get_state())
    [(_, stored)] = _sweep.run_grid(fn, [key], cache_dir=cache_dir, namespace=TRAJECTORY_NAMESPACE, progress=False,
                                    executor=executor)
    generator.set_state(stored["generator"])
    return PairTrajectory(**{f: stored[f].numpy() for f in ("steps", *_TRAJ_FIELDS)})


#: Key namespace of :func:`sgd_pair_trajectory`'s sweep cache; change the version whenever what it computes changes.
TRAJECTORY_NAMESPACE = "ch05a-sgd-pair-trajectory-v1"


def _trajectory_unit(theta: torch.Tensor, target: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     state: torch.Tensor, /, *, steps: int, lr: float, batch_size: int, checkpoints: int,
                     activation: str, **content: Any) -> dict[str, torch.Tensor]:
    """One configuration of :func:`sgd_pair_trajectory`: the run on a CPU generator in ``state``; returns the
    trajectory's arrays as CPU tensors and the generator's final ``state`` (module level, picklable)."""
    g = torch.Generator()
    g.set_state(state)
    traj = _sgd_pair_trajectory(theta, target, x, steps, lr, batch_size, g, checkpoints, activation)
    return {"generator": g.get_state(),
            **{f.name: torch.from_numpy(np.ascontiguousarray(getattr(traj, f.name)))
               for f in dataclasses.fields(traj)}}


def _sgd_pair_trajectory(theta: torch.Tensor, target: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                         steps: int, lr: float, batch_size: int, generator: torch.Generator, checkpoints: int,
                         activation: str) -> PairTrajectory:
    """The computation of :func:`sgd_pair_trajectory` (arguments validated)."""
    y = target(x)
    chunk = steps // checkpoints
    ts = torch.linspace(0, 1, 11, dtype=torch.float64)  # the grid of mse_barrier and interpolation_error
    rows: dict[str, list[np.ndarray]] = {f: [] for f in _TRAJ_FIELDS}
    for _ in range(checkpoints):
        theta = meanfield.sgd(theta, target, chunk, lr, batch_size, generator, activation)
        a, b = theta[:, 0], theta[:, 1]
        b_ot = meanfield.ot_align(a, b)
        mse = (meanfield.forward(theta, x, activation) - y).pow(2).mean(-1)               # (P, 2)
        for key, bb in (("ot", b_ot), ("identity", b)):
            f_path, f_lin = meanfield._path_outputs(a, bb, x, ts, activation)              # (T, P, n)
            loss = (f_path - y).pow(2).mean(-1)                                           # (T, P)
            lin = linear_baseline(loss[:1], loss[-1:], ts.view(-1, 1))
            rows[f"{key}_barrier"].append((loss - lin).amax(0).numpy())
            if key == "ot":
                rows["ot_error"].append((f_path - f_lin).pow(2).mean(-1).sqrt().amax(0).numpy())
        rows["w2"].append((a - b_ot).pow(2).sum(-1).mean(-1).sqrt().numpy())
        rows["identity_distance"].append((a - b).pow(2).sum(-1).mean(-1).sqrt().numpy())
        rows["endpoint_mse"].append(mse.amax(-1).numpy())
    return PairTrajectory(np.arange(1, checkpoints + 1) * chunk, *(np.stack(rows[f]) for f in _TRAJ_FIELDS))


# ----------------------------------------------------------------------------------------------------------
# Chapter 5b's batched MNIST training, resumable
# ----------------------------------------------------------------------------------------------------------

#: Key namespace of :func:`train_mlps_resumable`'s sweep cache.
TRAINING_NAMESPACE = "ch05b-train-mlps-v1"


def _training_unit(models: list[MLP], x: torch.Tensor, y: torch.Tensor, config: Any, seeds: list[int],
                   lrs: list[float] | None, /, **content: Any) -> dict[str, Any]:
    """One configuration of :func:`train_mlps_resumable`: the batched run, as the trained models' architectures
    and CPU state dicts and the history (module level, picklable)."""
    from .. import train as training

    nets, history = training.train_mlps(models, x, y, config, seeds=seeds, lrs=lrs)
    return {"nets": [{"widths": list(n.widths), "bias": n.bias,
                      "state": {k: v.detach().cpu() for k, v in n.state_dict().items()}} for n in nets],
            "loss": history.loss.cpu(), "lr": history.lr.cpu()}


def train_mlps_resumable(models: list[MLP], x: torch.Tensor, y: torch.Tensor, config: Any,
                         seeds: list[int], lrs: list[float] | None = None, *,
                         cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER,
                         executor: Any = _sweep.RUNNER) -> tuple[list[MLP], Any]:
    """:func:`lmcnb.train.train_mlps` ``(models, x, y, config, seeds=seeds, lrs=lrs)`` (one batched run of every
    model) as one configuration of :func:`lmcnb.infra.sweep.run_grid` (:data:`TRAINING_NAMESPACE`, keyed by the
    initial models' parameters, the data, ``config``'s fields, the seeds and the rates), so a paper run that
    is interrupted after the training resumes without retraining.

    Returns ``(nets, history)`` as :func:`lmcnb.train.train_mlps` does: the trained MLPs on ``x``'s device
    (bit-identical parameters, from the cache or not) and its :class:`lmcnb.train.TrainHistory`. ``cache_dir``,
    ``executor``: default to the headless runner's settings (:data:`lmcnb.infra.sweep.RUNNER`:
    ``$LMCNB_CACHE_DIR``, ``$LMCNB_ENGINE``; unset in CI and the quick profile); None: no cache / here."""
    from .. import train as training

    if not isinstance(models, (list, tuple)) or not all(isinstance(m, MLP) for m in models) or not models:
        raise TypeError("models must be a non-empty list of lmcnb.models.MLP (e.g. train.init_mlps(...))")
    seeds = [check_int(f"seeds[{i}]", s, 0) for i, s in enumerate(seeds)]
    rates = None if lrs is None else [check_real(f"lrs[{i}]", v, 0.0, low_open=True) for i, v in enumerate(lrs)]
    digest = _sweep.tensor_digest
    key = {"models": [{k: digest(v) for k, v in m.state_dict().items()} for m in models],
           "data": [digest(x), digest(y)], "config": _sweep.dataclass_key(config), "seeds": seeds, "lrs": rates}
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    fn = functools.partial(_training_unit, list(models), x, y, config, seeds, None if lrs is None else list(lrs))
    [(_, stored)] = _sweep.run_grid(fn, [key], cache_dir=cache_dir, namespace=TRAINING_NAMESPACE, progress=False,
                                    executor=executor)
    nets = []
    for spec in stored["nets"]:
        w = spec["widths"]
        with torch.device("meta"):  # no draw from torch's global RNG (as lmcnb.train.unstack)
            net = MLP(w[0], w[1:-1], w[-1], bias=spec["bias"], dtype=next(iter(spec["state"].values())).dtype)
        net = net.to_empty(device=x.device)
        net.load_state_dict(spec["state"])
        nets.append(net)
    return nets, training.TrainHistory(loss=stored["loss"], lr=stored["lr"])


# ----------------------------------------------------------------------------------------------------------
# Chapter 5b's pairs at initialisation across widths, resumable
# ----------------------------------------------------------------------------------------------------------

#: Key namespace of :func:`init_pair_errors`'s sweep cache.
INIT_ERRORS_NAMESPACE = "ch05b-init-pair-errors-v1"


def init_pair_width(in_dim: int, depth: int, width: int, pairs: int, matchers: Mapping[str, Callable[..., object]],
                    n_x: int, seed_base: int, match_data: bool) -> list[dict[str, LayerwiseErrors]]:
    """One width of :func:`init_pair_errors`: for pair ``s < pairs`` the bias-free float64 MLPs
    ``(in_dim, width × depth, 1)`` of seeds ``seed_base + 2s``, ``seed_base + 2s + 1`` at their Kaiming-normal
    initialisation (:func:`lmcnb.train.init_mlps`), inputs ``x (n_x, in_dim)`` from ``manual_seed(s)`` (then, if
    ``match_data``, the matching inputs, a second draw of that generator), and for every matcher the
    :func:`layerwise_errors` of ``a`` and the aligned ``b`` (:func:`lmcnb.matching.align`) on ``x``."""
    from .. import matching
    from .. import train as training

    out = []
    for s in range(pairs):
        a, b = training.init_mlps((in_dim, *([width] * depth), 1), 2, [seed_base + 2 * s, seed_base + 2 * s + 1],
                                  bias=False, init="kaiming_normal", dtype=torch.float64)
        g = torch.Generator().manual_seed(s)
        x = torch.randn(n_x, in_dim, generator=g, dtype=torch.float64)
        x_match = torch.randn(n_x, in_dim, generator=g, dtype=torch.float64) if match_data else None
        row = {}
        for k, mt in matchers.items():
            b_k = matching.align(a, b, mt, x_match)[0] if match_data else matching.align(a, b, mt)[0]
            row[k] = layerwise_errors(a, b_k, x)
        out.append(row)
    return out


def _init_errors_unit(matchers: dict[str, Callable[..., object]], /, *, in_dim: int, depth: int, width: int,
                      pairs: int, n_x: int, seed_base: int, match_data: bool,
                      **content: Any) -> list[dict[str, dict[str, torch.Tensor]]]:
    """:func:`init_pair_width` as a sweep configuration: every :class:`LayerwiseErrors` as CPU tensors."""
    rows = init_pair_width(in_dim, depth, width, pairs, matchers, n_x, seed_base, match_data)
    return [{k: {f.name: torch.from_numpy(np.ascontiguousarray(getattr(v, f.name))) for f in dataclasses.fields(v)}
             for k, v in row.items()} for row in rows]


def init_pair_errors(in_dim: int, depth: int, widths, pairs: int, matchers: Mapping[str, Callable[..., object]], *,
                     n_x: int, seed_base: int, match_data: bool = False,
                     cache_dir: str | os.PathLike[str] | None = _sweep.RUNNER, executor: Any = _sweep.RUNNER,
                     progress: bool = True) -> list[list[dict[str, LayerwiseErrors]]]:
    """Chapter 5b's pairs at initialisation: ``[width][pair][matcher name] -> LayerwiseErrors`` for every width
    (:func:`init_pair_width`), one configuration of :func:`lmcnb.infra.sweep.run_grid` per width
    (:data:`INIT_ERRORS_NAMESPACE`; the key holds the arguments and the matchers' fields), so an interrupted
    paper run resumes with the missing widths.

    Args:
        in_dim: input dimension ``m0``. depth: hidden layers. widths: hidden widths. pairs: pairs per width.
        matchers: name -> matcher (dataclasses such as :class:`lmcnb.matching.OTMatching`).
        n_x: inputs per pair. seed_base: pair ``s`` uses seeds ``seed_base + 2s``, ``seed_base + 2s + 1``.
        match_data: give the matchers their own inputs (a second draw of the pair's generator).
        cache_dir, executor: default to the headless runner's settings (:data:`lmcnb.infra.sweep.RUNNER`:
            ``$LMCNB_CACHE_DIR``, ``$LMCNB_ENGINE``; unset in CI and the quick profile); None: no cache / here.
        progress: a progress bar over the widths in the paper profile (never in quick).
    """
    in_dim, depth, pairs = check_int("in_dim", in_dim, 1), check_int("depth", depth, 1), check_int("pairs", pairs, 1)
    n_x, seed_base = check_int("n_x", n_x, 1), check_int("seed_base", seed_base, 0)
    ws = _check_sizes(widths)
    check_bool("match_data", match_data)
    check_bool("progress", progress)
    if not isinstance(matchers, Mapping) or not matchers or not all(callable(m) for m in matchers.values()):
        raise TypeError("matchers must be a non-empty mapping of names to matchers (e.g. matching.OTMatching())")
    names = [str(k) for k in matchers]
    grid = [{"in_dim": in_dim, "depth": depth, "width": w, "pairs": pairs, "n_x": n_x, "seed_base": seed_base,
             "match_data": match_data, "matchers": {k: _sweep.dataclass_key(matchers[k]) for k in names}}
            for w in ws]
    cache_dir, executor = _sweep.runner_settings(cache_dir, executor)
    rows = _sweep.run_grid(functools.partial(_init_errors_unit, dict(matchers)), grid, cache_dir=cache_dir,
                           namespace=INIT_ERRORS_NAMESPACE, progress=progress, executor=executor)
    return [[{k: LayerwiseErrors(**{f: t.numpy() for f, t in v.items()}) for k, v in row.items()} for row in pairs_]
            for _, pairs_ in rows]
