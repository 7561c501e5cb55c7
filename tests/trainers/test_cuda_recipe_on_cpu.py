"""nnU-Net's CUDA training recipe rehearsed on the CPU, before a GPU sees it.

On CUDA nnU-Net trains under ``autocast`` with a ``GradScaler`` and wraps the network in ``torch.compile``;
on the CPU it does neither, so no CPU test would run those branches of nnU-Net's ``train_step`` or of
SSSTrainer (``_orig_mod`` checkpoints, the grad-scaler state). Here they are switched on for the CPU:

- autocast: nnU-Net's ``train_step`` enters ``autocast(device)`` on CUDA and its ``dummy_context`` elsewhere;
  the test replaces that ``dummy_context`` with ``torch.autocast("cpu", dtype)`` and gives the trainer a CPU
  ``GradScaler``, so nnU-Net's own code takes the scaled-backward / unscale / clip / step / update path;
- compile: ``_do_i_compile`` (False on the CPU) is forced on, so ``initialize`` wraps the network and the
  Dice loss in ``torch.compile``. The backend is ``aot_eager`` (AOTAutograd traces forward and backward as
  inductor would, without generating C++: minutes less on 2 cores); the ``_orig_mod`` key handling, the
  checkpoint round trip and prediction from the checkpoint are what is tested. Inductor itself is compared
  with eager in tests/gpu/test_compile_network.py (slow).
"""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
import torch
from torch._dynamo.eval_frame import OptimizedModule

from sss_nnunet.kernels import dispatch
from sss_nnunet.trainers import SSSTrainer_tiny

PATCH = [16, 32, 32]
STRIDES = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]]
LABELS = {"background": 0, "a": 1, "b": 2}


@pytest.fixture
def recipe_trainer(nnunet_plans, make_trainer):
    conf = nnunet_plans.configuration(3, PATCH, STRIDES, [8, 16, 32, 32], [[1, 3, 3]] + [[3, 3, 3]] * 3,
                                      spacing=[2.0, 1.0, 1.0])
    plans = nnunet_plans.plans("Dataset997_Recipe", {"3d_fullres": conf}, spacing=[2.0, 1.0, 1.0], shape=PATCH)
    return functools.partial(make_trainer, SSSTrainer_tiny, plans, labels=LABELS)


def _cpu_supports(dtype: torch.dtype) -> bool:
    try:
        with torch.autocast("cpu", dtype=dtype):
            torch.nn.functional.conv3d(torch.randn(1, 1, 2, 2, 2), torch.randn(1, 1, 1, 1, 1))
        return True
    except RuntimeError:
        return False


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
def test_nnunet_train_step_under_autocast_with_a_grad_scaler(dtype, recipe_trainer, ds_batch, monkeypatch):
    if not _cpu_supports(dtype):
        pytest.skip(f"this CPU build has no {dtype} autocast")
    from nnunetv2.training.nnUNetTrainer import nnUNetTrainer as trainer_module

    torch.manual_seed(0)
    trainer = recipe_trainer()
    trainer.initialize()
    batch = ds_batch(PATCH, STRIDES, torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = trainer.loss(trainer.network(batch["data"]), batch["target"]).item()  # float32

    monkeypatch.setattr(trainer_module, "dummy_context", lambda: torch.autocast("cpu", dtype=dtype))
    trainer.grad_scaler = torch.GradScaler("cpu")  # what nnU-Net builds on CUDA: GradScaler("cuda")
    scaled = []
    real_scale = trainer.grad_scaler.scale
    monkeypatch.setattr(trainer.grad_scaler, "scale", lambda x: scaled.append(x.dtype) or real_scale(x))
    dtypes = []
    trainer.network.register_forward_hook(lambda m, i, o: dtypes.append(o[0].dtype))
    wkv_dtypes = []
    real_fwd = dispatch.bi_wkv_fwd
    monkeypatch.setattr(dispatch, "bi_wkv_fwd", lambda w, u, k, v, backend: wkv_dtypes.append(k.dtype)
                        or real_fwd(w, u, k, v, backend))
    real_dense = dispatch.dense.bi_wkv_dense  # the CPU's choice for the short local windows
    monkeypatch.setattr(dispatch.dense, "bi_wkv_dense", lambda w, u, k, v: wkv_dtypes.append(k.dtype)
                        or real_dense(w, u, k, v))
    before = {k: v.clone() for k, v in trainer.network.state_dict().items()}

    loss = float(trainer.train_step(batch)["loss"])

    assert scaled, "nnU-Net's train_step did not take the grad-scaler path"
    assert dtypes == [dtype], "the network did not run under autocast"
    assert wkv_dtypes and set(wkv_dtypes) == {dtype}, "Bi-WKV did not get half-precision keys"
    assert np.isfinite(loss) and loss == pytest.approx(reference, rel=0.05)
    assert trainer.grad_scaler.get_scale() == 2.0**16, "the scaler found inf/NaN gradients and skipped the step"
    changed = [k for k, v in trainer.network.state_dict().items() if v.is_floating_point()
               and not torch.equal(v, before[k])]
    assert len(changed) > 0.5 * len(before)
    assert all(torch.isfinite(p).all() for p in trainer.network.parameters())


@pytest.mark.slow  # ~90 s on 2 busy cores: dynamo + AOTAutograd tracing of forward and backward
def test_sss_trainer_compiled_train_checkpoint_and_prediction(recipe_trainer, ds_batch, monkeypatch, tmp_path):
    real_compile = torch.compile
    compiled = []

    def compile_aot_eager(model, *args, **kwargs):
        compiled.append(type(model).__name__)
        return real_compile(model, *args, **{**kwargs, "backend": "aot_eager"})

    monkeypatch.setattr(torch, "compile", compile_aot_eager)
    monkeypatch.setattr(SSSTrainer_tiny, "_do_i_compile", lambda self: True)
    torch._dynamo.reset()
    torch.manual_seed(0)
    trainer = recipe_trainer()
    trainer.initialize()
    assert isinstance(trainer.network, OptimizedModule) and "RWKVSSS" in compiled
    plain = trainer._plain_network()
    assert type(plain).__name__ == "RWKVSSS"

    # forward and backward through the compiled network, nnU-Net's train_step
    before = {k: v.clone() for k, v in plain.state_dict().items()}
    loss = float(trainer.train_step(ds_batch(PATCH, STRIDES, torch.Generator().manual_seed(0)))["loss"])
    assert np.isfinite(loss)
    assert sum(not torch.equal(v, before[k]) for k, v in plain.state_dict().items() if v.is_floating_point()) > 10

    # checkpoint: the plain network's keys (no "_orig_mod."), loadable by a compiled and by an eager trainer
    folder = tmp_path / "model" / f"{type(trainer).__name__}__nnUNetPlans__3d_fullres"
    (folder / "fold_0").mkdir(parents=True)
    checkpoint = folder / "fold_0" / "checkpoint_final.pth"
    trainer.save_checkpoint(str(checkpoint))
    weights = torch.load(checkpoint, weights_only=False)["network_weights"]
    assert not any("_orig_mod" in k for k in weights) and set(weights) == set(plain.state_dict())
    again = recipe_trainer()
    again.load_checkpoint(str(checkpoint))
    assert isinstance(again.network, OptimizedModule)
    assert all(torch.equal(v, weights[k]) for k, v in again._plain_network().state_dict().items())
    monkeypatch.setattr(SSSTrainer_tiny, "_do_i_compile", lambda self: False)
    eager = recipe_trainer()
    eager.load_checkpoint(str(checkpoint))
    assert not isinstance(eager.network, OptimizedModule)
    assert all(torch.equal(v, weights[k]) for k, v in eager.network.state_dict().items())

    # prediction from the checkpoint by nnU-Net's predictor, itself compiling (nnUNet_compile=1)
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    (folder / "plans.json").write_text(json.dumps(trainer.plans_manager.plans))
    (folder / "dataset.json").write_text(json.dumps(trainer.dataset_json))
    monkeypatch.setenv("nnUNet_compile", "1")
    # one tile, no Gaussian weighting: nnU-Net multiplies the tile by a Gaussian in float16, where its corners
    # (weights ~1e-9) underflow to 0; without it the predictor must return the network's logits
    predictor = nnUNetPredictor(use_gaussian=False, use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False)
    predictor.initialize_from_trained_model_folder(str(folder), (0,), "checkpoint_final.pth")
    assert isinstance(predictor.network, OptimizedModule)
    x = torch.randn(1, *PATCH, generator=torch.Generator().manual_seed(3))
    logits = predictor.predict_logits_from_preprocessed_data(x)
    eager.network.eval()
    eager.set_deep_supervision_enabled(False)
    with torch.no_grad():
        expected = eager.network(x[None])[0]
    assert logits.shape == (3, *PATCH)
    # nnU-Net accumulates the tiles in float16: equal to the network's logits up to half-precision rounding
    torch.testing.assert_close(logits.float(), expected, atol=1e-2, rtol=1e-2)
    assert (logits.argmax(0) != expected.argmax(0)).float().mean() < 1e-3
