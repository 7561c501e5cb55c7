"""PNG of the per-class Dice distributions (box plot with the per-case points).

Uses matplotlib's Agg canvas directly (no pyplot, no global backend switch, no display).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sss_nnunet.evaluation.tasks import EvalTask


def dice_boxplot(summary: dict, task: EvalTask, path: Path) -> Path:
    """Write a box plot of Dice (%) per class over cases to ``path`` (PNG)."""
    data = [
        [100.0 * case[cls.key]["dice"] for case in summary["cases"].values() if cls.key in case]
        for cls in task.classes
    ]
    labels = [cls.short for cls in task.classes]
    fig = Figure(figsize=(max(4.0, 0.8 * len(labels) + 1.5), 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.boxplot(data, tick_labels=labels, showmeans=True, whis=(0, 100))
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(
            i + rng.uniform(-0.12, 0.12, len(values)), values, s=10, alpha=0.6, color="tab:blue", zorder=3
        )
    mean = summary["mean"]["dice"]
    if mean is not None:
        ax.axhline(
            100 * mean, color="tab:red", lw=0.8, ls="--", label=f"mean of class means {100 * mean:.2f}"
        )
        ax.legend(loc="lower left", fontsize=8)
    ax.set_ylabel("DSC (%)")
    ax.set_ylim(-2, 102)
    ax.set_title(
        f"{summary['dataset']}, {summary['protocol']} protocol, {summary['n_cases']} cases", fontsize=9
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return Path(path)
