"""SSSPlanner internals in-process: the architecture entry, the patch search, the memory budget."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans

from sss_nnunet.network import RWKVSSS
from sss_nnunet.plans.memory import usable_bytes
from sss_nnunet.plans.planner import NETWORK_CLASS, RWKV_KEYS, SSSPlanner, architecture, topology_kwargs


def _n_params(net) -> int:
    return sum(p.numel() for p in net.parameters())


def test_architecture_entry_rebuilds_the_same_network():
    topo = topology_kwargs([[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]], [[1, 3, 3]] + [[3, 3, 3]] * 3,
                           [32, 64, 128, 256])
    arch, net = architecture(topo, 2, 4)
    arch = json.loads(json.dumps(arch))  # as read back from SSSPlans.json
    assert arch["network_class_name"] == NETWORK_CLASS
    assert set(RWKV_KEYS) <= set(arch["arch_kwargs"])
    assert arch["arch_kwargs"]["stem_features"] == 32  # stage 0 at the plans' width (network issue 11)
    stock = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"],
                                   2, 4, allow_init=False, deep_supervision=True)
    assert isinstance(stock, RWKVSSS)
    assert stock.config == net.config and _n_params(stock) == _n_params(net)

    from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager

    from sss_nnunet.trainers.sss_trainer import SSSTrainer

    ours = SSSTrainer.build_network_architecture(None, ConfigurationManager({"architecture": arch}), 2, 4, True)
    assert ours.config == net.config and _n_params(ours) == _n_params(net)


@pytest.fixture
def planner(planned, monkeypatch, tools) -> SSSPlanner:
    """A planner on the planned tiny dataset (its fingerprint exists); nnU-Net reads the env lazily."""
    monkeypatch.setenv("nnUNet_raw", str(planned.raw))
    monkeypatch.setenv("nnUNet_preprocessed", str(planned.preprocessed))
    return SSSPlanner(tools.dataset_id)


def test_patch_search_shrinks_monotonically_to_a_floor(planner):
    spacing, median = (2.75, 0.83, 0.8), (140.0, 280.0, 270.0)
    topology, patch = planner._topology(spacing, (56, 192, 192))
    steps = 0
    while (smaller := planner._smaller_patch(spacing, patch, median)) is not None:
        assert all(a <= b for a, b in zip(smaller, patch)) and math.prod(smaller) < math.prod(patch)
        topology, padded = planner._topology(spacing, smaller)
        assert padded == smaller  # a size the pooling topology accepts as is
        divisor = np.prod(topology["strides"], axis=0)
        assert all(s % d == 0 for s, d in zip(smaller, divisor))
        patch, steps = smaller, steps + 1
    assert steps > 10 and max(patch) <= 2 * planner.UNet_featuremap_min_edge_length


def test_fit_respects_the_budget_and_shrinks_with_it(planner):
    spacing, median = (2.0, 0.9, 0.9), (120.0, 240.0, 240.0)
    fits = {}
    for target in (4.0, 8.0):
        planner.UNet_vram_target_GB = target
        patch, arch, est, ok = planner._fit(spacing, median, (112, 240, 240))
        assert ok and est.training_bytes(planner.UNet_min_batch_size) <= usable_bytes(target)
        assert arch["arch_kwargs"]["strides"][0] == [1, 1, 1]
        fits[target] = patch
    assert math.prod(fits[4.0]) < math.prod(fits[8.0])
