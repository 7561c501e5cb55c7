"""``sss-nnunet plan`` end to end (subprocesses with nnU-Net's folders in tmp): plans, data, errors, training."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch

from sss_nnunet.network import RWKVSSS
from sss_nnunet.plans.planner import MEMORY_KEY, NETWORK_CLASS


def test_plan_writes_sssplans_and_preprocessed_data(planned, tools):
    out = planned.result.stdout
    assert "===== sss-nnunet plan: planning SSSPlans" in out and "Preprocessing dataset" in out
    plans = planned.plans
    assert plans["plans_name"] == "SSSPlans" and plans["experiment_planner_used"] == "SSSPlanner"
    assert {"2d", "3d_fullres"} <= set(plans["configurations"])
    for name in ("2d", "3d_fullres"):
        config = plans["configurations"][name]
        arch = config["architecture"]
        assert arch["network_class_name"] == NETWORK_CLASS
        assert arch["arch_kwargs"]["n_stages"] == len(arch["arch_kwargs"]["strides"]) >= 3
        assert {"depths", "wkv_pool", "global_windows", "stem_features"} <= set(arch["arch_kwargs"])
        assert config["batch_size"] >= 2 and len(config["patch_size"]) == (2 if name == "2d" else 3)
        memory = config[MEMORY_KEY]
        assert memory["fits"] and memory["training_bytes"] <= memory["usable_bytes"]
        # the summary line of the configuration
        assert f"{name:<20} patch {config['patch_size']}".replace(" ", "") in out.replace(" ", "")
        data = planned.folder / config["data_identifier"]
        assert config["data_identifier"].startswith("SSSPlans_")
        assert len([p for p in data.iterdir() if p.name.endswith(".pkl")]) == 6
    assert len(list((planned.folder / "gt_segmentations").glob("*.nii.gz"))) == 6
    assert "estimated" in out and "GiB usable" in out


def test_plans_build_the_network_through_pydoc(planned):
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    config = PlansManager(str(planned.folder / "SSSPlans.json")).get_configuration("3d_fullres")
    from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

    net = get_network_from_plans(config.network_arch_class_name, config.network_arch_init_kwargs,
                                 config.network_arch_init_kwargs_req_import, 1, 3, deep_supervision=True)
    assert isinstance(net, RWKVSSS)
    with torch.no_grad():
        outputs = net(torch.randn(1, 1, *config.patch_size))
    assert list(outputs[0].shape) == [1, 3, *config.patch_size]
    assert len(outputs) == config.network_arch_init_kwargs["n_stages"] - 1


def test_smaller_memory_target_gives_smaller_or_equal_patch_and_batch(planned, tools, tmp_path):
    pre = tmp_path / "nnUNet_preprocessed"
    (pre / tools.dataset_name).mkdir(parents=True)
    shutil.copy(planned.folder / "dataset_fingerprint.json", pre / tools.dataset_name)
    result = tools.run(["sss-nnunet", "plan", "-d", str(tools.dataset_id), "-gpu_memory_target", "0.7",
                        "--no_pp"], tools.env(planned.raw, pre, tmp_path / "results"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "dataset fingerprint: using" in result.stdout and "Preprocessing dataset" not in result.stdout
    small = json.loads((pre / tools.dataset_name / "SSSPlans.json").read_text())["configurations"]
    large = planned.plans["configurations"]
    for name in ("2d", "3d_fullres"):
        assert math.prod(small[name]["patch_size"]) <= math.prod(large[name]["patch_size"])
        assert small[name]["batch_size"] <= large[name]["batch_size"]
        assert small[name][MEMORY_KEY]["gpu_memory_target_gib"] == 0.7
    assert math.prod(small["3d_fullres"]["patch_size"]) < math.prod(large["3d_fullres"]["patch_size"])
    assert sorted(p.name for p in (pre / tools.dataset_name).iterdir()) == [
        "SSSPlans.json", "dataset.json", "dataset_fingerprint.json"]


@pytest.mark.parametrize("case", ["unknown_id", "raw_unset", "preprocessed_unset"])
def test_bad_input_is_a_clear_error_and_writes_nothing(case, raw_root, tools, tmp_path):
    pre, res = tmp_path / "pre", tmp_path / "res"
    pre.mkdir()
    dataset_id = tools.dataset_id
    env = tools.env(raw_root, pre, res)
    expected = {"unknown_id": "no dataset with ID 960 in nnUNet_raw", "raw_unset": "nnUNet_raw is not set",
                "preprocessed_unset": "nnUNet_preprocessed is not set"}[case]
    if case == "unknown_id":
        dataset_id = 960
    else:
        env.pop("nnUNet_raw" if case == "raw_unset" else "nnUNet_preprocessed")
    before = sorted(p.relative_to(raw_root) for p in raw_root.rglob("*"))
    result = tools.run(["sss-nnunet", "plan", "-d", str(dataset_id), "-np", "1"], env)
    assert result.returncode == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert list(pre.iterdir()) == [] and not res.exists()
    assert sorted(p.relative_to(raw_root) for p in raw_root.rglob("*")) == before


@pytest.mark.slow
def test_stock_nnunet_train_with_sssplans(planned, tools):
    env = planned.env(SSS_TINY_EPOCHS="1")
    result = tools.run(["nnUNetv2_train", str(tools.dataset_id), "3d_fullres", "0", "-tr", "SSSTrainer_tiny",
                        "-p", "SSSPlans", "-device", "cpu"], env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    fold = planned.results / tools.dataset_name / "SSSTrainer_tiny__SSSPlans__3d_fullres" / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file()
    assert "RWKVSSS" in (fold / "debug.json").read_text()


def test_verify_reports_a_broken_dataset(tools, tmp_path):
    raw = tmp_path / "raw"
    folder = tools.write_raw(raw, n_cases=5)
    next((folder / "labelsTr").iterdir()).unlink()
    pre = tmp_path / "pre"
    result = tools.run(["sss-nnunet", "plan", "-d", str(tools.dataset_id), "--verify_dataset_integrity", "-npfp", "1"],
                       tools.env(raw, pre, tmp_path / "res"))
    assert result.returncode == 2
    assert "failed nnU-Net's integrity check" in result.stderr and "Traceback" not in result.stderr
    assert not pre.exists()


@pytest.mark.slow
def test_ct_like_fingerprint_plans_all_four_configurations(raw_root, tools, tmp_path):
    """A fingerprint of CT-sized images (about 140 x 512 x 512 at 3 x 0.8 x 0.8 mm) on the tiny raw
    files: planning only reads the fingerprint, so 3d_lowres and the cascade appear."""
    pre = tmp_path / "pre" / tools.dataset_name
    pre.mkdir(parents=True)
    spacings = [[3.0, 0.8, 0.8], [2.5, 0.76, 0.76], [5.0, 0.85, 0.85], [3.0, 0.78, 0.78], [3.0, 0.8, 0.8],
                [2.5, 0.9, 0.9]]
    shapes = [[148, 512, 512], [120, 512, 512], [90, 512, 512], [200, 512, 512], [140, 512, 512],
              [160, 512, 512]]
    fingerprint = {"foreground_intensity_properties_per_channel": {"0": {
        "max": 1000.0, "mean": 80.0, "median": 70.0, "min": -500.0, "percentile_00_5": -100.0,
        "percentile_99_5": 400.0, "std": 60.0}}, "median_relative_size_after_cropping": 1.0,
        "shapes_after_crop": shapes, "spacings": spacings}
    (pre / "dataset_fingerprint.json").write_text(json.dumps(fingerprint))
    result = tools.run(["sss-nnunet", "plan", "-d", str(tools.dataset_id), "--no_pp"],
                       tools.env(raw_root, pre.parent, tmp_path / "res"))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    configs = json.loads((pre / "SSSPlans.json").read_text())["configurations"]
    assert set(configs) == {"2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"}
    assert configs["3d_cascade_fullres"] == {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    assert configs["3d_lowres"]["next_stage"] == "3d_cascade_fullres"
    for name in ("2d", "3d_fullres", "3d_lowres"):
        config = configs[name]
        strides = config["architecture"]["arch_kwargs"]["strides"]
        divisor = [math.prod(s[axis] for s in strides) for axis in range(len(config["patch_size"]))]
        assert all(p % d == 0 for p, d in zip(config["patch_size"], divisor))
        assert config[MEMORY_KEY]["fits"] and config["batch_size"] >= 2
        assert config[MEMORY_KEY]["training_bytes"] <= config[MEMORY_KEY]["usable_bytes"]
        assert math.prod(config["patch_size"]) >= (64**3 if name != "2d" else 256**2)
        print(name, config["patch_size"], config["batch_size"], config[MEMORY_KEY]["training_bytes"] / 2**30)
    for name in configs:
        assert name in result.stdout
