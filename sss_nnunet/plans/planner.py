"""``SSSPlanner``: nnU-Net's experiment planner with RWKV-SSS networks and RWKV-SSS memory.

Everything a plans configuration holds that does not depend on GPU memory (target spacing,
transposition, resampling, normalisation, the 2d / 3d_fullres / 3d_lowres / 3d_cascade_fullres
set, the initial patch aspect ratio and its clipping to the median image) is planned by the
stock ``ExperimentPlanner``. This subclass then replaces the two memory-driven choices:

- patch size: starting from nnU-Net's largest candidate, shrink one axis at a time (the one
  largest relative to the median image, to the next size the pooling topology accepts) until
  a batch of ``UNet_min_batch_size`` (2) fits ``usable_bytes(--gpu-memory-target)`` under the
  model of ``sss_nnunet.plans.memory``;
- batch size: the largest that fits, capped so one batch covers at most 5% of the dataset's
  voxels, and at least 2 (nnU-Net's rules).

The ``architecture`` entry names ``sss_nnunet.network.RWKVSSS`` with nnU-Net's topology keys
(n_stages, features_per_stage, kernel_sizes, strides, ops) and RWKV-SSS's defaults written out,
so ``pydoc.locate`` (stock trainers, ``get_network_from_plans``) and ``SSSTrainer`` rebuild the
same network. Each configuration also records its estimate under ``sss_memory_model`` (bytes).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Sequence

import numpy as np
from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import ExperimentPlanner
from nnunetv2.experiment_planning.experiment_planners.network_topology import get_pool_and_conv_props
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from sss_nnunet.network import RWKVSSS
from sss_nnunet.plans.memory import GIB, MemoryEstimate, estimate, usable_bytes

PLANS_NAME = "SSSPlans"
NETWORK_CLASS = "sss_nnunet.network.RWKVSSS"
REQUIRES_IMPORT = ("conv_op", "norm_op", "nonlin")
MEMORY_KEY = "sss_memory_model"
# RWKV-SSS arguments written into the plans (RWKVSSS.config names them after the network's defaults)
RWKV_KEYS = ("first_rwkv_stage", "depths", "decoder_depths", "global_windows", "local_windows", "min_window_tokens",
             "scan", "scan_weights", "shift", "mixes", "pooled_wkv", "wkv_pool", "pos_embed", "upsampler", "skip",
             "drop_path", "layer_scale", "mlp_ratio", "conv_block", "stem_features")


def topology_kwargs(strides: Sequence[Sequence[int]], kernel_sizes: Sequence[Sequence[int]],
                    features_per_stage: Sequence[int]) -> dict:
    """nnU-Net's topology keys for RWKVSSS (ops as importable names, as in nnU-Net's plans)."""
    dims = len(strides[0])
    return {
        "n_stages": len(strides),
        "features_per_stage": [int(f) for f in features_per_stage],
        "conv_op": f"torch.nn.modules.conv.Conv{dims}d",
        "kernel_sizes": [[int(k) for k in ks] for ks in kernel_sizes],
        "strides": [[int(s) for s in st] for st in strides],
        "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{dims}d",
        "norm_op_kwargs": {"eps": 1e-5, "affine": True},
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }


def build_network(arch_kwargs: dict, input_channels: int, num_classes: int) -> RWKVSSS:
    """The network nnU-Net builds from these plans (``get_network_from_plans``, deep supervision)."""
    return get_network_from_plans(NETWORK_CLASS, arch_kwargs, REQUIRES_IMPORT, input_channels, num_classes,
                                  allow_init=False, deep_supervision=True)


def rwkv_defaults(network: RWKVSSS) -> dict:
    """RWKV-SSS arguments a network was built with, resolved per stage (JSON-ready)."""
    signature = inspect.signature(RWKVSSS).parameters
    config = network.config
    values = {key: config[key] if key in config else signature[key].default for key in RWKV_KEYS}
    values["stem_features"] = config["features"][0]
    return values


def architecture(topology: dict, input_channels: int, num_classes: int) -> tuple[dict, RWKVSSS]:
    """The plans' ``architecture`` entry for a topology, and the network (on the meta device) it builds."""
    network = build_network(topology, input_channels, num_classes).to("meta")
    arch = {"network_class_name": NETWORK_CLASS, "arch_kwargs": {**topology, **rwkv_defaults(network)},
            "_kw_requires_import": list(REQUIRES_IMPORT)}
    return arch, network


class SSSPlanner(ExperimentPlanner):
    """nnU-Net planner for RWKV-SSS; plans identifier ``SSSPlans`` (``-p SSSPlans`` to train).

    ``gpu_memory_target_in_gb``: GPU memory (GiB) the training must fit, 8 by default as in nnU-Net.
    """

    def __init__(self, dataset_name_or_id: str | int, gpu_memory_target_in_gb: float = 8,
                 preprocessor_name: str = "DefaultPreprocessor", plans_name: str = PLANS_NAME,
                 overwrite_target_spacing: Sequence[float] | None = None, suppress_transpose: bool = False):
        super().__init__(dataset_name_or_id, gpu_memory_target_in_gb, preprocessor_name, plans_name,
                         overwrite_target_spacing, suppress_transpose)
        self.UNet_class = RWKVSSS
        self._networks: dict[str, tuple[dict, RWKVSSS]] = {}
        self._estimates: dict[tuple[str, tuple[int, ...]], MemoryEstimate] = {}

    @staticmethod
    def static_estimate_VRAM_usage(*args, **kwargs) -> float:
        """Neutral value: the parent then keeps its largest patch, which ``_fit`` shrinks with our model."""
        return 1.0

    # ------------------------------------------------------------------ topology and memory
    def _topology(self, spacing: Sequence[float], patch: Sequence[int]) -> tuple[dict, tuple[int, ...]]:
        """nnU-Net's pooling topology for ``patch`` (voxels) and the patch padded to fit it."""
        _, strides, kernels, padded, _ = get_pool_and_conv_props(spacing, patch, self.UNet_featuremap_min_edge_length,
                                                                 999999)
        max_features = self.UNet_max_features_2d if len(spacing) == 2 else self.UNet_max_features_3d
        features = [min(max_features, self.UNet_base_num_features * 2**s) for s in range(len(strides))]
        return topology_kwargs(strides, kernels, features), tuple(int(p) for p in padded)

    def _io_channels(self) -> tuple[int, int]:
        names = self.dataset_json.get("channel_names", self.dataset_json.get("modality", {}))
        return len(names), len(self.dataset_json["labels"])

    def _estimate(self, topology: dict, patch: tuple[int, ...]) -> tuple[dict, MemoryEstimate]:
        key = json.dumps(topology, sort_keys=True)
        if key not in self._networks:
            self._networks[key] = architecture(topology, *self._io_channels())
        arch, network = self._networks[key]
        if (key, patch) not in self._estimates:
            self._estimates[(key, patch)] = estimate(network, self._io_channels()[0], patch)
        return arch, self._estimates[(key, patch)]

    def _smaller_patch(self, spacing: Sequence[float], patch: tuple[int, ...],
                       median_shape: Sequence[float]) -> tuple[int, ...] | None:
        """The next smaller valid patch: the axis largest relative to the median image goes down to
        the next size the topology accepts (no axis grows); None when no axis can shrink."""
        floor = self.UNet_featuremap_min_edge_length
        ratios = [p / max(m, 1) for p, m in zip(patch, median_shape)]
        for axis in np.argsort(ratios)[::-1]:
            for size in range(patch[axis] - 1, floor - 1, -1):
                trial = list(patch)
                trial[axis] = size
                _, padded = self._topology(spacing, trial)
                if padded[axis] < patch[axis] and all(p <= q for p, q in zip(padded, patch)):
                    return padded
        return None

    def _fit(self, spacing: Sequence[float], median_shape: Sequence[float],
             start: Sequence[int]) -> tuple[tuple[int, ...], dict, MemoryEstimate, bool]:
        """Largest patch (from ``start`` down) whose minimum batch fits; (patch, architecture, estimate, fits)."""
        budget = usable_bytes(self.UNet_vram_target_GB)
        topology, patch = self._topology(spacing, start)
        while True:
            arch, est = self._estimate(topology, patch)
            if est.training_bytes(self.UNet_min_batch_size) <= budget:
                return patch, arch, est, True
            smaller = self._smaller_patch(spacing, patch, median_shape)
            if smaller is None:
                return patch, arch, est, False
            topology, patch = self._topology(spacing, smaller)

    # ------------------------------------------------------------------ nnU-Net hook
    def get_plans_for_configuration(self, spacing, median_shape, data_identifier: str,
                                    approximate_n_voxels_dataset: float, _cache: dict) -> dict:
        plan = super().get_plans_for_configuration(spacing, median_shape, data_identifier,
                                                   approximate_n_voxels_dataset, _cache)
        median = [float(m) for m in median_shape[: len(spacing)]]
        patch, arch, est, fits = self._fit(spacing, median, plan["patch_size"])
        budget = usable_bytes(self.UNet_vram_target_GB)
        cap = round(approximate_n_voxels_dataset * self.max_dataset_covered / math.prod(patch))
        batch = max(min(est.largest_batch(budget), cap), self.UNet_min_batch_size)
        if not fits:
            print(f"WARNING ({data_identifier}): RWKV-SSS needs {est.training_bytes(batch) / GIB:.2f} GiB at the "
                  f"smallest patch {list(patch)} with batch {batch}, more than the {budget / GIB:.2f} GiB usable "
                  f"of a {self.UNet_vram_target_GB:g} GiB target. Planned anyway.")
        plan.update(patch_size=patch, batch_size=int(batch), architecture=arch)
        plan[MEMORY_KEY] = {
            "gpu_memory_target_gib": float(self.UNet_vram_target_GB),
            "usable_bytes": budget,
            "training_bytes": est.training_bytes(batch),
            "activation_bytes_per_sample": est.activation_bytes_per_sample,
            "state_bytes": est.state_bytes,
            "fits": fits,
        }
        return plan

