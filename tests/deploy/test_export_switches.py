"""Every switch of RWKVSSS exports to ONNX and onnxruntime reproduces PyTorch's logits (max abs <= 1e-3).

The switches are read from RWKVSSS's public constructor, not listed here: every argument with a
str default (its allowed values taken from the constructor's own error on a bad value) and every
bool argument except deep_supervision (exports run as nnU-Net predicts: deep supervision off).
A switch added later is exported by these tests without editing them. Each export traces the
whole network (~25 s of CPU), so the network is small (3 stages, two of them RWKV stages) and the
values are combined: the k-th export sets every switch to its k-th non-default value at once (with both
mixes on, every switch acts), and each value of ``mixes`` (which removes a branch) is exported on its own:
every non-default value is exported at least once, in 10 exports (defaults included) instead of 22.
"""

from __future__ import annotations

import ast
import inspect
import re

import pytest
import torch
from torch import nn

from sss_nnunet.network import RWKVSSS

TOLERANCE = 1e-3
NOT_SWITCHES = {"deep_supervision"}
# the switches the issue names explicitly: every value in 2D as well as in 3D
IN_2D = ("upsampler", "scan", "mixes")


def small_net(dims: int, **switches) -> RWKVSSS:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    return RWKVSSS(2, 3, 3, [8, 16, 32], conv, 3, [1, 2, 2], deep_supervision=False, first_rwkv_stage=1,
                   **switches)


def allowed_values(name: str) -> tuple:
    """The values RWKVSSS accepts for the str argument ``name``, from its ValueError on a bad one."""
    try:
        small_net(2, **{name: "__no_such_value__"})
    except ValueError as e:
        found = re.search(r"one of (\(.*?\))", str(e))
        if found:
            return tuple(ast.literal_eval(found.group(1)))
        raise AssertionError(f"RWKVSSS's error for {name}= does not list the allowed values: {e}") from e
    raise AssertionError(f"RWKVSSS accepted {name}='__no_such_value__': list its allowed values in a ValueError")


def switches() -> dict[str, tuple]:
    """{argument: (default, other values...)} for every str or bool argument of RWKVSSS."""
    out = {}
    for name, p in inspect.signature(RWKVSSS.__init__).parameters.items():
        if name in NOT_SWITCHES:
            continue
        if isinstance(p.default, bool):
            out[name] = (p.default, not p.default)
        elif isinstance(p.default, str):
            values = allowed_values(name)
            assert p.default in values, (name, p.default, values)
            out[name] = (p.default, *(v for v in values if v != p.default))
    return out


# switches whose values remove a part of the network: each value is exported on its own
ALONE = ("mixes",)


def combined(found: dict[str, tuple]) -> list[dict]:
    """The k-th dict sets every switch (but those in ALONE) to its k-th non-default value; then one dict per
    value of each ALONE switch."""
    others = {k: v[1:] for k, v in found.items()}
    rounds = max((len(v) for k, v in others.items() if k not in ALONE), default=0)
    configs = [{k: v[i] for k, v in others.items() if k not in ALONE and i < len(v)} for i in range(rounds)]
    return configs + [{k: value} for k in ALONE if k in others for value in others[k]]


def configurations() -> list[tuple[int, dict]]:
    """(dims, {switch: value}): the defaults, then every non-default value at least once, combined (3D: every
    switch; 2D: the IN_2D switches)."""
    found = switches()
    configs = [(3, {}), (2, {})]
    configs += [(3, sw) for sw in combined(found)]
    configs += [(2, sw) for sw in combined({k: v for k, v in found.items() if k in IN_2D})]
    return configs


def _id(config) -> str:
    dims, sw = config
    return f"{dims}d-" + ("-".join(f"{k}={v}" for k, v in sw.items()) or "defaults")


def test_the_switches_are_found():
    found = switches()
    for name in ("upsampler", "scan", "mixes", "shift", "scan_weights", "pooled_wkv"):
        assert name in found and len(found[name]) >= 2, name
    assert set(found["upsampler"]) == {"transposed", "dysample"}
    assert set(found["scan"]) >= {"raster", "zigzag", "stage"}
    for dims, names in ((3, found), (2, IN_2D)):
        covered = {(k, v) for d, sw in configurations() if d == dims for k, v in sw.items()}
        assert covered == {(k, v) for k in names for v in found[k][1:]}, dims
    assert len(configurations()) < sum(len(v) - 1 for v in found.values()) + 2  # fewer exports than values
    for dims, sw in configurations():  # every combination is one RWKVSSS accepts
        small_net(dims, **sw)


@pytest.mark.slow
@pytest.mark.parametrize("config", configurations(), ids=_id)
def test_onnxruntime_equals_pytorch(config, tmp_path):
    pytest.importorskip("onnxruntime")
    from sss_nnunet.deploy.export import TOLERANCE as EXPORT_TOLERANCE
    from sss_nnunet.deploy.export import export_network, max_abs_difference

    assert EXPORT_TOLERANCE == TOLERANCE
    dims, sw = config
    torch.manual_seed(0)
    net = small_net(dims, **sw).eval()
    with torch.no_grad():  # zero-initialised output projections would hide the RWKV branches
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    size = (8, 16, 16) if dims == 3 else (32, 32)
    x = torch.randn(1, 2, *size)
    path = tmp_path / "net.onnx"
    export_network(net, x, path)
    diff = max_abs_difference(net, path, x)
    with torch.no_grad():
        scale = net(x).abs().max().item()
    assert scale > 0.1  # the logits are not trivially small
    assert diff <= TOLERANCE, f"{_id(config)}: max abs difference {diff:.3g}"
