"""benchmarks/bench_predict.py: its plans build both trainers' networks, and the untrained model folder
loads in nnU-Net's predictor. Timing is not tested."""

from __future__ import annotations

import torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

from sss_nnunet.network import RWKVSSS
from sss_nnunet.trainers import SSSTrainer
from tests.common.bench_scripts import load_benchmark


def test_same_plans_for_both_trainers_and_a_loadable_model_folder(tmp_path, monkeypatch):
    bench = load_benchmark("bench_predict")
    plans = bench.plans([32, 64, 64], [40, 80, 80])
    cm = PlansManager(plans).get_configuration("3d_fullres")
    assert cm.patch_size == [32, 64, 64] and cm.network_arch_init_kwargs["strides"] == bench.STRIDES
    net = SSSTrainer.build_network_architecture(PlansManager(plans), cm, 1, 3, enable_deep_supervision=False)
    assert isinstance(net, RWKVSSS) and net.config["features"] == bench.FEATURES
    ds = bench.dataset_json(3)
    bench.write_untrained_model(tmp_path, "nnUNetTrainer", plans, ds)
    folder = tmp_path / bench.NAME / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), (0,), "checkpoint_final.pth")
    assert type(predictor.network).__name__ == "PlainConvUNet"
    assert predictor.allowed_mirroring_axes == (0, 1, 2)


def test_the_floor_trainer_is_found_by_nnunet_and_loads_a_one_conv_network(tmp_path, monkeypatch):
    """--floor: the one-conv trainer lands on nnUNet_extTrainer (existing folders kept) and its model
    folder loads in nnU-Net's predictor as one 1x1x1 conv."""
    bench = load_benchmark("bench_predict")
    monkeypatch.setenv("nnUNet_extTrainer", str(tmp_path / "mine"))
    env = {"nnUNet_extTrainer": str(tmp_path / "mine")}
    bench.add_floor_trainer(tmp_path / "floor", env)
    assert env["nnUNet_extTrainer"].split(":") == [str(tmp_path / "mine"), str(tmp_path / "floor")]
    plans, ds = bench.plans([32, 64, 64], [40, 80, 80]), bench.dataset_json(3)
    bench.write_untrained_model(tmp_path / "results", bench.FLOOR, plans, ds)
    folder = tmp_path / "results" / bench.NAME / f"{bench.FLOOR}__nnUNetPlans__3d_fullres"
    predictor = nnUNetPredictor(device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), (0,), "checkpoint_final.pth")
    net = predictor.network
    assert isinstance(net, torch.nn.Conv3d) and net.kernel_size == (1, 1, 1) and net.out_channels == 3
