"""``sss-nnunet demo`` (= ``make demo``): the whole pipeline on a built-in synthetic CT dataset.

Steps, each through the STOCK nnU-Net console scripts on the CPU:

1. generate ``Dataset990_SSSDemo`` (``sss_nnunet.datasets.synthetic``: 5 organs, anisotropic
   spacing, HU intensities) with held-out test cases in imagesTs/labelsTs;
2. ``nnUNetv2_plan_and_preprocess -d 990 -c 3d_fullres --verify_dataset_integrity``;
3. ``nnUNetv2_train 990 3d_fullres 0 -tr SSSTrainer_demo -device cpu``;
4. ``nnUNetv2_predict`` on the test cases;
5. ``sss-nnunet evaluate`` (strict protocol: HD95 in mm, missed organs counted), then a per-organ
   Dice table and two plots: Dice per organ, and slices of a test case (image / truth / prediction).

Fold 0 (nnU-Net's usual first fold: 80% of the training cases, the rest for nnU-Net's own
validation) rather than ``all``: the run then shows nnU-Net's cross-validation output too, and
the test cases are held out either way.

``nnUNet_raw``, ``nnUNet_preprocessed`` and ``nnUNet_results`` point into ``--workdir`` for the
child processes only; the user's own values are used only with ``--use-env``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from sss_nnunet import cli_args
from sss_nnunet.datasets import synthetic
from sss_nnunet.errors import SSSError
from sss_nnunet.io import atomic_output

NNUNET_VARS = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
CONFIG = "3d_fullres"

DESCRIPTION = """\
The whole pipeline on a built-in synthetic CT dataset (Dataset990_SSSDemo: 20 training and 6 held-out
test cases), on the CPU, with the stock nnU-Net commands: generate the dataset,
nnUNetv2_plan_and_preprocess, nnUNetv2_train with SSSTrainer_demo (a short run), nnUNetv2_predict on
the test cases, sss-nnunet evaluate (strict protocol). Prints a per-organ Dice table and writes
plots and logs to WORKDIR/demo_output. nnU-Net's folders are put under --workdir, not your own
nnUNet_raw/_preprocessed/_results unless you pass --use-env."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", type=Path, default=Path("sss_demo_work"),
                        help="folder for the dataset, nnU-Net's folders, logs and results (default: ./sss_demo_work)")
    parser.add_argument("--use-env", action="store_true",
                        help="use the nnUNet_raw/_preprocessed/_results already set instead of the workdir")
    parser.add_argument("-d", dest="id", type=int, default=synthetic.DEFAULT_ID, metavar="ID",
                        help="dataset id (default: 990)")
    parser.add_argument("--train-cases", type=int, default=20, metavar="N", help="training cases (default: 20)")
    parser.add_argument("--test-cases", type=int, default=6, metavar="N", help="held-out test cases (default: 6)")
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="generator seed (default: 0)")
    cli_args.add_trainer(parser, default="SSSTrainer_demo")
    cli_args.add_fold(parser, default="0")
    parser.add_argument("--overwrite", action="store_true", help="delete an earlier demo run of this dataset id")
    parser.add_argument("--compare", action="store_true",
                        help="train nnU-Net's nnUNetTrainer beside -tr at the same budget (sss-nnunet compare) "
                             "and show both on the test cases")
    cli_args.deprecate(parser, "--id", "-d")
    cli_args.deprecate(parser, "--trainer", "-tr")
    cli_args.deprecate(parser, "--fold", "-f")


def demo_env(workdir: Path, use_env: bool, base: dict | None = None) -> dict[str, str]:
    """Environment for the child processes: nnU-Net's folders in ``workdir`` (unless ``use_env``),
    at most 2 worker processes. ``base`` (default ``os.environ``) is not modified."""
    env = dict(os.environ if base is None else base)
    if use_env:
        missing = [v for v in NNUNET_VARS if not env.get(v)]
        if missing:
            raise SSSError(f"--use-env, but {', '.join(missing)} is not set")
    else:
        workdir = workdir.resolve()
        for var, sub in zip(NNUNET_VARS, ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")):
            env[var] = str(workdir / sub)
    env.setdefault("nnUNet_def_n_proc", "2")
    env.setdefault("nnUNet_n_proc_DA", "2")
    return env


def _dataset_folders(env: dict[str, str], dataset_id: int) -> list[Path]:
    name = synthetic.dataset_folder_name(dataset_id)
    return [Path(env[v]) / name for v in NNUNET_VARS]


def _bin(name: str) -> str:
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else name


def run_step(title: str, cmd: list[str], env: dict[str, str], log: Path) -> None:
    """Run a console script, streaming its output to the terminal and to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"$ {' '.join(cmd)}", flush=True)
    with open(log, "w") as f, subprocess.Popen([_bin(cmd[0]), *cmd[1:]], env=env, stdout=subprocess.PIPE,
                                               stderr=subprocess.STDOUT, text=True, bufsize=1) as proc:
        for line in proc.stdout:
            f.write(line)
            if line.strip() and "Inspecting module" not in line:
                print("  " + line.rstrip(), flush=True)
    if proc.returncode != 0:
        raise SSSError(f"step '{title}' failed (exit code {proc.returncode}); its output is in {log}")


class Steps:
    """Prints a header and the elapsed time of every step."""

    def __init__(self, total: int):
        self.total, self.n, self.t0 = total, 0, time.perf_counter()

    def start(self, title: str) -> None:
        self.n += 1
        print(f"\n===== [{self.n}/{self.total}] {title}  (elapsed {time.perf_counter() - self.t0:5.0f} s) =====",
              flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def dice_table(summary: dict) -> str:
    """Per-organ Dice (mean +- std over the test cases) and the mean over organs, as text."""
    rows = [f"{'organ':<14} {'Dice':>6} {'+-':>6}  cases  missed"]
    for c in summary["classes"].values():
        rows.append(f"{c['name']:<14} {c['dice_mean']:6.3f} {c['dice_std']:6.3f}  "
                    f"{c['n_cases']:5d}  {c['n_missed']:6d}")
    rows.append(f"{'mean':<14} {summary['mean']['dice']:6.3f}")
    return "\n".join(rows)


def plot_slices(image: Path, truth: Path, pred: Path, out: Path) -> Path:
    """PNG of three axial slices of one case: image (HU window -160..240), truth and prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import SimpleITK as sitk

    img, gt, pr = (sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in (image, truth, pred))  # (D, H, W)
    zs = np.flatnonzero(gt.reshape(gt.shape[0], -1).any(1))
    picks = np.linspace(zs[0], zs[-1], 5).round().astype(int)[1:4] if zs.size else [gt.shape[0] // 2]
    fig, axes = plt.subplots(len(picks), 3, figsize=(9, 3 * len(picks)), squeeze=False)
    cmap = plt.get_cmap("tab10", 10)
    for row, z in zip(axes, picks):
        for ax, (title, overlay) in zip(row, (("image", None), ("ground truth", gt), ("prediction", pr))):
            ax.imshow(img[z], cmap="gray", vmin=-160, vmax=240)
            if overlay is not None:
                ax.imshow(np.ma.masked_equal(overlay[z], 0), cmap=cmap, vmin=0, vmax=9, alpha=0.55,
                          interpolation="nearest")
            ax.set_title(f"{title}, slice {z}")
            ax.axis("off")
    fig.tight_layout()
    with atomic_output(out) as tmp:
        fig.savefig(tmp, dpi=90)
    plt.close(fig)
    return out


def run(args: argparse.Namespace) -> int:
    workdir = args.workdir.resolve()
    env = demo_env(workdir, args.use_env)
    raw, pre, res = _dataset_folders(env, args.id)
    name = raw.name
    out = workdir / "demo_output"
    if any(p.exists() for p in (raw, pre, res, out)):
        if not args.overwrite:
            held = out if out.exists() else (workdir if not args.use_env else raw.parent)
            raise SSSError(f"{held} already holds a demo run of {name} (use --overwrite to start again)")
        for p in (raw, pre, res, out):
            shutil.rmtree(p, ignore_errors=True)
    logs = out / "logs"
    steps = Steps(6)
    print(f"sss-nnunet demo: nnU-Net folders under {Path(env['nnUNet_raw']).parent}, outputs in {out}")

    steps.start(f"generate {name}: {args.train_cases} training + {args.test_cases} test cases")
    synthetic.write_synthetic_dataset(env["nnUNet_raw"], args.id, args.train_cases, args.test_cases, args.seed)

    steps.start("plan and preprocess (stock nnUNetv2_plan_and_preprocess)")
    run_step("plan", ["nnUNetv2_plan_and_preprocess", "-d", str(args.id), "-c", CONFIG,
                      "--verify_dataset_integrity", "-np", "2", "-npfp", "2"], env, logs / "plan.log")

    if args.compare:
        from sss_nnunet.compare.demo import run_demo_compare

        return run_demo_compare(args, env, raw, out, CONFIG, steps)

    steps.start(f"train {args.trainer}, fold {args.fold} (stock nnUNetv2_train, CPU)")
    run_step("train", ["nnUNetv2_train", str(args.id), CONFIG, args.fold, "-tr", args.trainer, "-device", "cpu"],
             env, logs / "train.log")

    steps.start("predict the held-out test cases (stock nnUNetv2_predict)")
    pred = out / "predictions"
    run_step("predict", ["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(pred), "-d", str(args.id),
                         "-c", CONFIG, "-tr", args.trainer, "-f", args.fold, "-device", "cpu",
                         "--disable_progress_bar"], env, logs / "predict.log")

    steps.start("evaluate (sss-nnunet evaluate, strict protocol)")
    evaluation = out / "evaluation"
    run_step("evaluate", ["sss-nnunet", "evaluate", "--pred", str(pred), "--gt", str(raw / "labelsTs"),
                          "-d", str(args.id), "--protocol", "strict", "--out", str(evaluation),
                          "-np", "2", "--quiet"], env, logs / "evaluate.log")

    steps.start("results")
    summary = json.loads((evaluation / "summary.json").read_text())
    case = sorted((raw / "labelsTs").glob(f"*{synthetic.FILE_ENDING}"))[0]
    image = raw / "imagesTs" / case.name.replace(synthetic.FILE_ENDING, f"_0000{synthetic.FILE_ENDING}")
    slices = plot_slices(image, case, pred / case.name, out / "slices.png")
    print(f"Dice on {summary['n_cases']} held-out test cases ({args.trainer}, fold {args.fold}):\n")
    print(dice_table(summary))
    print(f"\nplots:   {evaluation / 'dice.png'}\n         {slices}")
    print(f"tables:  {evaluation / 'table.md'}, {evaluation / 'metrics.csv'}")
    print(f"model:   {res / f'{args.trainer}__nnUNetPlans__{CONFIG}'}")
    print(f"total time {steps.elapsed() / 60:.1f} min")
    return 0
