"""SSSTrainer pieces without running nnU-Net: plans -> network mapping, schedule, hook, checks."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from sss_nnunet import _ext_trainer_hook as hook
from sss_nnunet.network import RWKVSSS
from sss_nnunet.trainers import TRAINERS, SSSTrainer, SSSTrainer_scanRaster, SSSTrainer_tiny
from sss_nnunet.trainers.schedule import WarmupCosineLR


@pytest.fixture
def PLANS(nnunet_plans) -> dict:
    return nnunet_plans.default()


@pytest.fixture
def _trainer(make_trainer, PLANS):
    """``_trainer(configuration="3d_fullres", cls=SSSTrainer_tiny)`` on the CPU."""
    def make(configuration="3d_fullres", cls=SSSTrainer_tiny):
        return make_trainer(cls, PLANS, configuration)
    return make


@pytest.mark.parametrize(("config", "dims"), [("2d", 2), ("3d_fullres", 3), ("3d_lowres", 3)])
@pytest.mark.parametrize("num_outputs", [3, 4])  # e.g. 3 regions (BraTS: WT, TC, ET) or 4 labels
def test_network_from_the_default_plans(config, dims, num_outputs, PLANS):
    pm = PlansManager(copy.deepcopy(PLANS))
    cm = pm.get_configuration(config)
    net = SSSTrainer.build_network_architecture(pm, cm, 2, num_outputs, enable_deep_supervision=True)
    assert isinstance(net, RWKVSSS)
    strides = cm.network_arch_init_kwargs["strides"]
    assert len(net.encoder) == len(strides)
    x = torch.randn(1, 2, *cm.patch_size)
    with torch.no_grad():
        out = net.eval()(x)
    assert len(out) == len(strides) - 1 and out[0].shape == (1, num_outputs, *cm.patch_size)
    # deep-supervision outputs match nnU-Net's scales: 1 / cumprod(pool kernels)
    for o, scale in zip(out, torch.cumprod(torch.tensor(cm.pool_op_kernel_sizes, dtype=torch.float), 0)):
        assert list(o.shape[2:]) == [int(p / s) for p, s in zip(cm.patch_size, scale)]
    predict_net = SSSTrainer.build_network_architecture(pm, cm, 2, num_outputs, enable_deep_supervision=False)
    with torch.no_grad():
        assert predict_net.eval()(x).shape == (1, num_outputs, *cm.patch_size)


def test_regions_give_one_output_per_region(PLANS):
    dataset_json = {"labels": {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]},
                    "regions_class_order": [1, 2, 3], "channel_names": {str(i): "MR" for i in range(4)}}
    pm = PlansManager(copy.deepcopy(PLANS))
    lm = pm.get_label_manager(dataset_json)
    assert lm.has_regions and lm.num_segmentation_heads == 3
    net = SSSTrainer.build_network_architecture(pm, pm.get_configuration("3d_fullres"), 4, lm.num_segmentation_heads)
    assert net(torch.randn(1, 4, 40, 96, 80))[0].shape[1] == 3


# switches whose value decides other entries of RWKVSSS.config: the per-stage defaults of the window
# schedule and the k/v pooling count from the first RWKV stage; pooled_wkv=False sets every pool to 1
DERIVED = {"pooled_wkv": {"wkv_pool"}, "first_rwkv_stage": {"first_rwkv_stage", "global_splits", "wkv_pool"}}


def test_variants_change_only_what_they_name(PLANS):
    """Every trainer's network differs from SSSTrainer's in the switches it overrides (and what those
    decide) and nowhere else; an override that differs from the default shows in the config."""
    pm = PlansManager(copy.deepcopy(PLANS))
    cm = pm.get_configuration("3d_fullres")
    base = SSSTrainer.build_network_architecture(pm, cm, 1, 2).config
    assert base["scan"] == "stage"
    assert SSSTrainer_scanRaster.build_network_architecture(pm, cm, 1, 2).config["scan"] == "raster"
    for trainer in TRAINERS:
        config = trainer.build_network_architecture(pm, cm, 1, 2).config
        changed = {k for k in config if config[k] != base[k]}
        named = set().union(*(DERIVED.get(k, {k}) for k in trainer.network_overrides))
        assert changed <= named, f"{trainer.__name__} also changes {changed - named}"
        for key, value in trainer.network_overrides.items():
            if key in config and value != base[key]:  # an int for every stage is kept as one per stage
                got = set(config[key]) if isinstance(config[key], list) and isinstance(value, int) else config[key]
                assert got == ({value} if isinstance(got, set) else value), trainer.__name__
        if trainer.network_overrides.get("pooled_wkv") is False:
            assert set(config["wkv_pool"]) == {1} != set(base["wkv_pool"]), trainer.__name__
    names = [t.__name__ for t in TRAINERS]
    assert len(set(names)) == len(names) and not any("__" in n for n in names)


def test_unknown_configuration_is_a_clear_message(tmp_path, monkeypatch, _trainer):
    with pytest.raises(SystemExit, match="configuration '3d_cascade_fullres' is not in the plans.*Available: 2d"):
        _trainer("3d_cascade_fullres")


def _missing(plans_fixture: dict, configuration: str, plans_name: str, drop: str) -> str:
    plans = copy.deepcopy(plans_fixture)
    plans["plans_name"] = plans_name
    del plans["configurations"][drop]
    with pytest.raises(SystemExit) as exc:
        SSSTrainer_tiny(plans, configuration, 0, {"labels": {"background": 0, "a": 1}}, torch.device("cpu"))
    return str(exc.value)


def test_missing_configuration_hint_names_the_right_command_and_dataset(PLANS):
    """Issue 24 row 12: no 'DATASET' placeholder, the planning tool of the plans, the planner's dropped stage."""
    message = _missing(PLANS, "2d", "SSSPlans", "2d")
    assert "DATASET" not in message and "Plan it with: sss-nnunet plan -d 999 -c 2d" in message
    message = _missing(PLANS, "2d", "nnUNetPlans", "2d")
    assert "Plan it with: nnUNetv2_plan_and_preprocess -d 999 -c 2d" in message
    message = _missing(PLANS, "3d_lowres", "SSSPlans", "3d_lowres")  # dropped by the planner: planning again won't help
    assert "DATASET" not in message and "Plan it with" not in message
    assert "nnUNetv2_train 999 3d_fullres FOLD -tr SSSTrainer_tiny -p SSSPlans" in message


def test_checkpoint_of_another_trainer_is_refused(tmp_path, monkeypatch, _trainer):
    trainer = _trainer()
    trainer.initialize()
    with pytest.raises(SystemExit, match="written by trainer 'nnUNetTrainer', not 'SSSTrainer_tiny'"):
        trainer.load_checkpoint({"trainer_name": "nnUNetTrainer", "network_weights": {}})
    # and a dict checkpoint of the right trainer loads (nnunetv2 2.8.1's own load_checkpoint(dict) fails)
    weights = {k: v.clone() for k, v in trainer.network.state_dict().items()}
    name = next(k for k, v in weights.items() if v.is_floating_point() and v.numel() > 1)
    weights[name] += 1.0  # the checkpoint's weights differ from the network's: loading must take them
    ckpt = {
        "trainer_name": "SSSTrainer_tiny", "network_weights": weights,
        "optimizer_state": trainer.optimizer.state_dict(), "grad_scaler_state": None,
        "logging": trainer.logger.get_checkpoint(), "_best_ema": 0.5, "current_epoch": 3,
        "init_args": trainer.my_init_kwargs,
    }
    trainer.load_checkpoint(ckpt)
    assert trainer.current_epoch == 3 and trainer._best_ema == 0.5
    assert torch.equal(trainer.network.state_dict()[name], weights[name])


def test_optimizer_groups_and_schedule(tmp_path, monkeypatch, _trainer):
    trainer = _trainer(cls=SSSTrainer)
    trainer.initialize()
    decayed, plain = trainer.optimizer.param_groups
    assert decayed["weight_decay"] > 0 and plain["weight_decay"] == 0
    assert all(p.ndim >= 2 for p in decayed["params"]) and all(p.ndim < 2 for p in plain["params"])
    sched = trainer.lr_scheduler
    lrs = [sched.lr_at(e) for e in range(trainer.num_epochs)]
    warm = sched.warmup_steps
    assert warm == 50 and lrs[warm - 1] == pytest.approx(trainer.initial_lr * warm / (warm + 1))
    assert max(lrs) <= trainer.initial_lr and lrs[-1] < 1e-5 and all(a >= b for a, b in zip(lrs[warm:], lrs[warm + 1:]))


def test_hyper_parameters_are_the_documented_ones(tmp_path, monkeypatch, _trainer):
    """SSSTrainer's docstring (and README) promise AdamW, lr 1e-3, weight decay 0.01 (none on biases, norms, decays,
    bonuses and token-shift mixes), betas (0.9, 0.999), nnU-Net's 1000 epochs, 5 % linear warm-up, cosine decay."""
    trainer = _trainer(cls=SSSTrainer)
    trainer.initialize()
    opt = trainer.optimizer
    assert type(opt) is torch.optim.AdamW
    assert trainer.initial_lr == trainer.lr_scheduler.initial_lr == 1e-3
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(1e-3 / 51)] * 2  # epoch 0 of the warm-up
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-2, 0.0]
    assert all(g["betas"] == (0.9, 0.999) for g in opt.param_groups)
    assert trainer.num_epochs == 1000 and trainer.lr_scheduler.warmup_steps == 50
    undecayed = {id(p) for p in opt.param_groups[1]["params"]}
    names = [n for n, p in trainer.network.named_parameters() if id(p) in undecayed]
    for kind in ("decay", "first", "mix_k", "bias", "norm"):
        assert any(kind in n for n in names), kind
    assert not any(n.endswith(("key.weight", "value.weight")) for n in names)
    # the schedule's shape: lr(e) at a few epochs, as WarmupCosineLR documents it
    sched = trainer.lr_scheduler
    assert sched.lr_at(0) == pytest.approx(1e-3 / 51)
    assert sched.lr_at(525) == pytest.approx(0.5e-3, rel=0.02)


def test_schedule_steps_like_nnunet():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))], lr=1.0)
    sched = WarmupCosineLR(opt, 1.0, max_steps=10, warmup_steps=2)
    sched.step(0)
    assert opt.param_groups[0]["lr"] == pytest.approx(1 / 3)
    sched.step(2)
    assert opt.param_groups[0]["lr"] == pytest.approx(1.0)
    sched.step(10)
    assert sched.get_last_lr()[0] == pytest.approx(1e-6)


def test_startup_hook_appends_and_can_be_switched_off():
    assert hook.extended("") == hook.SHIM_DIR
    mine = os.pathsep.join(["/a", "/b"])
    assert hook.extended(mine) == os.pathsep.join(["/a", "/b", hook.SHIM_DIR])
    assert hook.extended(hook.extended(mine)) == hook.extended(mine)  # never twice
    probe = [sys.executable, "-c", "import os; print(os.environ.get('nnUNet_extTrainer'))"]
    env = {k: v for k, v in os.environ.items() if k not in ("nnUNet_extTrainer", hook.OFF)}
    fresh = subprocess.run(probe, env=dict(env, nnUNet_extTrainer="/mine"), capture_output=True, text=True)
    assert fresh.stdout.strip() == os.pathsep.join(["/mine", hook.SHIM_DIR])  # the installed .pth ran
    off = subprocess.run(probe, env=dict(env, nnUNet_extTrainer="/mine", **{hook.OFF: "1"}), capture_output=True,
                         text=True)
    assert off.stdout.strip() == "/mine"
    assert sorted(p.name for p in os.scandir(hook.SHIM_DIR) if p.name.endswith(".py")) == ["sss_nnunet_trainers.py"]


def test_checkpoint_killed_while_saving_keeps_the_previous_one(tmp_path, monkeypatch, _trainer):
    """nnU-Net saves with a plain torch.save: a kill mid-write left a truncated checkpoint_latest.pth that
    --c cannot load. The write is interrupted half-way here: the previous checkpoint still loads."""
    trainer = _trainer()
    trainer.initialize()
    path = tmp_path / "checkpoint_latest.pth"
    trainer.current_epoch = 0
    trainer.save_checkpoint(str(path))
    assert torch.load(path, weights_only=False)["current_epoch"] == 1
    real_save = torch.save

    def killed_half_way(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as fh:
            fh.truncate(os.path.getsize(f) // 2)
        raise KeyboardInterrupt  # the process dies here

    monkeypatch.setattr(torch, "save", killed_half_way)
    trainer.current_epoch = 1
    with pytest.raises(KeyboardInterrupt):
        trainer.save_checkpoint(str(path))
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=False)["current_epoch"] == 1  # the previous one, intact
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_file()) == ["checkpoint_latest.pth"]
    trainer.save_checkpoint(str(path))
    assert torch.load(path, weights_only=False)["current_epoch"] == 2
