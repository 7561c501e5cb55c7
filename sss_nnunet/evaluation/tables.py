"""Paper-layout tables (Markdown and LaTeX): published rows beside ours, with the protocol stated.

Layouts: Synapse (and other label datasets) per-class DSC, mean HD95, mean DSC;
ACDC RV/Myo/LV DSC, Avg, mean HD95; BraTS (region datasets) WT/TC/ET DSC, Avg,
WT/TC/ET HD95, Avg. Dice in %, HD95 in the protocol's unit.
"""

from __future__ import annotations

from dataclasses import dataclass

from sss_nnunet.evaluation.published import FOOTNOTE_TAGS, PublishedRow, PublishedTable
from sss_nnunet.evaluation.tasks import EvalTask

MISSING = "-"
_MAX_LISTED = 12  # missed / spurious pairs listed by name in the footer


@dataclass(frozen=True)
class Cell:
    value: float | None
    approximate: bool = False


@dataclass(frozen=True)
class Row:
    method: str
    cells: tuple[Cell, ...]
    published: bool
    tag: str = ""


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]  # value columns (the method column comes first)
    rows: tuple[Row, ...]
    notes: tuple[str, ...]


# Column spec: ("dice" | "hd95", class key) or ("dice_mean" | "hd95_mean", None).
def _layout(task: EvalTask) -> list[tuple[str, str, str | None]]:
    """(header, field, class key) per value column."""
    dice = [(c.short, "dice", c.key) for c in task.classes]
    if task.has_regions:
        return (
            [(f"{c.short} DSC", "dice", c.key) for c in task.classes]
            + [("Avg DSC", "dice_mean", None)]
            + [(f"{c.short} HD95", "hd95", c.key) for c in task.classes]
            + [("Avg HD95", "hd95_mean", None)]
        )
    if task.kind == "acdc":
        return dice + [("Avg", "dice_mean", None), ("HD95", "hd95_mean", None)]
    return dice + [("HD95", "hd95_mean", None), ("DSC", "dice_mean", None)]


def _published_cell(row: PublishedRow, field: str, key: str | None) -> Cell:
    value = getattr(row, field) if key is None else getattr(row, field).get(key)
    return Cell(value, field in row.approximate)


def _our_cell(summary: dict, field: str, key: str | None) -> Cell:
    if key is None:
        value = summary["mean"][field.split("_")[0]]
    else:
        value = summary["classes"][key][f"{field}_mean"]
    if value is not None and field.startswith("dice"):
        value *= 100.0
    return Cell(value)


def build_table(
    summary: dict, task: EvalTask, published: PublishedTable | None, method: str = "Ours"
) -> Table:
    """Table model from an ``evaluate.summarize`` summary and the published rows (or ``None``)."""
    layout = _layout(task)
    unit = summary["hd95_unit"]
    rows = []
    if published is not None:
        for r in published.rows:
            label = f"{r.method} (published)" + (f" [{r.tag}]" if r.tag in FOOTNOTE_TAGS else "")
            rows.append(Row(label, tuple(_published_cell(r, f, k) for _, f, k in layout), True, r.tag))
    rows.append(
        Row(
            f"{method} ({summary['protocol']} protocol)",
            tuple(_our_cell(summary, f, k) for _, f, k in layout),
            False,
        )
    )
    title = (
        f"{summary['dataset']}: DSC (%) and HD95 ({unit}), protocol: {summary['protocol']}, "
        f"{summary['n_cases']} cases"
    )
    return Table(title, tuple(h for h, _, _ in layout), tuple(rows), tuple(_notes(summary, task, published)))


def _notes(summary: dict, task: EvalTask, published: PublishedTable | None) -> list[str]:
    notes = [
        f"Protocol {summary['protocol']}: {summary['protocol_description']}.",
        f"Averaging: {summary['averaging']}.",
    ]
    classes = summary["classes"]
    for status, what in (
        ("missed", "missed (ground truth present, prediction empty)"),
        ("spurious", "spurious (prediction present, ground truth empty)"),
    ):
        pairs = [f"{case}/{c['short']}" for c in classes.values() for case in c[f"{status}_cases"]]
        listed = ", ".join(pairs[:_MAX_LISTED]) + (
            f", ... ({len(pairs) - _MAX_LISTED} more)" if len(pairs) > _MAX_LISTED else ""
        )
        notes.append(f"{what.capitalize()}: {len(pairs)}" + (f": {listed}." if pairs else "."))
    n_empty = sum(c["n_both_empty"] for c in classes.values())
    notes.append(
        f"Class absent from both prediction and ground truth (Dice 1, HD95 0): {n_empty} case/class pair(s)."
    )
    if published is not None:
        notes.append(
            f"Published rows: {published.title}; source: {published.source} "
            "(copied from published_results.md). Published HD95 follows the paper protocol "
            "(voxel units, 0 when either mask is empty)."
        )
        if summary["protocol"] != "paper":
            notes.append(
                "Our HD95 is in mm with penalties for missed/spurious classes: "
                "not comparable with the published HD95."
            )
        used = {r.tag for r in published.rows if r.tag in FOOTNOTE_TAGS}
        notes += [f"[{t}] {published.tags[t]}." for t in FOOTNOTE_TAGS if t in used]
        notes += list(published.notes)
    return notes


def _fmt(cell: Cell, approx: str = "~") -> str:
    if cell.value is None:
        return MISSING
    return (approx if cell.approximate else "") + f"{cell.value:.2f}"


def to_markdown(table: Table, task: EvalTask, summary: dict) -> str:
    """Main table, notes, then a per-class detail table of our run."""
    out = [
        f"### {table.title}",
        "",
        "| Method | " + " | ".join(table.columns) + " |",
        "|---|" + "---:|" * len(table.columns),
    ]
    for row in table.rows:
        name = row.method if row.published else f"**{row.method}**"
        out.append(f"| {name} | " + " | ".join(_fmt(c) for c in row.cells) + " |")
    out.append("")
    out += [f"- {n}" for n in table.notes]
    unit = summary["hd95_unit"]
    out += [
        "",
        f"#### Per class, this run (DSC %, HD95 {unit}; mean ± std over cases)",
        "",
        "| Class | Label(s) | DSC | HD95 | HD95 (both present) | present | both empty | missed | spurious |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cls in task.classes:
        c = summary["classes"][cls.key]
        both = c["hd95_mean_both_present"]
        out.append(
            f"| {cls.key} {cls.name} | {','.join(map(str, cls.values))} "
            f"| {_pm(c['dice_mean'], c['dice_std'], 100)} | {_pm(c['hd95_mean'], c['hd95_std'])} "
            f"| {MISSING if both is None else f'{both:.2f}'} | {c['n_both_present']} | {c['n_both_empty']} "
            f"| {c['n_missed']} | {c['n_spurious']} |"
        )
    return "\n".join(out) + "\n"


def _pm(mean: float | None, std: float | None, scale: float = 1.0) -> str:
    if mean is None:
        return MISSING
    return f"{mean * scale:.2f} ± {std * scale:.2f}"


_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    """A booktabs ``table`` environment; notes go below the tabular in footnote size."""
    cols = "l" + "r" * len(table.columns)
    out = [
        "% generated by sss-nnunet evaluate; needs \\usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        r"\footnotesize",
        f"\\caption{{{latex_escape(table.title)}}}",
        f"\\begin{{tabular}}{{{cols}}}",
        r"\toprule",
        "Method & " + " & ".join(latex_escape(c) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    published = [r for r in table.rows if r.published]
    ours = [r for r in table.rows if not r.published]
    for i, row in enumerate(published + ours):
        if published and i == len(published):
            out.append(r"\midrule")
        cells = [_fmt(c, approx=r"$\sim$") for c in row.cells]
        name = latex_escape(row.method)
        if not row.published:
            name, cells = rf"\textbf{{{name}}}", [rf"\textbf{{{c}}}" if c != MISSING else c for c in cells]
        out.append(name + " & " + " & ".join(cells) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip", r"\begin{minipage}{\linewidth}\scriptsize"]
    out += [latex_escape(n) + r"\\" for n in table.notes]
    out += [r"\end{minipage}", r"\end{table}"]
    return "\n".join(out) + "\n"
