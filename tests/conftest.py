"""Helpers shared by the whole suite, handed out as fixtures (they work with any pytest import mode).

- ``nnunet_plans``: nnU-Net plans written in memory (``configuration(...)``, ``plans(...)``), the vocabulary of
  nnU-Net's default planner (PlainConvUNet architecture keys), for trainers built without preprocessing;
- ``make_trainer``: a trainer on the CPU from such plans, with nnU-Net's folders in ``tmp_path``;
- ``ds_batch``: a synthetic batch with nnU-Net's deep-supervision targets;
- ``sss_nnunet_cmd``: the ``sss-nnunet`` console script of the running interpreter's environment;
- ``nnunet_subprocess_env(...)`` (import it: ``from tests.conftest import nnunet_subprocess_env``): the environment
  of an nnU-Net subprocess; ``nnunet_env``: the three nnU-Net folders in tmp_path for in-process calls.
"""

from __future__ import annotations

import copy
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

SSS_NNUNET = str(Path(sys.executable).with_name("sss-nnunet"))
#: Signals whose handling a test must leave as it found it: a forked ``multiprocessing.Pool`` worker inherits
#: a Python handler for SIGTERM, survives ``Pool.terminate()`` and hangs the next in-process nnU-Net call.
GUARDED_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGCHLD)


def signal_state() -> tuple[dict, frozenset]:
    """The handlers of ``GUARDED_SIGNALS`` and the blocked-signal mask of this thread, for ``restore_signal_state``."""
    return ({sig: signal.getsignal(sig) for sig in GUARDED_SIGNALS},
            frozenset(signal.pthread_sigmask(signal.SIG_BLOCK, [])))


def restore_signal_state(state: tuple[dict, frozenset]) -> None:
    handlers, mask = state
    for sig, handler in handlers.items():
        signal.signal(sig, handler)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@pytest.fixture(autouse=True)
def _signals_left_as_found():
    """Fails the test that changes a signal handler or the blocked-signal mask of the pytest process (and puts
    them back, so that one test's leak does not hang later ones)."""
    handlers, mask = before = signal_state()
    yield
    now_handlers, now_mask = signal_state()
    changed = {signal.Signals(s).name: h for s, h in now_handlers.items() if h != handlers[s]}
    restore_signal_state(before)
    assert not changed and now_mask == mask, (
        f"the test left signal handlers {changed} / blocked signals {sorted(now_mask)} (were {sorted(mask)})")


def configuration(dims: int, patch: Sequence[int], strides, features, kernels, spacing=None,
                  batch_size: int = 2) -> dict:
    """One configuration entry of nnU-Net plans (PlainConvUNet architecture keys, as the default planner writes)."""
    n = len(strides)
    conv = f"torch.nn.modules.conv.Conv{dims}d"
    norm = f"torch.nn.modules.instancenorm.InstanceNorm{dims}d"
    return {
        "data_identifier": f"nnUNetPlans_{dims}d", "preprocessor_name": "DefaultPreprocessor",
        "batch_size": batch_size, "patch_size": list(patch), "median_image_size_in_voxels": list(patch),
        "spacing": list(spacing or [1.0] * dims), "normalization_schemes": ["CTNormalization"],
        "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
        "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": {},
        "resampling_fn_seg_kwargs": {}, "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
        "resampling_fn_probabilities_kwargs": {}, "batch_dice": False,
        "architecture": {
            "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
            "arch_kwargs": {
                "n_stages": n, "features_per_stage": list(features), "conv_op": conv, "kernel_sizes": kernels,
                "strides": strides, "n_conv_per_stage": [2] * n, "n_conv_per_stage_decoder": [2] * (n - 1),
                "conv_bias": True, "norm_op": norm, "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                "nonlin_kwargs": {"inplace": True},
            },
            "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
        },
    }


def plans(dataset_name: str, configurations: dict, spacing=(2.5, 1.0, 1.0), shape=(40, 96, 80)) -> dict:
    """nnU-Net plans around ``configurations`` (3D median spacing / shape in transposed order)."""
    return {
        "dataset_name": dataset_name, "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": list(spacing), "original_median_shape_after_transp": list(shape),
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {}, "configurations": configurations,
    }


def default_plans() -> dict:
    """Plans as nnU-Net's default planner writes them for a 3D CT-like dataset: 2d, 3d_fullres (5 stages,
    patch 40 x 96 x 80), 3d_lowres."""
    five = [32, 64, 128, 256, 320]
    return plans("Dataset999_Unit", {
        "2d": configuration(2, [96, 80], [[1, 1], [2, 2], [2, 2], [2, 2], [2, 2]], five, [[3, 3]] * 5),
        "3d_fullres": configuration(3, [40, 96, 80], [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]], five,
                                    [[1, 3, 3]] + [[3, 3, 3]] * 4),
        "3d_lowres": {"inherits_from": "3d_fullres", "patch_size": [24, 48, 40], "spacing": [4.0, 2.0, 2.0]},
    })


@pytest.fixture
def nnunet_plans() -> SimpleNamespace:
    """``configuration(dims, patch, strides, features, kernels, spacing=None)``,
    ``plans(dataset_name, configurations)`` and ``default()``: nnU-Net plans as dicts."""
    return SimpleNamespace(configuration=configuration, plans=plans, default=default_plans)


@pytest.fixture
def make_trainer(tmp_path, monkeypatch) -> Callable:
    """``make_trainer(cls, plans, configuration="3d_fullres", labels=None, device="cpu")``: an (uninitialised)
    nnU-Net trainer; nnUNet_preprocessed / nnUNet_results point into tmp_path, where a fake preprocessed case
    tells ``initialize()`` the dataset format (it reads file endings only)."""
    monkeypatch.setenv("nnUNet_preprocessed", str(tmp_path))  # nnunetv2.paths reads them at call time
    monkeypatch.setenv("nnUNet_results", str(tmp_path))

    def make(cls, plans_: dict, configuration_: str = "3d_fullres", labels: dict | None = None, device="cpu"):
        p = copy.deepcopy(plans_)
        p["continue_training"] = False
        conf = p["configurations"].get(configuration_, {})
        identifier = conf.get("data_identifier", "nnUNetPlans_3d")
        data = tmp_path / p["dataset_name"] / identifier
        data.mkdir(parents=True, exist_ok=True)
        (data / "case.b2nd").touch()
        dataset_json = {"labels": labels or {"background": 0, "a": 1}, "channel_names": {"0": "CT"},
                        "numTraining": 2, "file_ending": ".nii.gz"}
        return cls(p, configuration_, 0, dataset_json, torch.device(device))

    return make


def deep_supervision_batch(patch: Sequence[int], strides, generator: torch.Generator, batch: int = 2) -> dict:
    """{"data": (B, 1, *patch), "target": [(B, 1, *patch / prod(strides[1..s]))...]}: two boxes (labels 1, 2) and
    noise; targets subsampled as nnU-Net's DownsampleSegForDSTransform does for each deep-supervision output."""
    label = torch.zeros(batch, 1, *patch)
    lo = [p // 4 for p in patch]
    label[(..., *(slice(a, 3 * a) for a in lo))] = 1
    label[(..., *(slice(a // 2, a) for a in lo))] = 2
    data = label * 2 + 0.3 * torch.randn(label.shape, generator=generator)
    targets, scale = [], [1] * len(patch)
    for stride in strides[1:]:
        targets.append(label[(..., *(slice(None, None, f) for f in scale))])
        scale = [a * b for a, b in zip(scale, stride)]
    return {"data": data, "target": targets}


@pytest.fixture
def ds_batch() -> Callable:
    """``ds_batch(patch, strides, generator, batch=2)``: see ``deep_supervision_batch``."""
    return deep_supervision_batch


@pytest.fixture
def sss_nnunet_cmd() -> str:
    """Path of the ``sss-nnunet`` console script next to the running interpreter."""
    return SSS_NNUNET


def nnunet_subprocess_env(raw: Path | None, preprocessed: Path | None, results: Path | None, n_proc: int = 2,
                          n_proc_da: int = 0, keep_nnunet_vars: bool = False, **extra: str) -> dict[str, str]:
    """The current environment for an nnU-Net subprocess: ``nnUNet_raw`` / ``_preprocessed`` / ``_results`` set
    (None: unset), ``nnUNet_def_n_proc`` and ``nnUNet_n_proc_DA`` processes, ``extra`` added. Other ``nnUNet_*``
    variables of the caller (and ``SSS_NNUNET_NO_EXT_TRAINER``) are dropped unless ``keep_nnunet_vars``."""
    env = {k: v for k, v in os.environ.items()
           if keep_nnunet_vars or not (k.startswith("nnUNet_") or k == "SSS_NNUNET_NO_EXT_TRAINER")}
    env.update(nnUNet_def_n_proc=str(n_proc), nnUNet_n_proc_DA=str(n_proc_da), **extra)
    for name, value in (("nnUNet_raw", raw), ("nnUNet_preprocessed", preprocessed), ("nnUNet_results", results)):
        env.pop(name, None)
        if value is not None:
            env[name] = str(value)
    return env


@pytest.fixture
def nnunet_env(tmp_path, monkeypatch) -> dict[str, Path]:
    """nnUNet_raw / nnUNet_preprocessed / nnUNet_results pointing into tmp_path (this process)."""
    env = {v: tmp_path / v for v in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
    for var, path in env.items():
        monkeypatch.setenv(var, str(path))
    return env


def verify_with_nnunet(folder: Path) -> None:
    """nnU-Net's own dataset check (raises on any problem). nnU-Net lists the files with a forked Pool(12)
    whatever num_processes says; forking this multi-threaded test process (torch, ITK) can deadlock a
    child, so threads do that listing here."""
    from multiprocessing.dummy import Pool as ThreadPool
    from unittest import mock

    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity

    with mock.patch("nnunetv2.utilities.utils.Pool", ThreadPool):
        verify_dataset_integrity(str(folder), num_processes=1)


@pytest.fixture
def refuse_writes_under(monkeypatch) -> Callable:
    """``refuse_writes_under(folder)``: temporary files and folders created under ``folder`` fail with the
    operating system's "Permission denied" (as root a read-only folder is still writable)."""
    import tempfile

    real = {"mkdtemp": tempfile.mkdtemp, "mkstemp": tempfile.mkstemp}

    def refuse(folder: Path) -> None:
        def refusing(name):
            def make(*args, dir=None, **kwargs):
                if dir is not None and str(folder) in str(dir):
                    raise PermissionError(13, "Permission denied", str(dir))
                return real[name](*args, dir=dir, **kwargs)
            return make

        monkeypatch.setattr(tempfile, "mkdtemp", refusing("mkdtemp"))
        monkeypatch.setattr(tempfile, "mkstemp", refusing("mkstemp"))
    return refuse


# ---------------------------------------------------------------- time per test file, printed last
_file_seconds: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    path = report.nodeid.split("::")[0]
    _file_seconds[path] = _file_seconds.get(path, 0.0) + report.duration


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter) -> None:
    """The 15 slowest test files (setup + call + teardown of all their tests, module fixtures included), after
    everything else, so that a truncated CI log still shows where `make test`'s time goes."""
    if len(_file_seconds) < 2:
        return
    top = sorted(_file_seconds.items(), key=lambda kv: -kv[1])[:15]
    total = sum(_file_seconds.values()) / 60
    terminalreporter.write_sep("-", f"slowest test files (of {len(_file_seconds)}, {total:.1f} min in all)")
    for path, seconds in top:
        terminalreporter.write_line(f"{seconds:8.1f} s  {path}")
