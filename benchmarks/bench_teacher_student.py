"""Speed of :func:`lmcnb.teacher_student.gd_population` (exact population GD, float64) against the step function it
had before its optimisation, copied below as the reference and timed in the same run.

Run ``.venv/bin/python benchmarks/bench_teacher_student.py [--quick] [--threads N]``. For each ``(B, m, d)`` (teacher
``M = 4``, ``c = 2``, small init) it runs ``steps`` GD steps with a loss check every 50 steps, prints ms/step of the
reference and of lmcnb, their ratio, and ``max |W_new − W_ref|`` after the run (float64 rounding only: the two
implementations must agree to ~1e-12 relative where the dynamics allow it). The last column, ``ΔW floor``, is
the reference's own ``max |ΔW|`` when ``W0`` is perturbed by one ulp: on seeds whose trajectory amplifies rounding
(nearly parallel neurons, saddle escapes; e.g. ``(32, 64, 8)``: ~1e-5 after 400 steps, ~1e-3 after 2000) no
reordering of floating-point operations can meet 1e-12, and ``ΔW`` must be judged against this floor. Best of ``repeats`` alternating runs; one torch thread by default.
"""
from __future__ import annotations

import argparse
import math
import platform
import time

import torch
from torch import Tensor

from lmcnb import teacher_student as ts

F64 = torch.float64
TWO_PI = 2.0 * math.pi


# ---------------------------------------------------------------------------------------------------------------
# Reference: the step function of lmcnb.teacher_student before the optimisation (verbatim, trimmed docstrings)
# ---------------------------------------------------------------------------------------------------------------

def _ref_norms(X: Tensor) -> tuple[Tensor, Tensor]:
    n = (X * X).sum(-1).sqrt_()
    return n, X * torch.where(n > 0, n.reciprocal(), 0.0)[..., None]


class _RefWorkspace:
    def __init__(self) -> None:
        self._buffers: dict[str, Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        buf = self._buffers.get(name)
        if buf is None or tuple(buf.shape) != shape:
            buf = torch.empty(shape, dtype=like.dtype, device=like.device)
            self._buffers[name] = buf
        return buf


def _ref_pieces(W, a, s, t_n, t_unit, a_star, t_const, with_loss, ws):
    B, m, d = W.shape
    M = t_n.shape[0]
    shape = (B, m, m + M)
    n, unit = _ref_norms(W)
    s1 = s[:, None]
    v_unit = torch.cat([unit, t_unit.expand(B, M, d)], 1)
    cn = torch.cat([(s1 * s1 * a) * n, (-s1 * a_star) * t_n], 1)
    t = torch.bmm(unit, v_unit.mT, out=ws.get("t", shape, W)).clamp_(-1.0, 1.0)
    sin = torch.mul(t, -1.0, out=ws.get("sin", shape, W)).add_(1.0)
    phi = torch.add(t, 1.0, out=ws.get("phi", shape, W))
    sin.mul_(phi).sqrt_()
    phi = torch.arccos(t, out=phi)
    cV = cn[:, :, None] * v_unit
    q = torch.baddbmm(0.5 * cV.sum(1, keepdim=True), phi, cV, alpha=-1.0 / TWO_PI)
    q.addcmul_(torch.bmm(sin, cn[:, :, None]), unit, value=1.0 / TWO_PI)
    loss = None
    if with_loss:
        J = sin.addcmul_(phi.neg_().add_(math.pi), t)
        coef = cn.clone()
        coef[:, m:] *= 2.0
        loss = ((a * n)[:, None, :] @ J @ coef[:, :, None])[:, 0, 0] / TWO_PI + t_const
    return q, n > 0, loss


def reference_gd(W0: Tensor, T: Tensor, c: float, steps: int, check_every: int = 50) -> tuple[Tensor, Tensor]:
    """The old ``gd_population`` loop for all-active models (no stopping): returns ``W`` and the last loss."""
    B, m, d = W0.shape
    W, a = W0.clone(), torch.ones(B, m, dtype=F64)
    s = torch.ones(B, dtype=F64)
    a_star = torch.ones(T.shape[0], dtype=F64)
    t_n, t_unit = _ref_norms(T)
    t_const = a_star @ ts.kernel._kernel(T, T) @ a_star
    eta = torch.full((B,), 2.0 * c / m, dtype=F64)[:, None]
    ws = _RefWorkspace()
    loss = None
    with torch.no_grad():
        for step in range(steps + 1):
            check = step % check_every == 0 or step == steps
            q, live, lo = _ref_pieces(W, a, s, t_n, t_unit, a_star, t_const, check, ws)
            if check:
                loss = lo
            if step == steps:
                break
            W.sub_(torch.where(live, eta * a, 0.0)[:, :, None] * q)
    return W, loss


def new_gd(W0: Tensor, T: Tensor, c: float, steps: int, check_every: int = 50) -> tuple[Tensor, Tensor]:
    res = ts.gd_population(W0, T, ts.GD(c=c, steps=steps, tol=0.0, check_every=check_every, threads=None))
    return res.W, res.final_loss


def best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few steps, one repeat")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    steps = args.steps or (200 if args.quick else 2000)
    repeats = args.repeats or (1 if args.quick else 3)
    cases = [(16, 32, 8), (32, 64, 8), (16, 128, 8)]
    print(f"# gd_population vs the pre-optimisation step ({platform.processor() or platform.machine()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {steps} steps, best of {repeats})\n")
    print("| B | m | d | reference ms/step | lmcnb ms/step | speed-up | max abs ΔW | max rel ΔW | Δloss | ΔW floor |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    M = 4
    for B, m, d in cases:
        g = torch.Generator().manual_seed(0)
        W0 = ts.small_init(B, m, d, generator=g)
        T = ts.orthonormal_teacher(d, M)
        Wr, lr = reference_gd(W0, T, 2.0, min(steps, 20))  # warm-up
        Wn, ln = new_gd(W0, T, 2.0, min(steps, 20))
        t_ref = t_new = math.inf
        for _ in range(repeats):  # alternate, keep the best of each
            t_ref = min(t_ref, best_time(lambda: reference_gd(W0, T, 2.0, steps), 1))
            t_new = min(t_new, best_time(lambda: new_gd(W0, T, 2.0, steps), 1))
        Wr, lr = reference_gd(W0, T, 2.0, steps)
        Wn, ln = new_gd(W0, T, 2.0, steps)
        dW = float((Wn - Wr).abs().max())
        rel = dW / float(Wr.abs().max())
        dl = float((ln - lr).abs().max())
        # sensitivity floor: the reference itself, started from W0 perturbed by 1 ulp (relative 2^-52, random sign)
        sign = torch.sign(torch.randn(W0.shape, generator=g, dtype=F64))
        Wp, _ = reference_gd(W0 * (1.0 + 2.0 ** -52 * sign), T, 2.0, steps)
        floor = float((Wp - Wr).abs().max())
        print(f"| {B} | {m} | {d} | {1e3 * t_ref / steps:.3f} | {1e3 * t_new / steps:.3f} | "
              f"{t_ref / t_new:.2f}× | {dW:.2e} | {rel:.2e} | {dl:.2e} | {floor:.2e} |")


if __name__ == "__main__":
    main()
