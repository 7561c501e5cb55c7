"""Runs a comparison: for each seed, each trainer in turn, the stock console scripts

1. ``nnUNetv2_train ID CONFIG FOLD -tr T_budget -p PLANS -device DEV`` (the budget subclass of
   ``T``, see :mod:`sss_nnunet.compare.budget`), models in ``OUT/runs/seedS/nnUNet_results``;
2. ``nnUNetv2_predict`` of ``imagesTs`` (checkpoint_final);
3. ``sss-nnunet evaluate --protocol strict`` against ``labelsTs``;

and writes ``OUT/runs/seedS/T/result.json`` (atomically) when all three succeeded. A run whose
result exists is skipped (``overwrite`` redoes it); within a run, a finished training or
prediction is reused. A failing step marks the run failed (log path kept) and the next run starts.
Only one child process runs at a time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from sss_nnunet.compare.budget import SEED_ENV, STATS_FILE, Budget, budget_class_name, module_source
from sss_nnunet.compare.children import Progress, error_summary, run_logged
from sss_nnunet.compare.provenance import (
    code_version,
    data_digest,
    foreign_run,
    read_archive,
    read_json_object,
    restore_runs,
    settings_diff,
)
from sss_nnunet.errors import SSSError
from sss_nnunet.io import atomic_write_json, atomic_write_text

SETTINGS_FILE = "compare_settings.json"
RESULT_FILE = "result.json"
_EPOCH = re.compile(r": Epoch (\d+)\s*$")
_PRED_START = re.compile(r"^Predicting (\S+):")
_PRED_DONE = re.compile(r"^done with (\S+)")


@dataclass(frozen=True)
class Row:
    """One row of the comparison: a trainer, the plans it trains with, the recipe it trains under."""

    trainer: str
    plans: str
    recipe: str = "own"
    explicit_plans: bool = False  # given as TRAINER:PLANS

    @property
    def label(self) -> str:
        """``T``, ``T:PLANS`` or ``T [sss recipe]``: the row's name in the report."""
        text = f"{self.trainer}:{self.plans}" if self.explicit_plans else self.trainer
        return text if self.recipe == "own" else f"{text} [{self.recipe} recipe]"

    @property
    def dirname(self) -> str:
        """Folder name of the row's runs (``T`` for the trainer's own recipe and the default plans)."""
        parts = [self.trainer] + ([self.plans] if self.explicit_plans else []) + (
            [self.recipe] if self.recipe != "own" else [])
        return "__".join(parts)

    @property
    def budget_trainer(self) -> str:
        return budget_class_name(self.trainer, None if self.recipe == "own" else self.recipe)


def parse_rows(trainers: list[str], recipes: list[str], default_plans: str) -> list[Row]:
    """``TRAINER[:PLANS]`` x recipes, trainer-major."""
    rows = []
    for text in trainers:
        trainer, _, plans = text.partition(":")
        for recipe in recipes:
            rows.append(Row(trainer, plans or default_plans, recipe, bool(plans)))
    return rows


@dataclass
class CompareSpec:
    """Everything a comparison needs; ``raw`` is the raw dataset folder (with imagesTs/labelsTs).
    ``trainers``: ``TRAINER[:PLANS]`` (``plans`` when no ``:PLANS``); every trainer runs under every
    name in ``recipes``."""

    dataset_id: int
    raw: Path
    trainers: list[str]
    configuration: str
    fold: str
    plans: str
    budget: Budget
    seeds: list[int]
    device: str
    out: Path
    overwrite: bool = False
    deterministic: bool = False
    tta: bool = True
    env: dict = field(default_factory=lambda: dict(os.environ))
    recipes: list[str] = field(default_factory=lambda: ["own"])
    baseline: str | None = None  # TRAINER[:PLANS]; None: the first nnU-Net trainer listed
    restore: list[Path] = field(default_factory=list)  # earlier compare.json files whose finished runs are reused

    @property
    def dataset_name(self) -> str:
        return self.raw.name

    @property
    def rows(self) -> list[Row]:
        return parse_rows(self.trainers, self.recipes, self.plans)

    @cached_property
    def data(self) -> str:
        """The digest of the raw dataset's files (:func:`sss_nnunet.compare.provenance.data_digest`)."""
        return data_digest(self.raw)

    def settings(self) -> dict:
        """What must match for earlier results in ``out`` to be reused (``data``: the same cases)."""
        return {"dataset": self.dataset_name, "data": self.data, "configuration": self.configuration,
                "fold": self.fold, "plans": self.plans, "budget": self.budget.as_dict(), "device": self.device,
                "deterministic": self.deterministic, "tta": self.tta}


class Comparison:
    """Runs :class:`CompareSpec`; :meth:`run` returns the run records (``result.json`` contents)."""

    def __init__(self, spec: CompareSpec, print_fn: Callable[[str], None] = print):
        self.spec, self.print = spec, print_fn
        self.progress = Progress(len(spec.seeds) * len(spec.rows), spec.budget.epochs, print_fn)

    # ------------------------------------------------------------------ folders
    def budget_dir(self, row: Row) -> Path:
        return self.spec.out / "budget_trainers" / row.budget_trainer

    def seed_dir(self, seed: int) -> Path:
        return self.spec.out / "runs" / f"seed{seed}"

    def run_dir(self, row: Row, seed: int) -> Path:
        return self.seed_dir(seed) / row.dirname

    def fold_dir(self, row: Row, seed: int) -> Path:
        s = self.spec
        fold = "fold_all" if s.fold == "all" else f"fold_{s.fold}"
        return (self.seed_dir(seed) / "nnUNet_results" / s.dataset_name / f"{row.budget_trainer}__{row.plans}__"
                f"{s.configuration}" / fold)

    def child_env(self, row: Row, seed: int) -> dict[str, str]:
        s = self.spec
        env = dict(s.env)
        ext = [p for p in env.get("nnUNet_extTrainer", "").split(os.pathsep) if p]
        env["nnUNet_extTrainer"] = os.pathsep.join([*ext, str(self.budget_dir(row).resolve())])
        env["nnUNet_results"] = str((self.seed_dir(seed) / "nnUNet_results").resolve())
        env[SEED_ENV] = str(seed)
        env["PYTHONUNBUFFERED"] = "1"
        env.setdefault("nnUNet_def_n_proc", "2")
        env.setdefault("nnUNet_n_proc_DA", "2")
        if s.deterministic:
            env["nnUNet_n_proc_DA"] = "0"
        return env

    # ------------------------------------------------------------------ set-up
    def prepare(self) -> None:
        """Check or write the settings of ``out``, write the generated budget modules."""
        s = self.spec
        self.check_out()
        settings_file = s.out / SETTINGS_FILE
        if s.overwrite and settings_file.exists() and settings_diff(read_json_object(settings_file), s.settings())[0]:
            shutil.rmtree(s.out / "runs", ignore_errors=True)  # runs of other settings: all of them go
        atomic_write_json(settings_file, s.settings())
        for archive in s.restore:
            n, note = restore_runs(archive, s.out, s.settings())
            self.print(f"compare: restored {n} finished run(s) from {archive}{note}")
        if not s.overwrite:
            self.check_finished_runs()
        for row in s.rows:
            recipe = None if row.recipe == "own" else row.recipe
            atomic_write_text(self.budget_dir(row) / f"sss_compare_{row.budget_trainer}.py",
                              module_source(row.trainer, s.budget, recipe))
        self.preflight([row for row in s.rows if row.recipe != "own"])

    def check_out(self) -> None:
        """What :meth:`prepare` refuses, checked without writing anything (``compare`` calls it before
        planning): an ``--out`` holding a comparison with other settings, ``--restore`` archives of
        other settings or data, finished runs of another comparison in ``--out``."""
        s = self.spec
        settings_file = s.out / SETTINGS_FILE
        if settings_file.exists() and not s.overwrite:
            old = read_json_object(settings_file)
            diff, _ = settings_diff(old, s.settings())
            if diff:
                diff = ", ".join(diff)
                if old.get("data", s.data) != s.data:
                    diff += f" (data: the files of {s.raw} are not those its runs used)"
                raise SSSError(f"{s.out} holds a comparison with other settings ({diff}); use --overwrite "
                               f"to replace it (every run in it) or another --out")
        for archive in s.restore:
            read_archive(archive, s.settings())
        if not s.overwrite:
            self.check_finished_runs()

    def check_finished_runs(self) -> None:
        """Before any training: every finished run that :meth:`run_one` would skip is this comparison's
        own (seed, row, budget), so a run folder copied from another comparison (another budget, say)
        cannot count as done; and every ``result.json`` there is readable."""
        budget = self.spec.settings()["budget"]
        for seed in self.spec.seeds:
            for row in self.spec.rows:
                path = self.run_dir(row, seed) / RESULT_FILE
                if not path.exists():
                    continue
                try:
                    record = json.loads(path.read_text())
                except (OSError, UnicodeDecodeError, ValueError) as e:
                    raise SSSError(f"{path}: not a readable run record ({e}); remove {path.parent} to redo "
                                   f"that run") from None
                if not isinstance(record, dict):
                    raise SSSError(f"{path}: not a run record (a JSON object); remove {path.parent} to redo it")
                identity = {"seed": seed, "trainer": row.trainer, "plans": row.plans, "recipe": row.recipe}
                why = foreign_run(record, identity, budget) if record.get("status") == "ok" else ""
                if why:
                    raise SSSError(f"{path}: a finished run of another comparison ({why}); remove {path.parent} "
                                   f"to redo it here, or use another --out")

    def preflight(self, rows: list[Row]) -> None:
        """Build each recipe-overridden trainer once (``initialize`` on the CPU, in a child process with
        the training's environment, models to a scratch folder) and check that its optimiser is the
        recipe's: a trainer whose optimiser cannot be replaced stops the comparison before any training."""
        s = self.spec
        for row in rows:
            env = self.child_env(row, 0)
            env["nnUNet_results"] = str((s.out / "preflight" / "nnUNet_results").resolve())
            log = s.out / "logs" / f"preflight_{row.budget_trainer}__{row.plans}.log"
            code = run_logged([sys.executable, "-m", "sss_nnunet.compare.preflight", str(s.dataset_id),
                               s.configuration, s.fold, row.budget_trainer, row.plans], env, log)
            if code != 0:
                raise SSSError(f"-tr {row.label}: {error_summary(log) or 'the trainer could not be built'} "
                               f"(see {log})")
        shutil.rmtree(s.out / "preflight", ignore_errors=True)

    # ------------------------------------------------------------------ one run
    def run(self, on_record: Callable[[list[dict]], None] | None = None) -> list[dict]:
        """All runs, seed by seed; ``on_record(records so far)`` after each (e.g. to rewrite the report)."""
        self.prepare()
        records = []
        for seed in self.spec.seeds:
            for row in self.spec.rows:
                self.progress.start_run()
                record, trained = self.run_one(row, seed)
                self.progress.end_run(trained)
                records.append(record)
                status = ("done" if record["status"] == "ok" else
                          f"FAILED at {record['step']}: {record.get('message', '')[:200]} (log: {record['log']})")
                self.progress.say(row.label, seed, status)
                if on_record is not None:
                    on_record(records)
        return records

    def run_one(self, row: Row, seed: int) -> tuple[dict, bool]:
        """(record, whether a training ran). Never raises for a failing child process."""
        s = self.spec
        rdir = self.run_dir(row, seed)
        result_file = rdir / RESULT_FILE
        trainer = row.label  # in progress lines
        if s.overwrite:
            shutil.rmtree(rdir, ignore_errors=True)
            shutil.rmtree(self.fold_dir(row, seed).parent, ignore_errors=True)
        if result_file.exists():
            record = json.loads(result_file.read_text())
            if record.get("status") == "ok":
                self.progress.say(trainer, seed, "already done, skipped (--overwrite redoes it)")
                return {**record, **self._row_fields(row)}, False
        base = {**self._row_fields(row), "seed": seed, "run_dir": str(rdir), "budget_trainer": row.budget_trainer,
                "code": code_version()}
        env = self.child_env(row, seed)
        fold_dir = self.fold_dir(row, seed)
        trained = False

        # 1. train
        stats_file = fold_dir / STATS_FILE
        if stats_file.exists() and (fold_dir / "checkpoint_final.pth").exists():
            self.progress.say(trainer, seed, "training found, reused")
        else:
            shutil.rmtree(fold_dir, ignore_errors=True)
            (rdir / "predict.json").unlink(missing_ok=True)  # predictions of an earlier model are not this one's
            shutil.rmtree(rdir / "predictions", ignore_errors=True)
            self.progress.say(trainer, seed, f"train ({s.budget.describe()})")
            log = rdir / "train.log"

            def on_line(line: str) -> None:
                m = _EPOCH.search(line)
                if m and int(m.group(1)) > 0:
                    done = int(m.group(1))
                    self.progress.epoch(done)
                    self.progress.say(trainer, seed, f"train epoch {done + 1}/{s.budget.epochs}")

            t0 = time.perf_counter()
            code = run_logged(["nnUNetv2_train", str(s.dataset_id), s.configuration, s.fold, "-tr", row.budget_trainer,
                               "-p", row.plans, "-device", s.device], env, log, on_line)
            trained = True
            if code != 0 or not stats_file.exists():
                return self._failed(base, "train", log, code), trained
            base["train_wall_seconds"] = time.perf_counter() - t0
        self.progress.end_train()
        stats = json.loads(stats_file.read_text())

        # 2. predict
        pred = rdir / "predictions"
        pred_info = rdir / "predict.json"
        if not pred_info.exists():
            self.progress.say(trainer, seed, "predict imagesTs (nnUNetv2_predict)")
            partial = rdir / "predictions.partial"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(pred, ignore_errors=True)
            log = rdir / "predict.log"
            times: dict[str, list[float]] = {}

            def on_pred(line: str) -> None:
                for pattern, slot in ((_PRED_START, 0), (_PRED_DONE, 1)):
                    m = pattern.match(line.strip())
                    if m:
                        times.setdefault(m.group(1), [None, None])[slot] = time.perf_counter()

            t0 = time.perf_counter()
            cmd = ["nnUNetv2_predict", "-i", str(s.raw / "imagesTs"), "-o", str(partial), "-d", str(s.dataset_id),
                   "-c", s.configuration, "-tr", row.budget_trainer, "-p", row.plans, "-f", s.fold, "-device", s.device,
                   "-npp", "1", "-nps", "1", "--disable_progress_bar"]
            if not s.tta:
                cmd.append("--disable_tta")
            code = run_logged(cmd, env, log, on_pred)
            wall = time.perf_counter() - t0
            n_cases = len(list((s.raw / "imagesTs").glob("*_0000*")))
            if code != 0:
                return self._failed(base, "predict", log, code), trained
            os.replace(partial, pred)
            starts = [v[0] for v in times.values() if v[0] is not None]
            ends = [v[1] for v in times.values() if v[1] is not None]
            span = (max(ends) - min(starts)) if starts and ends else None
            atomic_write_json(pred_info, {
                "n_cases": n_cases, "wall_seconds": wall,
                "seconds_per_case": span / len(ends) if span is not None else wall / max(1, n_cases),
                "timing": "first case start to last case done in nnUNetv2_predict's output, per case "
                          "(process start-up and model loading excluded)" if span is not None else
                          "wall time of nnUNetv2_predict per case (start-up included)",
                "tta": s.tta})

        # 3. evaluate
        evaluation = rdir / "evaluation"
        log = rdir / "evaluate.log"
        self.progress.say(trainer, seed, "evaluate (sss-nnunet evaluate, strict)")
        code = run_logged(["sss-nnunet", "evaluate", "--pred", str(pred), "--gt", str(s.raw / "labelsTs"),
                           "-d", str(s.dataset_id), "--protocol", "strict", "--out", str(evaluation),
                           "--overwrite", "-np", "2", "--quiet", "--method-name", row.label], env, log)
        if code != 0:
            return self._failed(base, "evaluate", log, code), trained
        record = {**base, "status": "ok", "stats": stats, "predict": json.loads(pred_info.read_text()),
                  "summary": json.loads((evaluation / "summary.json").read_text()),
                  "model_folder": str(fold_dir)}
        atomic_write_json(result_file, record)
        return record, trained

    @staticmethod
    def _row_fields(row: Row) -> dict:
        return {"row": row.label, "trainer": row.trainer, "plans": row.plans, "recipe": row.recipe}

    def _failed(self, base: dict, step: str, log: Path, code: int) -> dict:
        record = {**base, "status": "failed", "step": step, "log": str(log), "exit_code": code,
                  "message": error_summary(log)}
        atomic_write_json(Path(base["run_dir"]) / RESULT_FILE, record)
        return record
