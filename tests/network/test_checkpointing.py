"""Activation checkpointing: same outputs and gradients, same weight names, fewer saved activations."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from torch import nn

from sss_nnunet.network import RWKVSSS
from sss_nnunet.network.checkpointing import apply_checkpointing, checkpointed_blocks
from sss_nnunet.plans.memory import saved_activation_bytes
from sss_nnunet.trainers import SSSTrainer


def small_net(dims: int = 3, **kw) -> RWKVSSS:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    return RWKVSSS(2, 3, 4, [8, 16, 32, 64], conv, 3, [1, 2, 2, 2], deep_supervision=True, **kw)


def step(net: nn.Module, x: torch.Tensor, seed: int = 0) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    torch.manual_seed(seed)  # drop path draws its masks from this
    net.zero_grad()
    outs = net(x)
    sum((o.float() * (i + 1)).square().mean() for i, o in enumerate(outs)).backward()
    return [o.detach() for o in outs], {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}


def saved_bytes(net: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps for backward during one forward pass (no duplicates)."""
    seen: dict[int, int] = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x)
    return sum(seen.values())


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("mode", ["rwkv", "all"])
def test_same_outputs_and_gradients(dims, mode):
    torch.manual_seed(0)
    net = small_net(dims, drop_path=0.3).train()  # stochastic depth: the recompute must draw the same masks
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ckpt = copy.deepcopy(net)
    n = apply_checkpointing(ckpt, mode)
    assert n == checkpointed_blocks(ckpt) > 0
    assert list(ckpt.state_dict()) == list(net.state_dict())
    x = torch.randn(2, 2, *([16] * dims))
    out_ref, grad_ref = step(net, x)
    out, grad = step(ckpt, x)
    for a, b in zip(out, out_ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert grad.keys() == grad_ref.keys()
    for name in grad_ref:
        torch.testing.assert_close(grad[name], grad_ref[name], rtol=1e-4, atol=1e-6, msg=name)


def test_fewer_saved_activations_and_eval_unchanged():
    torch.manual_seed(0)
    net = small_net(3).train()
    x = torch.randn(2, 2, 16, 32, 32)
    plain = saved_bytes(net, x)
    apply_checkpointing(net, "rwkv")
    rwkv = saved_bytes(net, x)
    apply_checkpointing(net, "all")
    everything = saved_bytes(net, x)
    assert everything < rwkv < plain
    apply_checkpointing(net, "cpu")
    assert saved_bytes(net, x) == everything  # "cpu" on the CPU: as "all"
    net.eval()
    with torch.no_grad():
        assert isinstance(net(x), list)


def test_cpu_mode_checkpoints_nothing_in_the_planners_memory_model():
    """The planner's memory model runs the network on the meta device: there "cpu" keeps every activation."""
    fresh = small_net(3)
    planned = saved_activation_bytes(fresh, (1, 2, 16, 32, 32))
    apply_checkpointing(fresh, "cpu")
    assert checkpointed_blocks(fresh) > 0 and saved_activation_bytes(fresh, (1, 2, 16, 32, 32)) == planned
    apply_checkpointing(fresh, "all")
    assert saved_activation_bytes(fresh, (1, 2, 16, 32, 32)) < planned


def test_pickle_and_mode_errors():
    net = small_net(2)
    apply_checkpointing(net, "rwkv")
    again = pickle.loads(pickle.dumps(net))
    assert checkpointed_blocks(again) == checkpointed_blocks(net) > 0
    assert apply_checkpointing(small_net(2), "none") == 0
    with pytest.raises(ValueError, match="checkpoint must be one of"):
        apply_checkpointing(net, "some")


def test_trainer_switch(nnunet_plans):
    class Trainer(SSSTrainer):
        checkpoint = "rwkv"

    class NoCheckpoint(SSSTrainer):
        checkpoint = "none"

    pm = PlansManager(nnunet_plans.default())
    cm = pm.get_configuration("3d_fullres")
    assert checkpointed_blocks(NoCheckpoint.build_network_architecture(pm, cm, 1, 2)) == 0
    class All(SSSTrainer):
        checkpoint = "all"

    default = SSSTrainer.build_network_architecture(pm, cm, 1, 2)  # cpu: the blocks of `all`, on the CPU only
    everything = All.build_network_architecture(pm, cm, 1, 2)
    assert checkpointed_blocks(default) == checkpointed_blocks(everything) > checkpointed_blocks(
        Trainer.build_network_architecture(pm, cm, 1, 2))  # more than the Stage-Scan blocks alone
    assert [type(m).__name__ for m in default.modules()] == [type(m).__name__ for m in everything.modules()]
    wrapped = [m for m in default.modules() if type(m).__name__.startswith("Checkpointed")]
    assert wrapped and all(m.checkpoint_cpu_only for m in wrapped)
    assert not any(getattr(m, "checkpoint_cpu_only", False) for m in everything.modules())
    net = Trainer.build_network_architecture(pm, cm, 1, 2)
    assert checkpointed_blocks(net) == sum(type(m).__name__ == "CheckpointedStageScanBlock" for m in net.modules()) > 0
