"""`compare --recipe`: one optimiser and schedule for every trainer, TRAINER:PLANS rows, and the
statistics (paired bootstrap interval, verdict, convergence) on constructed data with known answers."""

from __future__ import annotations

import argparse
import math

import numpy as np
import pytest
import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

from sss_nnunet.compare import stats
from sss_nnunet.compare.budget import check_optimizer, describe_recipe, make_budget_class
from sss_nnunet.compare.runner import Row, parse_rows
from sss_nnunet.errors import SSSError
from sss_nnunet.trainers import SSSTrainer

BUDGET = {"epochs": 20, "iterations_per_epoch": 2, "val_iterations_per_epoch": 1, "iterations": 40}


class UserTrainer(nnUNetTrainer):
    """A user's subclass with its own optimiser (Adam 5e-4, constant)."""

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.network.parameters(), 5e-4)
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)


@pytest.fixture
def built(make_trainer, nnunet_plans):
    """``built(base, recipe)``: the compare budget subclass of ``base`` under ``recipe``, initialised on the CPU
    (a small 3D plan: 4 stages, 16 x 32 x 32 patch)."""
    plans = nnunet_plans.plans("Dataset999_Unit", {"3d_fullres": nnunet_plans.configuration(
        3, [16, 32, 32], [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], [8, 16, 32, 64], [[3, 3, 3]] * 4)})

    def build(base: type, recipe: str | None):
        trainer = make_trainer(make_budget_class(base, BUDGET, recipe), plans)
        trainer.initialize()
        return trainer
    return build


def _lr_after(trainer, epochs: int) -> float:
    for e in range(epochs + 1):  # nnU-Net steps the schedule with the current epoch at each epoch start
        trainer.lr_scheduler.step(e)
    return trainer.optimizer.param_groups[0]["lr"]


@pytest.mark.parametrize("base", [nnUNetTrainer, SSSTrainer, UserTrainer])
def test_nnunet_recipe_replaces_every_trainers_optimiser(built, base):
    trainer = built(base, "nnunet")
    opt = trainer.optimizer
    assert type(opt) is torch.optim.SGD
    assert opt.defaults["momentum"] == 0.99 and opt.defaults["nesterov"] and opt.defaults["weight_decay"] == 3e-5
    assert len(opt.param_groups) == 1 and sum(p.numel() for p in opt.param_groups[0]["params"]) == sum(
        p.numel() for p in trainer.network.parameters())
    assert _lr_after(trainer, 10) == pytest.approx(1e-2 * (1 - 10 / 20) ** 0.9)
    check_optimizer(trainer)  # the optimiser trained with is the recipe's


@pytest.mark.parametrize("base", [nnUNetTrainer, SSSTrainer, UserTrainer])
def test_sss_recipe_replaces_every_trainers_optimiser(built, base):
    trainer = built(base, "sss")
    opt = trainer.optimizer
    assert type(opt) is torch.optim.AdamW
    decays = sorted(g["weight_decay"] for g in opt.param_groups)
    assert decays == [0.0, 1e-2]
    no_decay = next(g for g in opt.param_groups if g["weight_decay"] == 0.0)
    assert all(p.ndim < 2 for p in no_decay["params"])
    # warm-up: round(0.05 * 20) = 1 epoch; then cosine from 1e-3 to 1e-6 over the remaining 19 epochs
    assert _lr_after(trainer, 0) == pytest.approx(1e-3 / 2)
    expected = 1e-6 + (1e-3 - 1e-6) * 0.5 * (1 + math.cos(math.pi * (10 - 1) / 19))
    assert _lr_after(trainer, 10) == pytest.approx(expected)
    assert trainer.initial_lr == 1e-3 and trainer.weight_decay == 1e-2  # what nnU-Net logs


def test_own_recipe_keeps_each_trainers_optimiser(built):
    assert type(built(UserTrainer, None).optimizer) is torch.optim.Adam
    assert type(built(nnUNetTrainer, None).optimizer) is torch.optim.SGD
    assert type(built(SSSTrainer, None).optimizer) is torch.optim.AdamW


def test_recipe_description_names_optimiser_schedule_and_clipping(built):
    d = describe_recipe(built(SSSTrainer, "nnunet"))
    assert d["optimizer"] == "SGD" and d["lr"] == 1e-2 and d["schedule"] == "PolyLRScheduler"
    assert d["param_groups"][0]["momentum"] == 0.99 and d["param_groups"][0]["nesterov"] is True
    assert d["grad_clip"].startswith("clip_grad_norm 12")

    class OwnStep(nnUNetTrainer):
        def train_step(self, batch):
            return super().train_step(batch)

    d = describe_recipe(built(OwnStep, "sss"))
    assert d["optimizer"] == "AdamW" and d["warmup_epochs"] == 1 and "OwnStep" in d["grad_clip"]


def test_an_optimiser_built_outside_configure_optimizers_is_refused(built):
    trainer = built(nnUNetTrainer, "sss")
    trainer.optimizer = torch.optim.Adam(trainer.network.parameters(), 1e-4)  # e.g. rebuilt in on_train_start
    with pytest.raises(RuntimeError, match="nnUNetTrainer does not build its optimiser in configure_optimizers"):
        check_optimizer(trainer)


def test_rows_are_trainer_plans_recipe_with_distinct_folders():
    rows = parse_rows(["nnUNetTrainer", "nnUNetTrainer:nnUNetResEncUNetMPlans", "SSSTrainer"], ["sss", "nnunet"],
                      "nnUNetPlans")
    assert [r.label for r in rows[:3]] == ["nnUNetTrainer [sss recipe]", "nnUNetTrainer [nnunet recipe]",
                                           "nnUNetTrainer:nnUNetResEncUNetMPlans [sss recipe]"]
    assert rows[2].plans == "nnUNetResEncUNetMPlans" and rows[0].plans == "nnUNetPlans"
    assert len({r.dirname for r in rows}) == len(rows) == 6
    assert rows[0].budget_trainer == "nnUNetTrainer_sssRecipe_budget"
    own = parse_rows(["SSSTrainer"], ["own"], "nnUNetPlans")[0]
    assert own.dirname == "SSSTrainer" and own.budget_trainer == "SSSTrainer_budget" and own.label == "SSSTrainer"


# ---------------------------------------------------------------------------------------- statistics
def _record(trainer: str, seed: int, dice: list[float], plans: str = "nnUNetPlans", recipe: str = "sss") -> dict:
    cases = {f"c{i}": {"1": {"dice": d, "hd95": 10 * (1 - d), "status": "ok"}} for i, d in enumerate(dice)}
    return {"trainer": trainer, "plans": plans, "recipe": recipe, "seed": seed, "status": "ok",
            "summary": {"cases": cases}}


ROWS = [Row("nnUNetTrainer", "nnUNetPlans", "sss"), Row("SSSTrainer", "nnUNetPlans", "sss")]
LABELS = {stats.row_key(r): r.label for r in ROWS}


def _verdicts(delta: np.ndarray, seeds=(0, 1, 2), n_cases: int = 8) -> dict[str, dict]:
    rng = np.random.default_rng(1)
    records = []
    for s in seeds:
        base = rng.uniform(0.5, 0.8, n_cases)
        records += [_record("nnUNetTrainer", s, list(base)), _record("SSSTrainer", s, list(base + delta[:n_cases]))]
    out = stats.verdicts(records, ROWS, ("nnUNetTrainer", "nnUNetPlans"), LABELS)
    return {v["metric"]: v for v in out}


def test_constant_gain_is_ahead_with_the_gain_as_mean():
    v = _verdicts(np.full(8, 0.05))
    assert v["dice"]["verdict"] == "ahead" and v["dice"]["mean_diff"] == pytest.approx(0.05)
    assert v["dice"]["ci95"] == pytest.approx([0.05, 0.05])
    assert v["hd95"]["verdict"] == "ahead"  # HD95 fell by 0.5 mm in every case: lower is better
    assert v["dice"]["n_seeds"] == 3 and v["dice"]["n_cases"] == 8
    assert v["dice"]["row"] == "SSSTrainer [sss recipe]" and v["dice"]["baseline"] == "nnUNetTrainer [sss recipe]"


def test_constant_loss_is_behind_and_symmetric_noise_is_a_tie():
    assert _verdicts(np.full(8, -0.03))["dice"]["verdict"] == "behind"
    v = _verdicts(np.array([0.1, -0.1] * 4))["dice"]
    assert v["verdict"] == "tie" and v["mean_diff"] == pytest.approx(0.0, abs=1e-12) and v["ci95"][0] < 0 < v["ci95"][1]


def test_few_seeds_or_cases_are_too_few_runs():
    assert _verdicts(np.full(8, 0.05), seeds=(0, 1))["dice"]["verdict"] == "too few runs"
    assert _verdicts(np.full(8, 0.05), n_cases=4)["dice"]["verdict"] == "too few runs"


def test_bootstrap_interval_matches_the_normal_approximation_and_is_reproducible():
    diffs = np.random.default_rng(3).normal(0.02, 0.05, 200)
    mean, lo, hi = stats.bootstrap_ci(diffs)
    half = 1.96 * diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert mean == pytest.approx(diffs.mean())
    assert lo == pytest.approx(mean - half, abs=0.15 * half) and hi == pytest.approx(mean + half, abs=0.15 * half)
    assert stats.bootstrap_ci(diffs) == (mean, lo, hi)


def test_intervals_and_seed_spreads_are_written_in_order_with_the_metrics_digits():
    """The text every table shares (compare.md, evidence_summary, ladder_summary, budget_check)."""
    assert stats.interval_text(0.0031, -0.0004, 0.0062, stats.metric_digits("dice")) == "+0.003 [-0.000, +0.006]"
    assert stats.interval_text(-2.44, -7.91, 3.06, stats.metric_digits("hd95")) == "-2.4 [-7.9, +3.1]"
    assert stats.mean_sd_text([0.9, 0.8, 0.7], 3) == "0.800 ± 0.100"  # the sample sd
    assert stats.mean_sd_text([0.9], 3) == "0.900 ± 0.000"


def test_baseline_is_compared_under_the_same_recipe_only():
    rows = ROWS + [Row("SSSTrainer", "nnUNetPlans", "nnunet")]
    records = [_record("nnUNetTrainer", s, [0.5] * 6) for s in range(3)]
    records += [_record("SSSTrainer", s, [0.6] * 6) for s in range(3)]
    records += [_record("SSSTrainer", s, [0.6] * 6, recipe="nnunet") for s in range(3)]
    out = stats.verdicts(records, rows, ("nnUNetTrainer", "nnUNetPlans"), {})
    assert {(v["recipe"], v["metric"]) for v in out} == {("sss", "dice"), ("sss", "hd95")}  # no nnunet baseline


def test_baseline_resolution():
    rows = parse_rows(["SSSTrainer", "nnUNetTrainer:nnUNetResEncUNetMPlans", "nnUNetTrainer"], ["sss"], "nnUNetPlans")
    assert stats.resolve_baseline(rows, None) == ("nnUNetTrainer", "nnUNetResEncUNetMPlans")  # first nnU-Net one
    assert stats.resolve_baseline(rows, "nnUNetTrainer") == ("nnUNetTrainer", "nnUNetPlans")
    assert stats.resolve_baseline(rows, "nnUNetTrainer:nnUNetResEncUNetMPlans")[1] == "nnUNetResEncUNetMPlans"
    with pytest.raises(ValueError, match="--baseline nnUNetTrainerX: not one of the -tr rows"):
        stats.resolve_baseline(rows, "nnUNetTrainerX")


@pytest.mark.parametrize(("ema", "converged"), [
    ([0.1, 0.3, 0.5, 0.6, 0.62, 0.63, 0.635, 0.64, 0.645, 0.65], True),  # +0.01 over the last 2 of 10 epochs
    ([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.65, 0.7, 0.75, 0.8], False),  # +0.1 over the last 2 epochs
])
def test_convergence_from_the_last_fifth_of_the_pseudo_dice(ema, converged):
    assert stats.converged({"stats": {"curves": {"ema_fg_dice": ema}}}) is converged


def _curve(values, noise=0.0, seed=0):
    values = np.asarray(values, float)
    return list(values + noise * np.random.default_rng(seed).standard_normal(len(values)))


def test_convergence_reads_the_per_epoch_pseudo_dice_not_its_lagging_ema():
    flat = _curve(np.minimum(np.linspace(0.2, 1.8, 20), 0.9), noise=0.01)  # flat at 0.9 from epoch 9 on
    ema = [flat[0]]
    for v in flat[1:]:
        ema.append(0.9 * ema[-1] + 0.1 * v)  # nnU-Net's EMA still climbs by > 0.05 over the last fifth
    assert ema[-1] - ema[-5] > 0.05
    assert stats.converged({"stats": {"curves": {"mean_fg_dice": flat, "ema_fg_dice": ema}}}) is True
    rising = _curve(np.linspace(0.2, 0.9, 20), noise=0.01)  # +0.035 per epoch to the end
    assert stats.converged({"stats": {"curves": {"mean_fg_dice": rising, "ema_fg_dice": ema}}}) is False


def test_a_rise_within_the_epoch_to_epoch_noise_is_unclear_not_a_verdict():
    jumpy = [0.5] * 12 + [0.3, 0.9, 0.2, 0.95, 0.4, 0.3, 0.95, 0.6]  # a line through the last 8: +0.10 per fifth
    rise, se = stats.pseudo_dice_rise(jumpy)
    assert rise == pytest.approx(0.10) and rise > stats.CONVERGENCE_RISE and rise < 2 * se
    rows = [{"seed": s, "stats": {"curves": {"mean_fg_dice": c}}}
            for s, c in enumerate([_curve(np.full(20, 0.9)), _curve(np.linspace(0.2, 0.9, 20)), jumpy])]
    assert [stats.converged(r) for r in rows] == [True, False, None]
    from sss_nnunet.compare.report import convergence_text
    assert convergence_text(rows) == "not converged (seed 1); unclear (seed 2)"
    assert convergence_text(rows[:1]) == "yes"
    assert stats.pseudo_dice_rise([0.5, 0.6]) is None


def test_unknown_recipe_and_unplannable_plans_are_one_line_errors(tmp_path, monkeypatch):
    from sss_nnunet.compare import cli

    with pytest.raises(SSSError, match="--recipe adam: unknown recipe"):
        cli.check_recipes(["sss", "adam"])
    with pytest.raises(SSSError, match="cannot plan 'MyPlans'"):
        cli.check_plans_available("Dataset977_Tiny", ["nnUNetResEncUNetMPlans", "MyPlans"],
                                  {"nnUNet_preprocessed": str(tmp_path)})
    (tmp_path / "Dataset977_Tiny").mkdir()
    (tmp_path / "Dataset977_Tiny" / "MyPlans.json").write_text("{}")
    cli.check_plans_available("Dataset977_Tiny", ["MyPlans"], {"nnUNet_preprocessed": str(tmp_path)})
    with pytest.raises(SSSError, match="PLANS after ':'"):
        cli.check_trainers(["nnUNetTrainer:"])
    # one model under two names: the default plans spelt out, or given by -p
    with pytest.raises(SSSError, match="-tr nnUNetTrainer and nnUNetTrainer:nnUNetPlans: the same trainer"):
        cli.check_trainers(["nnUNetTrainer", "nnUNetTrainer:nnUNetPlans"])
    with pytest.raises(SSSError, match="-tr nnUNetTrainer and nnUNetTrainer:MyPlans: the same trainer.*-p MyPlans"):
        cli.check_trainers(["nnUNetTrainer", "nnUNetTrainer:MyPlans"], "MyPlans")
    cli.check_trainers(["nnUNetTrainer", "nnUNetTrainer:nnUNetResEncUNetMPlans"])
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["-d", "977", "-tr", "nnUNetTrainer", "--recipe", "sss", "nnunet"])
    assert args.recipes == ["sss", "nnunet"] and args.baseline is None
