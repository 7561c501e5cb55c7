"""ISIC skin lesion metrics: mIoU, DSC, Acc, Spe, Sen, pooled as VM-UNet computes them and per image.

VM-UNet (``engine.py`` ``test_one_epoch``, github.com/JCruan519/VM-UNet) flattens every
test pixel of every image into one vector, thresholds prediction and ground truth at 0.5,
builds ONE confusion matrix (TN, FP, FN, TP) and reports, in %::

    mIoU = TP / (TP + FP + FN)          (the lesion IoU, despite the name)
    DSC  = 2 TP / (2 TP + FP + FN)
    Acc  = (TP + TN) / (TP + TN + FP + FN)
    Sen  = TP / (TP + FN)
    Spe  = TN / (TN + FP)

each 0 when its denominator is 0. So large images weigh more than small ones. We report
that ("pooled") and the mean over images of the same five metrics computed per image
("per-image", the averaging of Zig-RiR's ``test2d.py``); per image a 0/0 ratio counts as 1
(nothing to find and nothing wrongly found). Masks are label maps (H, W) with values 0/1
(nnU-Net predictions, converted labels) or 0/255 (raw ISIC masks), thresholded at 0.5
(of 1 or of 255). Pixels count at the resolution of the ground-truth files (256x256 after
``sss-nnunet convert --resize 256``, as VM-UNet).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from sss_nnunet.errors import SSSError
from sss_nnunet.evaluation.cases import CasePair
from sss_nnunet.evaluation.tables import Cell, Row, Table
from sss_nnunet.evaluation.tasks import EvalTask
from sss_nnunet.images import read_pil

METRICS = ("miou", "dsc", "acc", "spe", "sen")  # VM-UNet's column order
HEADERS = {"miou": "mIoU", "dsc": "DSC", "acc": "Acc", "spe": "Spe", "sen": "Sen"}
POOLED, PER_IMAGE = "pooled", "per-image"
OUTPUT_FILES = ("metrics.csv", "summary.json", "table.md", "table.tex", "dsc.png")


@dataclass(frozen=True)
class Counts:
    """Pixel confusion matrix of the lesion class."""

    tn: int
    fp: int
    fn: int
    tp: int

    def __add__(self, other: Counts) -> Counts:
        return Counts(self.tn + other.tn, self.fp + other.fp, self.fn + other.fn, self.tp + other.tp)


def confusion(pred: np.ndarray, gt: np.ndarray) -> Counts:
    """Counts of two boolean masks of the same shape."""
    pred, gt = np.asarray(pred, bool), np.asarray(gt, bool)
    tp = int(np.count_nonzero(pred & gt))
    p, g = int(np.count_nonzero(pred)), int(np.count_nonzero(gt))
    return Counts(tn=pred.size - p - g + tp, fp=p - tp, fn=g - tp, tp=tp)


def _ratio(num: int, den: int, empty: float) -> float:
    return float(num) / float(den) if den else empty


def metrics(c: Counts, empty: float = 0.0) -> dict[str, float]:
    """The five metrics as fractions (0..1); a 0/0 ratio scores ``empty`` (VM-UNet: 0)."""
    return {
        "miou": _ratio(c.tp, c.tp + c.fp + c.fn, empty),
        "dsc": _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, empty),
        "acc": _ratio(c.tp + c.tn, c.tp + c.tn + c.fp + c.fn, empty),
        "spe": _ratio(c.tn, c.tn + c.fp, empty),
        "sen": _ratio(c.tp, c.tp + c.fn, empty),
    }


def load_mask(path: Path) -> np.ndarray:
    """A 2D mask file as boolean (H, W): values 0/1 or 0/255, thresholded at 0.5 of the maximum."""
    array = read_pil(path, what="mask")  # fully decoded: a truncated file is an error
    if array.ndim != 2:
        raise SSSError(f"{path}: expected a single-channel 2D mask, found shape {array.shape}")
    values = set(np.unique(array).tolist())
    if values <= {0, 1}:
        return array == 1
    if values <= {0, 255}:
        return array == 255
    shown = sorted(values)[:8]
    raise SSSError(f"{path}: not a binary mask: values {shown}{' ...' if len(values) > 8 else ''} "
                   f"(expected labels 0/1 or a 0/255 mask)")


def evaluate_isic_pairs(pairs: Sequence[CasePair], progress: bool = True) -> list[tuple[str, Counts]]:
    """Confusion counts per case, in the order of ``pairs``; shapes must match."""
    out = []
    for pair in tqdm(pairs, desc="evaluate (ISIC)", unit="image", disable=not progress):
        pred, gt = load_mask(pair.pred), load_mask(pair.gt)
        if pred.shape != gt.shape:
            raise SSSError(f"{pair.case}: prediction {pair.pred} has shape {pred.shape} (H, W), "
                           f"ground truth {pair.gt} has {gt.shape}")
        out.append((pair.case, confusion(pred, gt)))
    return out


def summarize_isic(rows: Sequence[tuple[str, Counts]], task: EvalTask) -> dict:
    """JSON-ready: pooled metrics (VM-UNet), per-image means and stds, per-case rows; fractions 0..1."""
    if not rows:
        raise SSSError("no images to evaluate")
    total = Counts(0, 0, 0, 0)
    for _, c in rows:
        total = total + c
    per_case = {case: metrics(c, empty=1.0) for case, c in rows}
    values = {m: np.array([v[m] for v in per_case.values()]) for m in METRICS}
    return {
        "dataset": task.name,
        "kind": task.kind,
        "metric_unit": "fraction (0..1)",
        "n_cases": len(rows),
        "pooled": metrics(total),
        "pooled_confusion": {"tn": total.tn, "fp": total.fp, "fn": total.fn, "tp": total.tp},
        "per_image_mean": {m: float(values[m].mean()) for m in METRICS},
        "per_image_std": {m: float(values[m].std()) for m in METRICS},
        "averaging": {
            POOLED: "one confusion matrix over all test pixels (VM-UNet engine.py); a 0/0 ratio is 0",
            PER_IMAGE: "mean over images of the per-image metrics (as Zig-RiR test2d.py); a 0/0 ratio is 1",
        },
        "cases": {case: {**per_case[case], "tn": c.tn, "fp": c.fp, "fn": c.fn, "tp": c.tp} for case, c in rows},
    }


def isic_csv(summary: dict) -> str:
    """``case,tn,fp,fn,tp,miou,dsc,acc,spe,sen`` per image (metrics as fractions, per-image rule)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["case", "tn", "fp", "fn", "tp", *METRICS])
    for case, row in summary["cases"].items():
        writer.writerow([case, row["tn"], row["fp"], row["fn"], row["tp"], *(repr(row[m]) for m in METRICS)])
    return buf.getvalue()


# ----------------------------------------------------------------------------- published rows, table
def published_isic(kind: str) -> dict | None:
    """The published ISIC table for ``kind`` (isic2016/2017/2018) from published.json, or None."""
    from sss_nnunet.evaluation.published import published_entry

    return published_entry(kind)


def build_isic_table(summary: dict, published: dict | None, method: str = "Ours") -> Table:
    """Published rows (each with its averaging), then our pooled and per-image rows; values in %."""
    rows = []
    tags = {}
    if published is not None:
        from sss_nnunet.evaluation.published import FOOTNOTE_TAGS, tag_meanings

        tags = tag_meanings()
        for r in published["rows"]:
            tag = r.get("tag", "")
            label = f"{r['method']} (published, {r['averaging']})" + (f" [{tag}]" if tag in FOOTNOTE_TAGS else "")
            cells = tuple(Cell(r.get("metrics", {}).get(m)) for m in METRICS)
            rows.append(Row(label, cells, True, tag))
    rows.append(Row(f"{method} ({POOLED}, VM-UNet code)",
                    tuple(Cell(100 * summary["pooled"][m]) for m in METRICS), False))
    rows.append(Row(f"{method} ({PER_IMAGE} mean)",
                    tuple(Cell(100 * summary["per_image_mean"][m]) for m in METRICS), False))
    notes = [
        f"{POOLED.capitalize()}: {summary['averaging'][POOLED]}.",
        f"{PER_IMAGE.capitalize()}: {summary['averaging'][PER_IMAGE]}.",
        "mIoU is the lesion IoU (VM-UNet's name). Compare a published row with our row of the same averaging.",
    ]
    if published is not None:
        notes.append(f"Published rows: {published['title']}; source: {published['source']}.")
        used = {r.tag for r in rows if r.published}
        notes += [f"[{t}] {tags[t]}." for t in tags if t in used and t != "V"]
        notes += list(published.get("notes", ()))
    title = f"{summary['dataset']}: mIoU, DSC, Acc, Spe, Sen (%), {summary['n_cases']} test images"
    return Table(title, tuple(HEADERS[m] for m in METRICS), tuple(rows), tuple(notes))


def isic_markdown(table: Table, summary: dict) -> str:
    from sss_nnunet.evaluation.tables import _fmt

    out = [f"### {table.title}", "", "| Method | " + " | ".join(table.columns) + " |",
           "|---|" + "---:|" * len(table.columns)]
    for row in table.rows:
        name = row.method if row.published else f"**{row.method}**"
        out.append(f"| {name} | " + " | ".join(_fmt(c) for c in row.cells) + " |")
    out += ["", *(f"- {n}" for n in table.notes), "",
            "#### Per image, this run (mean ± std over images, %)", "",
            "| " + " | ".join(HEADERS[m] for m in METRICS) + " |", "|" + "---:|" * len(METRICS),
            "| " + " | ".join(f"{100 * summary['per_image_mean'][m]:.2f} ± {100 * summary['per_image_std'][m]:.2f}"
                              for m in METRICS) + " |"]
    c = summary["pooled_confusion"]
    out += ["", f"Pooled confusion matrix (pixels): TP {c['tp']}, FP {c['fp']}, FN {c['fn']}, TN {c['tn']}."]
    return "\n".join(out) + "\n"


def dsc_plot(summary: dict, path: Path) -> Path:
    """Box plot of the per-image DSC and IoU (%) with the pooled values marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.5, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    keys = ("dsc", "miou")
    data = [[100 * v[k] for v in summary["cases"].values()] for k in keys]
    ax.boxplot(data, tick_labels=[HEADERS[k] for k in keys], showmeans=True, whis=(0, 100))
    rng = np.random.default_rng(0)
    for i, values in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.12, 0.12, len(values)), values, s=8, alpha=0.5, color="tab:blue", zorder=3)
        ax.scatter([i], [100 * summary["pooled"][keys[i - 1]]], marker="D", color="tab:red", zorder=4,
                   label="pooled (VM-UNet)" if i == 1 else None)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_ylabel("%")
    ax.set_ylim(-2, 102)
    ax.set_title(f"{summary['dataset']}, {summary['n_cases']} images, per image", fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return Path(path)


def run_isic(args, task: EvalTask, out: Path) -> int:
    """``sss-nnunet evaluate`` for an ISIC dataset: check everything, then write the outputs atomically."""
    from sss_nnunet.evaluation.cases import pair_cases
    from sss_nnunet.evaluation.cli import output_rules
    from sss_nnunet.evaluation.tables import to_latex
    from sss_nnunet.io import atomic_directory, atomic_output, atomic_write_json, atomic_write_text

    if args.protocol != "paper":
        raise SSSError(f"--protocol {args.protocol} is about HD95 of 3D datasets; {task.name} reports the "
                       "pooled (VM-UNet) and per-image metrics together: use --protocol paper")
    pairs = pair_cases(args.pred, args.gt, task.file_ending)
    rows = evaluate_isic_pairs(pairs, progress=not args.quiet)
    summary = summarize_isic(rows, task)
    table = build_isic_table(summary, published_isic(task.kind), method=args.method_name)
    markdown = isic_markdown(table, summary)
    with atomic_directory(out, **output_rules(args)) as tmp:
        atomic_write_text(tmp / "metrics.csv", isic_csv(summary))
        atomic_write_json(tmp / "summary.json", summary)
        atomic_write_text(tmp / "table.md", markdown)
        atomic_write_text(tmp / "table.tex", to_latex(table))
        with atomic_output(tmp / "dsc.png") as png:
            dsc_plot(summary, png)
    if not args.quiet:
        print(markdown)
    print(f"wrote {', '.join(OUTPUT_FILES)} to {out}")
    return 0
