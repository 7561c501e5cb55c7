"""The plots of a comparison: per-class Dice per row (compare.png) and training curves (curves.png)."""

from __future__ import annotations

from pathlib import Path

from sss_nnunet.io import atomic_output


def bar_plot(rows: list[dict], classes: list[tuple[str, str]], title: str, path: Path) -> None:
    """Grouped bars: per-class and mean Dice per trainer, error bars = sd over seeds."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = [n for _, n in classes] + ["mean"]
    shown = [r for r in rows if r["aggregate"]]
    fig = Figure(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(shown)) ** 0.5 + 2), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(shown))
    x = np.arange(len(groups))
    for i, row in enumerate(shown):
        a = row["aggregate"]
        stats = [a["dice"][k] for k, _ in classes] + [a["mean_dice"]]
        means = [100 * s["mean"] if s else 0.0 for s in stats]
        sds = [100 * (s["sd"] or 0.0) if s else 0.0 for s in stats]
        ax.bar(x + (i - (len(shown) - 1) / 2) * width, means, width, yerr=sds if any(sds) else None, capsize=2,
               label=row["trainer"])
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_ylabel("Dice (%) on the test cases")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    if shown:  # beside the axes: inside, it hides the bars of the first groups once there are many trainers
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")


def curves_plot(rows: list[dict], title: str, path: Path) -> None:
    """Side by side: training loss, validation loss and the per-epoch pseudo Dice (what the convergence
    column reads) over training iterations, and nnU-Net's EMA pseudo Dice over wall time; one colour
    per trainer, one line per seed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = (("train_losses", "training loss"), ("val_losses", "validation loss"),
              ("mean_fg_dice", "pseudo Dice per epoch (validation patches)"),
              ("ema_fg_dice", "nnU-Net's EMA pseudo Dice against wall time"))
    fig = Figure(figsize=(17, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    colors = [f"C{i % 10}" for i in range(len(rows))]
    for row, color in zip(rows, colors):
        for j, run in enumerate(r for r in row["runs"] if r.get("status") == "ok"):
            curves, per_epoch = run["stats"]["curves"], run["stats"]["budget"]["iterations_per_epoch"]
            for i, (ax, (key, _)) in enumerate(zip(axes, panels)):
                ys = curves.get(key) or []
                xs = [(e + 1) * per_epoch for e in range(len(ys))]
                if i == 3:  # minutes from the first epoch's start to each epoch's end
                    starts, ends = curves.get("epoch_start_timestamps"), curves.get("epoch_end_timestamps")
                    if not starts or not ends:
                        continue
                    xs = [(t - starts[0]) / 60 for t in ends[: len(ys)]]
                    ys = ys[: len(xs)]
                ax.plot(xs, ys, color=color, lw=1.2, alpha=0.9 if j == 0 else 0.5,
                        label=row["trainer"] if j == 0 else None)
    for i, (ax, (_, label)) in enumerate(zip(axes, panels)):
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("wall time (min, training + validation)" if i == 3 else "training iterations")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")
