"""``sss-nnunet evaluate``: Dice / HD95 of a prediction folder against ground truth, paper tables.

Validates everything first (dataset, case pairing, geometry, label values), then
writes ``metrics.csv``, ``summary.json``, ``table.md``, ``table.tex`` and
``dice.png`` into the output folder in one atomic step: on any error nothing is written.
ISIC datasets (isic2016/2017/2018) get mIoU, DSC, Acc, Spe, Sen instead, pooled as VM-UNet
and per image (``sss_nnunet.evaluation.isic``; ``dsc.png`` instead of ``dice.png``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sss_nnunet import cli_args
from sss_nnunet.io import atomic_directory, atomic_output, atomic_write_json, atomic_write_text, check_output_dir

PROTOCOL_NAMES = ("paper", "strict")  # sss_nnunet.evaluation.protocols.PROTOCOLS (kept light for --help)
ISIC_KINDS = ("isic2016", "isic2017", "isic2018")  # 2D skin lesions: sss_nnunet.evaluation.isic

OUTPUT_FILES = ("metrics.csv", "summary.json", "table.md", "table.tex", "dice.png")
OWNER = "sss-nnunet evaluate"  # the manifest name of its output folders (sss_nnunet.io.OWNER_FILE)


def _earlier_output(folder: Path) -> bool:
    """An output folder written before manifests existed: only the files evaluate writes."""
    return all(p.name in (*OUTPUT_FILES, "dsc.png") and p.is_file() for p in folder.iterdir())


def output_rules(args: argparse.Namespace) -> dict:
    """``check_output_dir`` / ``atomic_directory`` keywords: replace only our own output, never an input."""
    return {"overwrite": args.overwrite, "owner": OWNER, "legacy": _earlier_output, "inputs": (args.pred, args.gt)}

DESCRIPTION = """\
Score a folder of predicted label maps against the ground truth (files paired by name): Dice and
HD95 per case and class, or for ISIC (isic2016/2017/2018) mIoU, DSC, Acc, Spe and Sen, pooled as
VM-UNet and per image as Zig-RiR. Everything is checked first (case pairing, geometry, label
values); then metrics.csv, summary.json, table.md, table.tex (the published numbers beside ours)
and dice.png (dsc.png for ISIC) are written to the output folder in one step."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pred", required=True, type=Path, help="folder of predicted label maps")
    parser.add_argument(
        "--gt", required=True, type=Path, help="folder of ground-truth label maps (same file names)"
    )
    cli_args.add_dataset(
        parser,
        help="synapse, btcv, acdc, brats, brats2021, isic2016, isic2017, isic2018, or an nnU-Net dataset "
        "(801, Dataset801, Dataset801_Synapse8: labels from $nnUNet_raw/.../dataset.json)",
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOL_NAMES,
        default="paper",
        help="paper: UNETR++/nnFormer (HD95 in voxels, 0 if either mask is empty); "
        "strict: HD95 in mm, missed/spurious classes penalised and counted (default: paper; "
        "ISIC datasets: paper only, pooled and per-image metrics are both reported)",
    )
    parser.add_argument(
        "-o", "--out", type=Path, default=None, help="output folder (default: PRED/evaluation_PROTOCOL)"
    )
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier output of sss-nnunet evaluate (never a folder holding --pred or "
                             "--gt, or files evaluate did not write)")
    cli_args.add_num_processes(parser, help="processes, one case each at a time")
    parser.add_argument("--method-name", default="Ours", help="name of our row in the table (default: Ours)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar, do not print the table")
    cli_args.deprecate(parser, "--dataset", "-d")
    cli_args.deprecate(parser, "--workers", "-np")


def run(args: argparse.Namespace) -> int:
    # SciPy, SimpleITK and matplotlib load here, not for --help.
    from sss_nnunet.evaluation.cases import check_geometry, pair_cases
    from sss_nnunet.evaluation.evaluate import evaluate_pairs, metrics_csv, summarize
    from sss_nnunet.evaluation.plots import dice_boxplot
    from sss_nnunet.evaluation.protocols import PROTOCOLS
    from sss_nnunet.evaluation.published import published_table
    from sss_nnunet.evaluation.tables import build_table, to_latex, to_markdown
    from sss_nnunet.evaluation.tasks import resolve_task

    protocol = PROTOCOLS[args.protocol]
    task = resolve_task(args.dataset)
    out = args.out if args.out is not None else args.pred / f"evaluation_{protocol.name}"
    check_output_dir(out, **output_rules(args))
    if task.kind in ISIC_KINDS:
        from sss_nnunet.evaluation.isic import run_isic

        return run_isic(args, task, out)
    pairs = pair_cases(args.pred, args.gt, task.file_ending)
    check_geometry(pairs)

    results = evaluate_pairs(pairs, task, protocol, workers=args.num_processes, progress=not args.quiet)
    summary = summarize(results, task, protocol)
    table = build_table(summary, task, published_table(task.kind), method=args.method_name)
    markdown = to_markdown(table, task, summary)

    with atomic_directory(out, **output_rules(args)) as tmp:
        atomic_write_text(tmp / "metrics.csv", metrics_csv(results))
        atomic_write_json(tmp / "summary.json", summary)
        atomic_write_text(tmp / "table.md", markdown)
        atomic_write_text(tmp / "table.tex", to_latex(table))
        with atomic_output(tmp / "dice.png") as png:
            dice_boxplot(summary, task, png)
    if not args.quiet:
        print(markdown)
    print(f"wrote {', '.join(OUTPUT_FILES)} to {out}")
    return 0
