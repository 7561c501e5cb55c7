"""``sss-nnunet compare``: several trainers, one budget, the same held-out test cases, one table.

    sss-nnunet compare -d 990 -tr nnUNetTrainer nnUNetTrainer:nnUNetResEncUNetMPlans SSSTrainer --recipe sss

Trains every trainer in turn with the stock nnUNetv2_train (any trainer nnU-Net can find:
nnU-Net's, ours, a user's through nnUNet_extTrainer) under the same budget: the same number of
training iterations split into epochs the same way, the plans' patch and batch, the same seeds
(see sss_nnunet.compare.budget for what is seeded), and with --recipe the same optimiser and
schedule (sss: AdamW 1e-3 + warm-up + cosine; nnunet: SGD 1e-2 Nesterov 0.99 + poly; own: each
trainer its own). TRAINER:PLANS trains with other plans (nnU-Net's ResEnc presets
nnUNetResEncUNet{M,L,XL}Plans are planned when missing). Then predicts the raw dataset's imagesTs
with nnUNetv2_predict, scores them against labelsTs with sss-nnunet evaluate --protocol strict,
compares every row with the baseline per test case (paired differences averaged over seeds,
bootstrap 95 % interval, verdict ahead / behind / tie) and writes compare.md, compare.json,
compare.png and curves.png to --out.

Needs nnUNet_raw and nnUNet_preprocessed; the dataset is planned and preprocessed first when its
plans are missing. Models go to OUT/runs/seedS/nnUNet_results (your nnUNet_results is not used).
Rerunning skips what is done; --overwrite redoes it. Hold a lock if other trainings share the
machine (e.g. ``flock /tmp/train.lock sss-nnunet compare ...``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

from sss_nnunet.errors import SSSError

DEFAULT_OUT = "sss_compare"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__.split("\n\n", 1)[1].strip()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("-d", dest="dataset", required=True, help="dataset id or name in $nnUNet_raw (e.g. 990)")
    parser.add_argument("-tr", dest="trainers", nargs="+", required=True, metavar="TRAINER[:PLANS]",
                        help="trainers to compare, e.g. nnUNetTrainer nnUNetTrainer:nnUNetResEncUNetMPlans SSSTrainer")
    parser.add_argument("--recipe", dest="recipes", nargs="+", default=["own"], metavar="NAME",
                        help="train every trainer with this recipe: own (each its own; default), sss (AdamW 1e-3, "
                             "wd 1e-2, 5%% warm-up, cosine), nnunet (SGD 1e-2, Nesterov 0.99, wd 3e-5, poly 0.9); "
                             "several names make a trainer x recipe table")
    parser.add_argument("--baseline", default=None, metavar="TRAINER[:PLANS]",
                        help="row every other row is tested against, under the same recipe (default: the first "
                             "nnU-Net trainer listed)")
    parser.add_argument("-c", dest="configuration", default="3d_fullres", help="configuration (default: 3d_fullres)")
    parser.add_argument("-f", dest="fold", default="0", help="fold: 0..4 or all (default: 0)")
    parser.add_argument("-p", dest="plans", default="nnUNetPlans", help="plans identifier (default: nnUNetPlans)")
    parser.add_argument("--iterations", type=int, default=250, metavar="N",
                        help="training iterations per trainer (default: 250)")
    parser.add_argument("--iterations-per-epoch", type=int, default=25, metavar="K",
                        help="at most K iterations per epoch; N is split into ceil(N/K) equal epochs (default: 25)")
    parser.add_argument("--val-iterations", type=int, default=2, metavar="M",
                        help="nnU-Net validation iterations per epoch (default: 2)")
    parser.add_argument("--batch-size", type=int, default=None, metavar="B",
                        help="train every trainer with batch size B (default: each trainer's plans' batch size)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S", help="seeds (default: 0)")
    parser.add_argument("-device", "--device", dest="device", choices=("cpu", "cuda"),
                        default="cuda" if _cuda() else "cpu",
                        help="training and prediction device (default: cuda if available, else cpu)")
    parser.add_argument("--out", type=Path, default=Path(DEFAULT_OUT), help=f"output folder (default: ./{DEFAULT_OUT})")
    parser.add_argument("--overwrite", action="store_true",
                        help="redo the listed trainers and seeds (an --out of other settings: remove every run in it)")
    parser.add_argument("--restore", type=Path, nargs="+", default=[], metavar="COMPARE_JSON",
                        help="reuse the finished runs recorded in earlier compare.json files of the same settings "
                             "and data (e.g. docs/evidence/<piece>/compare.json after the run folders are gone)")
    parser.add_argument("--deterministic", action="store_true",
                        help="data augmentation in the training process (nnUNet_n_proc_DA=0): CPU runs repeat "
                             "exactly, but slower")
    parser.add_argument("--disable-tta", action="store_true", help="predict without test-time mirroring")


def _cuda() -> bool:
    # without importing torch for --help: a visible NVIDIA device node is enough for the default
    return os.path.exists("/dev/nvidia0")


def resolve_raw_dataset(dataset: str, env: dict) -> tuple[int, Path]:
    """(id, raw folder) of ``dataset`` ('990', 'Dataset990', 'Dataset990_SSSDemo'); checks imagesTs/labelsTs."""
    raw_root = env.get("nnUNet_raw")
    if not raw_root:
        raise SSSError("nnUNet_raw is not set (the folder with DatasetNNN_Name/imagesTr, imagesTs, labelsTs)")
    text = dataset.removeprefix("Dataset").split("_", 1)[0]
    if not text.isdigit():
        raise SSSError(f"-d {dataset}: not a dataset id or DatasetNNN_Name")
    dataset_id = int(text)
    found = sorted(Path(raw_root).glob(f"Dataset{dataset_id:03d}_*"))
    if not found:
        raise SSSError(f"-d {dataset}: no Dataset{dataset_id:03d}_* in nnUNet_raw={raw_root}")
    raw = found[0]
    for sub in ("imagesTs", "labelsTs"):
        if not (raw / sub).is_dir() or not any((raw / sub).iterdir()):
            raise SSSError(f"{raw / sub} is missing or empty: compare scores held-out test cases "
                           f"(imagesTs with labelsTs)")
    labels = sorted(p.name for p in (raw / "labelsTs").iterdir() if not p.name.startswith("."))
    images = {p.name for p in (raw / "imagesTs").iterdir()}
    try:
        ending = json.loads((raw / "dataset.json").read_text()).get("file_ending", ".nii.gz")
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as e:
        raise SSSError(f"{raw / 'dataset.json'}: not a readable dataset.json ({e})") from None
    unpaired = [n for n in labels if n.endswith(ending) and n.replace(ending, f"_0000{ending}") not in images]
    if unpaired:
        raise SSSError(f"{raw / 'imagesTs'} has no image for the test label(s) {', '.join(unpaired[:3])}")
    return dataset_id, raw


MAX_SEED = 4_000_000  # each seed S seeds nnU-Net's augmentation workers with 1000 * S + k (numpy: < 2**32)


def check_trainers(trainers: list[str], default_plans: str = "nnUNetPlans") -> None:
    """Every ``TRAINER[:PLANS]`` must name a trainer nnU-Net finds, given once (``T`` and
    ``T:DEFAULT_PLANS`` are the same row), without '__'."""
    from sss_nnunet.compare.budget import SUFFIX, find_trainer
    from sss_nnunet.compare.runner import parse_rows

    if len(set(trainers)) != len(trainers):
        raise SSSError(f"-tr lists a trainer twice: {' '.join(trainers)}")
    rows = [(row.trainer, row.plans) for row in parse_rows(trainers, ["own"], default_plans)]
    twice = [text for text, row in zip(trainers, rows) if rows.count(row) > 1]
    if twice:
        raise SSSError(f"-tr {' and '.join(twice)}: the same trainer with the same plans (-p {default_plans} when "
                       f"no ':PLANS' is given), so the same model: list it once")
    for text in trainers:
        name, sep, plans = text.partition(":")
        if sep and (not plans or "__" in plans or "/" in plans or ":" in plans):
            raise SSSError(f"-tr {text}: PLANS after ':' must be a plans identifier such as nnUNetResEncUNetMPlans")
        if "__" in name or name.endswith(SUFFIX) or "Recipe_" in name:
            raise SSSError(f"-tr {name}: trainer names may not contain '__' or end in '{SUFFIX}'")
        try:
            find_trainer(name)
        except LookupError:
            raise SSSError(f"-tr {name}: unknown trainer (not in nnunetv2's trainers nor in nnUNet_extTrainer="
                           f"{os.environ.get('nnUNet_extTrainer', '')})") from None


# plans identifiers compare can make with nnU-Net's own planners, and the planner that makes each
PLANNERS = {"nnUNetPlans": "ExperimentPlanner", "nnUNetResEncUNetMPlans": "nnUNetPlannerResEncM",
            "nnUNetResEncUNetLPlans": "nnUNetPlannerResEncL", "nnUNetResEncUNetXLPlans": "nnUNetPlannerResEncXL"}


def check_plans_available(name: str, plans_list: list[str], env: dict) -> None:
    """Every plans identifier must exist or be one nnU-Net's planners make (:data:`PLANNERS`)."""
    pre_root = env.get("nnUNet_preprocessed")
    if not pre_root:
        raise SSSError("nnUNet_preprocessed is not set")
    for plans in plans_list:
        plans_file = Path(pre_root) / name / f"{plans}.json"
        if not plans_file.exists() and plans not in PLANNERS:
            raise SSSError(f"{plans_file} does not exist and compare cannot plan '{plans}' (it plans "
                           f"{', '.join(PLANNERS)}): plan the dataset with those plans first")


def ensure_plans(dataset_id: int, name: str, configuration: str, plans: str, env: dict, out: Path) -> None:
    """Plan and preprocess with the stock commands when needed; a configuration the plans lack is an error."""
    from sss_nnunet.compare.children import run_logged

    check_plans_available(name, [plans], env)
    pre_root = env["nnUNet_preprocessed"]
    plans_file = Path(pre_root) / name / f"{plans}.json"
    if not plans_file.exists():
        fingerprint = Path(pre_root) / name / "dataset_fingerprint.json"
        if not fingerprint.exists():
            print(f"compare: no {fingerprint}; extracting it (nnUNetv2_extract_fingerprint -d {dataset_id})",
                  flush=True)
            log = out / "logs" / "fingerprint.log"
            if run_logged(["nnUNetv2_extract_fingerprint", "-d", str(dataset_id), "--verify_dataset_integrity",
                           "-np", "2"], env, log) != 0:
                raise SSSError(f"fingerprinting {name} failed; see {log}")
        print(f"compare: no {plans_file}; planning it (nnUNetv2_plan_experiment -d {dataset_id} -pl "
              f"{PLANNERS[plans]})", flush=True)
        log = out / "logs" / f"plan_{plans}.log"
        if run_logged(["nnUNetv2_plan_experiment", "-d", str(dataset_id), "-pl", PLANNERS[plans]], env, log) != 0:
            raise SSSError(f"planning {name} with {PLANNERS[plans]} failed; see {log}")
    configs = json.loads(plans_file.read_text())["configurations"]
    if configuration not in configs:
        raise SSSError(f"-c {configuration}: not in {plans_file} (it has {', '.join(configs)})")
    ident = configs[configuration].get("data_identifier")
    if ident and not (Path(pre_root) / name / ident).is_dir():
        print(f"compare: preprocessing {configuration} for {plans} (nnUNetv2_preprocess)", flush=True)
        log = out / "logs" / f"preprocess_{plans}.log"
        if run_logged(["nnUNetv2_preprocess", "-d", str(dataset_id), "-plans_name", plans, "-c", configuration,
                       "-np", "2"], env, log) != 0 or not (Path(pre_root) / name / ident).is_dir():
            raise SSSError(f"preprocessing {name} {configuration} failed; see {log}")


def build_spec(args: argparse.Namespace, env: dict | None = None):
    """Validate the arguments (one-line ``SSSError``s) and return a ``CompareSpec``."""
    from sss_nnunet.compare.budget import Budget
    from sss_nnunet.compare.runner import CompareSpec

    env = dict(os.environ if env is None else env)
    if args.iterations < 1:
        raise SSSError(f"--iterations must be at least 1, got {args.iterations}")
    if args.iterations_per_epoch < 1:
        raise SSSError(f"--iterations-per-epoch must be at least 1, got {args.iterations_per_epoch}")
    if args.val_iterations < 1:
        raise SSSError(f"--val-iterations must be at least 1, got {args.val_iterations}")
    if args.fold != "all" and not (args.fold.isdigit()):
        raise SSSError(f"-f {args.fold}: a fold is 0..4 or all")
    if len(set(args.seeds)) != len(args.seeds) or min(args.seeds) < 0 or max(args.seeds) >= MAX_SEED:
        raise SSSError(f"--seeds must be distinct integers from 0 to {MAX_SEED - 1}, got "
                       f"{' '.join(map(str, args.seeds))}")
    if args.restore and args.overwrite:
        raise SSSError("--restore with --overwrite: --overwrite redoes the runs, so there is nothing to restore")
    missing = [p for p in args.restore if not p.is_file()]
    if missing:
        what = "a folder: give its compare.json" if missing[0].is_dir() else "no such file"
        raise SSSError(f"--restore {missing[0]}: {what}")
    dataset_id, raw = resolve_raw_dataset(args.dataset, env)
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise SSSError("--device cuda, but torch sees no CUDA device (use --device cpu)")
    check_trainers(args.trainers, args.plans)
    check_recipes(args.recipes)
    if args.batch_size is not None and args.batch_size < 1:
        raise SSSError(f"--batch-size must be at least 1, got {args.batch_size}")
    budget = Budget.split(args.iterations, args.iterations_per_epoch, args.val_iterations, args.batch_size)
    spec = CompareSpec(dataset_id=dataset_id, raw=raw, trainers=list(args.trainers), configuration=args.configuration,
                       fold=args.fold, plans=args.plans, budget=budget, seeds=list(args.seeds), device=args.device,
                       out=args.out.resolve(), overwrite=args.overwrite, deterministic=args.deterministic,
                       tta=not args.disable_tta, env=env, recipes=list(args.recipes), baseline=args.baseline,
                       restore=[p.resolve() for p in args.restore])
    check_plans_available(spec.dataset_name, sorted({r.plans for r in spec.rows}), env)
    from sss_nnunet.compare.stats import resolve_baseline

    try:
        if resolve_baseline(spec.rows, spec.baseline) is None and len(spec.rows) > 1:
            print("compare: no baseline (no nnU-Net trainer among -tr, no --baseline): the report has no "
                  "verdicts or intervals", file=sys.stderr)
    except ValueError as e:
        raise SSSError(str(e)) from None
    from sss_nnunet.compare.runner import Comparison

    Comparison(spec, print_fn=lambda line: None).check_out()  # before any planning or preprocessing
    return spec


def check_recipes(recipes: list[str]) -> None:
    from sss_nnunet.trainers.recipes import RECIPE_NAMES

    unknown = [r for r in recipes if r not in RECIPE_NAMES]
    if unknown:
        raise SSSError(f"--recipe {unknown[0]}: unknown recipe (choose from {', '.join(RECIPE_NAMES)})")
    if len(set(recipes)) != len(recipes):
        raise SSSError(f"--recipe lists a recipe twice: {' '.join(recipes)}")


def compare(spec, command: str) -> list[dict]:
    """Plan if needed, run everything, write the report after every run; returns the report rows."""
    from sss_nnunet.compare.report import write_report
    from sss_nnunet.compare.runner import Comparison

    spec.out.mkdir(parents=True, exist_ok=True)
    plans_names = list(dict.fromkeys([spec.plans] + [r.plans for r in spec.rows]))
    layouts = {}
    for plans_name in plans_names:
        ensure_plans(spec.dataset_id, spec.dataset_name, spec.configuration, plans_name, spec.env, spec.out)
        plans = json.loads((Path(spec.env["nnUNet_preprocessed"]) / spec.dataset_name / f"{plans_name}.json")
                           .read_text())
        config = plans["configurations"][spec.configuration]
        layouts[plans_name] = {"patch_size": config.get("patch_size"), "batch_size": config.get("batch_size"),
                               "network": config.get("architecture", {}).get("network_class_name")}
    n_test = len(list((spec.raw / "labelsTs").glob("*")))
    extra = {"n_test_cases": n_test, "patch_size": layouts[spec.plans]["patch_size"],
             "batch_size": layouts[spec.plans]["batch_size"], "plans_layouts": layouts, "recipes": spec.recipes,
             "baseline": spec.baseline}
    print(f"compare: {len(spec.rows)} row(s) x {len(spec.seeds)} seed(s) on {spec.dataset_name} "
          f"{spec.configuration} fold {spec.fold}, {spec.budget.describe()}, {n_test} test cases, device "
          f"{spec.device}; output {spec.out}", flush=True)
    rows: list[dict] = []

    def report(records: list[dict]) -> None:
        rows[:] = write_report(spec.out, spec.settings(), [r.label for r in spec.rows], spec.seeds, records,
                               command, extra, spec_rows=spec.rows, baseline=spec.baseline)

    records = Comparison(spec, print_fn=lambda s: print(s, flush=True)).run(on_record=report)
    report(records)
    return rows


def run(args: argparse.Namespace) -> int:
    spec = build_spec(args)
    rows = compare(spec, shlex.join(["sss-nnunet", *sys.argv[1:]]))
    print("\n" + (spec.out / "compare.md").read_text())
    print(f"wrote compare.md, compare.json, compare.png, curves.png to {spec.out}")
    failed = [r["trainer"] for r in rows if r["status"] != "ok"]
    if failed:
        print(f"compare: {len(failed)} trainer(s) did not finish every seed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
