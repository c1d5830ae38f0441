"""The book's seaborn theme and its standard figures (barrier vs λ, barrier vs width on log axes).

Figures are returned, never saved or shown here: a chapter cell ends with ``plt.show()``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def theme() -> None:
    """Apply the book's theme (seaborn ``whitegrid``, colour-blind palette, compact figures)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
    mpl.rcParams.update({"figure.figsize": (6.4, 3.6), "figure.dpi": 100, "axes.titlesize": "medium"})


def _as_np(values: object) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values, dtype=float)


def plot_curves(curves: Mapping[str, object], metrics: Sequence[str] = ("losses", "accuracies"),
                labels: Mapping[str, str] | None = None, title: str | None = None):
    """One panel per metric, one line per named interpolation curve (attributes ``lambdas`` and metrics).

    Args:
        curves: name → object with ``lambdas`` (K,) and the attributes named in ``metrics`` (K,).
        metrics: attribute names, e.g. ``("losses", "accuracies", "calibrated_losses")``.
        labels: axis labels per metric (default: the attribute name).
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.4), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        for name, curve in curves.items():
            values = getattr(curve, metric)
            if values is None:
                continue
            ax.plot(_as_np(curve.lambdas), _as_np(values), marker="o", ms=3, label=name)
        ax.set_xlabel("λ  (0 = model a, 1 = model b)")
        ax.set_ylabel((labels or {}).get(metric, metric.replace("_", " ")))
    axes[0][0].legend(fontsize="small")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_vs_width(widths: Sequence[float], series: Mapping[str, np.ndarray], *, ylabel: str,
                  spread: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
                  slopes: Mapping[str, float] | None = None, logy: bool = True, ax=None):
    """Values against width on log–log axes, with an optional band and reference slopes.

    Args:
        widths: (W,) widths. series: name → (W,) centre values (median or mean over pairs).
        spread: name → (low (W,), high (W,)) band, e.g. quartiles over pairs.
        slopes: label → exponent α; draws c·m^α through the first series' last point for comparison.
    """
    import matplotlib.pyplot as plt
    import matplotlib.ticker as mticker

    if ax is None:
        _, ax = plt.subplots()
    w = _as_np(widths)
    for name, values in series.items():
        (line,) = ax.plot(w, _as_np(values), marker="o", ms=4, label=name)
        if spread and name in spread:
            lo, hi = spread[name]
            ax.fill_between(w, _as_np(lo), _as_np(hi), color=line.get_color(), alpha=0.2, lw=0)
    if slopes:
        anchor = _as_np(next(iter(series.values())))[-1]
        for label, alpha in slopes.items():
            ax.plot(w, anchor * (w / w[-1]) ** alpha, ls="--", lw=1, color="0.4", label=label)
    ax.set_xscale("log")
    ax.set_xticks(w)
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(mticker.NullFormatter())
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel("width")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small")
    return ax
