"""`sss-nnunet compare` pieces that need no training: budget split, budget subclasses found by
nnU-Net's own lookup, the report's aggregation over seeds, one-line argument errors."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from sss_nnunet.compare import report
from sss_nnunet.compare.budget import Budget, BudgetMixin, find_trainer, module_source
from tests.conftest import SSS_NNUNET
from tests.trainers.tiny_dataset import write_tiny_dataset

SSS = SSS_NNUNET


@pytest.mark.parametrize("n, per_epoch, expected", [
    (300, 25, (12, 25)), (310, 25, (13, 24)), (7, 25, (1, 7)), (1, 1, (1, 1)), (50, 20, (3, 17)),
])
def test_budget_split_is_equal_epochs_covering_the_iterations(n, per_epoch, expected):
    b = Budget.split(n, per_epoch, 2)
    assert (b.epochs, b.iterations_per_epoch) == expected
    assert n <= b.iterations < n + b.epochs and b.iterations_per_epoch <= per_epoch
    with pytest.raises(ValueError):
        Budget.split(0, 25, 2)


@pytest.mark.parametrize("base", ["nnUNetTrainer", "SSSTrainer_tiny"])
def test_generated_budget_trainer_is_what_nnunet_finds(tmp_path, monkeypatch, base):
    """The generated module in its own folder on nnUNet_extTrainer gives nnU-Net ``<base>_budget``:
    the budget mixin first, then the very class nnU-Net finds as ``base`` (stock or ours)."""
    folder = tmp_path / "budget_trainers" / base
    folder.mkdir(parents=True)
    budget = Budget.split(40, 10, 3)
    (folder / f"sss_compare_{base}.py").write_text(module_source(base, budget))
    monkeypatch.setenv("nnUNet_extTrainer", f"{__import__('os').environ.get('nnUNet_extTrainer', '')}:{folder}")
    cls = find_trainer(base + "_budget")
    assert cls.__name__ == base + "_budget"
    assert cls.__mro__[1] is BudgetMixin and cls.__mro__[2] is find_trainer(base)
    assert cls.budget == {"epochs": 4, "iterations_per_epoch": 10, "val_iterations_per_epoch": 3, "iterations": 40}


def test_unknown_trainer_is_a_lookup_error():
    with pytest.raises(LookupError, match="NoSuchTrainer"):
        find_trainer("NoSuchTrainer")


def _record(trainer, seed, dice, status="ok"):
    if status != "ok":
        return {"trainer": trainer, "seed": seed, "status": "failed", "step": "train", "log": f"/x/{trainer}.log",
                "message": "RuntimeError: a | b"}
    classes = {"1": {"name": "liver", "dice_mean": dice[0], "hd95_mean": 3.0 + seed},
               "2": {"name": "spleen", "dice_mean": dice[1], "hd95_mean": 5.0}}
    return {"trainer": trainer, "seed": seed, "status": "ok",
            "stats": {"parameters": 1_000_000, "seconds_per_iteration": 0.5 + seed, "peak_memory_bytes": 2**30,
                      "peak_memory_kind": "cpu_max_rss", "budget": {"iterations_per_epoch": 5},
                      "curves": {"train_losses": [1.0, 0.5], "val_losses": [1.1, 0.7], "ema_fg_dice": [0.2, 0.4]}},
            "predict": {"seconds_per_case": 2.0},
            "summary": {"classes": classes, "mean": {"dice": sum(dice) / 2, "hd95": 4.0}}}


def _settings() -> dict:
    return {"dataset": "Dataset1_X", "configuration": "3d_fullres", "fold": "0", "plans": "nnUNetPlans",
            "budget": Budget.split(10, 5, 1).as_dict(), "device": "cpu", "deterministic": False, "tta": True}


def test_report_mean_and_sd_over_seeds_and_failed_rows(tmp_path):
    records = [_record("A", 0, (0.9, 0.7)), _record("A", 1, (0.8, 0.5)), _record("B", 0, None, "failed")]
    rows = report.aggregate(["A", "B"], records)
    a, b = rows
    assert a["status"] == "ok" and a["n_ok"] == 2
    assert a["aggregate"]["dice"]["1"]["mean"] == pytest.approx(0.85)
    assert a["aggregate"]["dice"]["1"]["sd"] == pytest.approx(math.sqrt(2) * 0.05)
    assert a["aggregate"]["mean_dice"]["mean"] == pytest.approx(0.725)
    assert b["aggregate"] == {} and "FAILED at train (RuntimeError: a / b)" in b["status"] and "/x/B.log" in b["status"]
    settings = _settings()
    rows = report.write_report(tmp_path, settings, ["A", "B"], [0, 1], records, "sss-nnunet compare ...")
    md = (tmp_path / "compare.md").read_text()
    row_a = next(line for line in md.splitlines() if line.startswith("| A |"))
    assert "0.850 ± 0.071" in row_a and "Dice liver" in md and "| B | seed 0 FAILED" in md
    data = json.loads((tmp_path / "compare.json").read_text())
    assert [r["trainer"] for r in data["rows"]] == ["A", "B"]
    for png in ("compare.png", "curves.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_rerender_rewrites_the_reports_from_the_records_by_todays_rules(tmp_path):
    records = [_record("A", 0, (0.9, 0.7)), _record("A", 1, (0.8, 0.5))]
    for r in records:  # the per-epoch pseudo Dice flat since epoch 5: converged
        r["stats"]["curves"]["mean_fg_dice"] = [0.2, 0.4, 0.6, 0.8] + [0.9] * 6
    settings = _settings()
    report.write_report(tmp_path, settings, ["A"], [0, 1], records, "sss-nnunet compare -d 1")
    data = json.loads((tmp_path / "compare.json").read_text())
    data["rows"][0]["aggregate"]["convergence"] = "written by an older rule"
    data["meta"]["date"] = "2026-01-01 00:00 UTC"
    (tmp_path / "compare.json").write_text(json.dumps(data))
    (tmp_path / "compare.md").write_text("old")
    res = subprocess.run([sys.executable, "-m", "sss_nnunet.compare.report", str(tmp_path / "compare.json")],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    new = json.loads((tmp_path / "compare.json").read_text())
    assert new["rows"][0]["aggregate"]["convergence"] == "yes"
    assert new["meta"]["date"] == "2026-01-01 00:00 UTC" and new["rows"][0]["runs"] == data["rows"][0]["runs"]
    md = (tmp_path / "compare.md").read_text()
    assert "2026-01-01 00:00 UTC" in md and "sss-nnunet compare -d 1" in md
    assert "yes" in next(line for line in md.splitlines() if line.startswith("| A |"))
    rung = tmp_path / "rungs" / "SSSTrainer_L4.json"  # an archived ladder rung: rewritten in place, alone
    rung.parent.mkdir()
    rung.write_text(json.dumps(data))
    (tmp_path / "compare.md").write_text("the folder's own report")
    res = subprocess.run([sys.executable, "-m", "sss_nnunet.compare.report", str(rung)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "alone" in res.stdout, res.stderr
    assert json.loads(rung.read_text())["rows"][0]["aggregate"]["convergence"] == "yes"
    assert sorted(p.name for p in rung.parent.iterdir()) == ["SSSTrainer_L4.json"]
    assert (tmp_path / "compare.md").read_text() == "the folder's own report"
    (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
    for bad, words in (("missing.json", "cannot read it"), ("other.json", "not a compare.json")):
        res = subprocess.run([sys.executable, "-m", "sss_nnunet.compare.report", str(tmp_path / bad)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and words in res.stderr.strip().splitlines()[-1] and "Traceback" not in res.stderr


def _compare(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([SSS, "compare", *args], capture_output=True, text=True, timeout=300, env=env)


def _one_line_error(res: subprocess.CompletedProcess, *words: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sss-nnunet compare: error:"), res.stderr
    for w in words:
        assert w in lines[0]


@pytest.fixture
def raw_env(tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(nnUNet_raw=str(tmp_path / "raw"), nnUNet_preprocessed=str(tmp_path / "pre"))
    write_tiny_dataset(tmp_path / "raw", 977, n_train=6, n_test=1)
    return env


def test_bad_arguments_are_one_line_errors(tmp_path, raw_env):
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "--iterations", "0", env=raw_env), "--iterations")
    _one_line_error(_compare("-d", "978", "-tr", "nnUNetTrainer", env=raw_env), "Dataset978")
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "NoSuchTrainer", env=raw_env),
                    "NoSuchTrainer", "unknown trainer")
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "nnUNetTrainer", env=raw_env), "twice")
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "--restore", str(tmp_path / "gone.json"),
                             env=raw_env), "gone.json", "no such file")
    (tmp_path / "c.json").write_text("{}")
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "--restore", str(tmp_path / "c.json"),
                             "--overwrite", env=raw_env), "--restore with --overwrite")
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "--seeds", "0", "4000000", env=raw_env),
                    "--seeds must be distinct integers from 0 to 3999999")
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "--restore", str(tmp_path), env=raw_env),
                    "a folder: give its compare.json")
    # refused before any planning: an --out of other settings, an archive of other settings
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "compare_settings.json").write_text(json.dumps({"dataset": "Dataset977_Tiny",
                                                                        "budget": {"iterations": 1}}))
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "--out", str(tmp_path / "out"), env=raw_env),
                    "holds a comparison with other settings")
    no_base = _compare("-d", "977", "-tr", "SSSTrainer", "SSSTrainer_globalOnly", "--out", str(tmp_path / "out"),
                       env=raw_env)  # said before the refusal
    assert no_base.returncode == 2 and "no baseline (no nnU-Net trainer among -tr" in no_base.stderr
    (tmp_path / "other.json").write_text(json.dumps({"settings": {"dataset": "Dataset990_X"}, "rows": []}))
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", "--out", str(tmp_path / "new"), "--restore",
                             str(tmp_path / "other.json"), env=raw_env), "other.json: its runs used other settings")
    dataset_json = tmp_path / "raw" / "Dataset977_Tiny" / "dataset.json"
    good = dataset_json.read_text()
    dataset_json.write_text(good[:20])
    _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", env=raw_env), "dataset.json: not a readable")
    dataset_json.write_text(good)
    for sub in ("labelsTs", "imagesTs"):
        for f in (tmp_path / "raw" / "Dataset977_Tiny" / sub).iterdir():
            f.unlink()
        _one_line_error(_compare("-d", "977", "-tr", "nnUNetTrainer", env=raw_env), sub)
    assert not (tmp_path / "pre").exists()  # nothing planned for a refused comparison


def test_failure_message_is_the_real_exception_not_the_dataloader_follow_up(tmp_path):
    from sss_nnunet.compare.children import error_summary

    log = tmp_path / "train.log"
    log.write_text("$ nnUNetv2_train ...\nTraceback (most recent call last):\n  File x\n"
                   "RuntimeError: boom: this trainer always fails\nException in thread Thread-2:\n"
                   "RuntimeError: One or more background workers are no longer alive. Exiting.\n")
    assert error_summary(log) == "RuntimeError: boom: this trainer always fails"
    log.write_text("no traceback\nKilled\n")
    assert error_summary(log) == "no traceback | Killed"


def test_eta_extrapolates_the_training_and_counts_prediction(monkeypatch):
    from sss_nnunet.compare import children

    clock = [0.0]
    monkeypatch.setattr(children.time, "perf_counter", lambda: clock[0])
    lines: list[str] = []
    p = children.Progress(n_runs=3, epochs=4, print_fn=lines.append)
    p.start_run()
    assert p.eta() == "ETA ?"
    clock[0] = 10.0
    p.epoch(1)  # 10 s per epoch -> 40 s of training; no prediction time known yet
    assert p.eta() == "ETA ~1m50s"  # 30 s left + 2 runs x 40 s
    clock[0] = 40.0
    p.end_train()
    clock[0] = 50.0
    p.end_run(trained=True)  # the run took 50 s, 10 s of it prediction + evaluation
    p.start_run()
    clock[0] = 60.0
    p.epoch(1)
    assert p.eta() == "ETA ~1m30s"  # 30 s training + 10 s prediction left, then one run of 50 s
    p.say("T", 0, "train epoch 2/4")
    assert lines == ["[compare 2/3] T seed 0: train epoch 2/4 | elapsed 1m00s | ETA ~1m30s"]


def test_a_retrained_model_is_scored_by_its_own_predictions(tmp_path, monkeypatch):
    """A run that failed after predicting (evaluate) and whose model was then removed trains again:
    the predictions of the earlier model must not be scored for the new one (children faked)."""
    from pathlib import Path

    from sss_nnunet.compare import runner
    from sss_nnunet.compare.budget import STATS_FILE

    raw = write_tiny_dataset(tmp_path / "raw", n_train=3, n_test=2)
    spec = runner.CompareSpec(dataset_id=977, raw=raw, trainers=["nnUNetTrainer"], configuration="3d_fullres",
                              fold="0", plans="nnUNetPlans", budget=Budget.split(4, 2, 1), seeds=[0], device="cpu",
                              out=tmp_path / "out")
    comparison = runner.Comparison(spec, print_fn=lambda s: None)
    row = spec.rows[0]
    generation = {"model": 0, "evaluate_rc": 1}

    def fake(cmd: list[str], env: dict, log: Path, on_line=None) -> int:
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        if cmd[0] == "nnUNetv2_train":
            generation["model"] += 1
            fold = comparison.fold_dir(row, 0)
            fold.mkdir(parents=True)
            (fold / "checkpoint_final.pth").write_text("")
            (fold / STATS_FILE).write_text(json.dumps({"model": generation["model"]}))
        elif cmd[0] == "nnUNetv2_predict":
            out = Path(cmd[cmd.index("-o") + 1])
            out.mkdir(parents=True)
            (out / "from_model.txt").write_text(str(generation["model"]))
        else:  # sss-nnunet evaluate
            pred = Path(cmd[cmd.index("--pred") + 1])
            ev = Path(cmd[cmd.index("--out") + 1])
            ev.mkdir(parents=True, exist_ok=True)
            (ev / "summary.json").write_text(json.dumps({"from_model": int((pred / "from_model.txt").read_text())}))
            return generation["evaluate_rc"]
        return 0

    monkeypatch.setattr(runner, "run_logged", fake)
    record, _ = comparison.run_one(row, 0)
    assert record["status"] == "failed" and record["step"] == "evaluate"
    import shutil

    shutil.rmtree(comparison.fold_dir(row, 0))  # the model is gone: the run trains again
    generation["evaluate_rc"] = 0
    record, trained = comparison.run_one(row, 0)
    assert trained and record["status"] == "ok" and record["stats"] == {"model": 2}
    assert record["summary"] == {"from_model": 2}
