"""Pictures of attention maps: per-stage orthogonal slices, a summary with decay profiles, scan comparison.

Maps are shown as log10(weight / uniform weight) on the image. The uniform weight is 1 / (number of voxels
the query attends to at all: its sequence or window; below 1e-3 of the peak counts as not at all). 0 (white)
is "as much as everywhere else", red is more, blue is less; Bi-WKV weights change exponentially with scan
distance, hence the log scale. Voxels outside the query's sequences are left uncoloured; the query voxel
is marked with a cross. Arrays are in image coordinates (Z, Y, X); ``spacing`` is (Z, Y, X) in mm.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sss_nnunet.io import atomic_output

MIN_RANGE, MAX_RANGE = 0.3, 3.0  # decades shown either side of uniform
LABEL = "log10(weight / uniform)"
VIEWS = (("axial", 0), ("coronal", 1), ("sagittal", 2))


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _window(image: np.ndarray) -> tuple[float, float]:
    """Grey window over the object: percentiles 5..99.5 of the voxels brighter than the background
    (the 1st percentile: air in CT, zero in MR)."""
    body = image[image > np.percentile(image, 1)]
    lo, hi = np.percentile(body if body.size else image, [5, 99.5])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def _section(a: np.ndarray, axis: int, index: int) -> np.ndarray:
    return np.take(a, index, axis=axis)


def _aspect(spacing: Sequence[float], axis: int) -> float:
    rows, cols = [s for i, s in enumerate(spacing) if i != axis]
    return rows / cols


def relative(m: np.ndarray) -> np.ma.MaskedArray:
    """log10(weight * n) on the n voxels with weight above 1e-3 of the peak (the query's sequences; the
    threshold drops interpolation crumbs at the patch border of resampled maps), masked elsewhere."""
    support = m > 1e-3 * float(m.max()) if m.max() > 0 else m > 0
    n = int(support.sum())
    with np.errstate(divide="ignore"):
        rel = np.log10(np.where(support, m, 1.0) * max(n, 1))
    return np.ma.masked_where(~support, rel)


def color_range(rels: list[np.ma.MaskedArray]) -> float:
    """Half-width of the colour scale: the 95th percentile of |relative weight| (a few boundary voxels of
    resampled maps carry tiny weights), within [MIN_RANGE, MAX_RANGE] decades."""
    top = max((float(np.percentile(np.abs(r.compressed()), 95)) for r in rels if r.count()), default=MIN_RANGE)
    return float(np.clip(top, MIN_RANGE, MAX_RANGE))


def overlay(ax, image: np.ndarray, rel: np.ma.MaskedArray, query: Sequence[int], axis: int,
            spacing: Sequence[float], window: tuple[float, float], title: str, limit: float) -> object:
    """One slice through the query perpendicular to ``axis``: image in grey, the relative map in colour."""
    ax.imshow(_section(image, axis, query[axis]), cmap="gray", vmin=window[0], vmax=window[1],
              aspect=_aspect(spacing, axis), interpolation="nearest", origin="upper")
    im = ax.imshow(_section(rel, axis, query[axis]), cmap="RdBu_r", vmin=-limit, vmax=limit, alpha=0.6,
                   aspect=_aspect(spacing, axis), interpolation="nearest", origin="upper")
    r, c = [q for i, q in enumerate(query) if i != axis]
    ax.plot([c], [r], marker="+", color="cyan", markersize=10, mew=1.5)
    ax.set_title(title, fontsize=8)
    ax.axis("off")
    return im


def views_of(image: np.ndarray) -> list[tuple[str, int]]:
    return [VIEWS[0]] if image.shape[0] == 1 else list(VIEWS)


def stage_png(image: np.ndarray, maps: dict[str, np.ndarray], query: Sequence[int], spacing: Sequence[float],
              title: str, out: Path) -> Path:
    """One row per map (block x mix), one column per orthogonal slice through the query."""
    plt = _plt()
    views = views_of(image)
    window = _window(image)
    size = (3.2 * len(views) + 1, 3.0 * len(maps) + 0.5)
    fig, axes = plt.subplots(len(maps), len(views), figsize=size, squeeze=False, layout="constrained")
    rels = {name: relative(m) for name, m in maps.items()}
    limit = color_range(list(rels.values()))
    im = None
    for row, (name, rel) in zip(axes, rels.items()):
        for ax, (view, axis) in zip(row, views):
            im = overlay(ax, image, rel, query, axis, spacing, window, f"{name}, {view} {query[axis]}", limit)
    fig.suptitle(title, fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label=LABEL)
    return _save(fig, out)


def decay_profile(m: np.ndarray, query: Sequence[int], spacing: Sequence[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per axis: signed distance from the query (mm) and the total weight at that offset (the map
    summed over the other axes): how fast attention falls off along each axis."""
    out = []
    for axis in range(m.ndim):
        other = tuple(i for i in range(m.ndim) if i != axis)
        marginal = m.sum(axis=other)
        dist = (np.arange(m.shape[axis]) - query[axis]) * spacing[axis]
        out.append((dist, marginal))
    return out


def summary_png(image: np.ndarray, rows: list[tuple[str, dict[str, np.ndarray]]], query: Sequence[int],
                spacing: Sequence[float], patch_rows: list[dict[str, np.ndarray]], patch_query: Sequence[int],
                patch_spacing: Sequence[float], title: str, out: Path) -> Path:
    """One row per Stage-Scan block: global and local map on the axial slice through the query, and the
    decay profile of both (computed on the network-input grid, ``patch_spacing`` mm)."""
    plt = _plt()
    window = _window(image)
    fig, axes = plt.subplots(len(rows), 3, figsize=(11, 3.0 * len(rows) + 0.5), squeeze=False, layout="constrained")
    axis_names = ("z", "y", "x")[-len(patch_query):]
    colors = ("tab:blue", "tab:orange", "tab:green")
    rels = [{mix: relative(m) for mix, m in maps.items()} for _, maps in rows]
    limit = color_range([r for row in rels for r in row.values()])
    im = None
    for (label, _), row_rels, patch_maps, row in zip(rows, rels, patch_rows, axes):
        for ax, (mix, rel) in zip(row[:2], row_rels.items()):
            im = overlay(ax, image, rel, query, 0, spacing, window, f"{label} {mix}", limit)
        ax = row[2]
        for mix, style in (("global", "-"), ("local", "--")):
            if mix not in patch_maps:
                continue
            for (dist, w), name, color in zip(decay_profile(patch_maps[mix], patch_query, patch_spacing),
                                              axis_names, colors):
                keep = w > 0
                ax.plot(dist[keep], w[keep], style, color=color, lw=1.2, label=f"{mix} {name}")
        ax.set_yscale("log")
        ax.set_xlabel("distance from query (mm)", fontsize=8)
        ax.set_ylabel("weight", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=6, ncol=2)
        ax.set_title(f"{label}: decay profile", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.colorbar(im, ax=axes[:, 1].tolist(), shrink=0.6, label=LABEL)
    return _save(fig, out)


def compare_png(image: np.ndarray, table: dict[str, dict[str, np.ndarray]], query: Sequence[int],
                spacing: Sequence[float], title: str, out: Path) -> Path:
    """Rows: maps (block x mix); columns: scan modes; the axial slice through the query."""
    plt = _plt()
    window = _window(image)
    modes = list(table)
    names = list(table[modes[0]])
    fig, axes = plt.subplots(len(names), len(modes), figsize=(3.2 * len(modes) + 1, 3.0 * len(names) + 0.5),
                             squeeze=False, layout="constrained")
    rels = {mode: {name: relative(m) for name, m in maps.items()} for mode, maps in table.items()}
    limit = color_range([r for maps in rels.values() for r in maps.values()])
    im = None
    for r, name in enumerate(names):
        for c, mode in enumerate(modes):
            im = overlay(axes[r, c], image, rels[mode][name], query, 0, spacing, window, f"{name}, scan {mode}",
                         limit)
    fig.suptitle(title, fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, label=LABEL)
    return _save(fig, out)


def _save(fig, out: Path) -> Path:
    plt = _plt()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=80)
    plt.close(fig)
    return out
