"""Every parameter's gradient of a small RWKVSSS, 2D and 3D, for every switch of the public API.

The projections that start at zero (the mixes' output projections, the channel mix's value) make
most RWKV parameters get an exact zero gradient at initialisation, where a wrong backward cannot
show. Here every parameter is moved off its initial value by small random noise first, then:

- the float32 gradients of the network as it trains (Bi-WKV through its custom backward) are
  compared, tensor by tensor, with float64 gradients of the same weights through the naive Bi-WKV
  (plain autograd of the O(T^2) formula): a wrong Bi-WKV backward or glue around it shows as an
  O(1) relative error;
- in float64, one central finite difference per parameter group (module type + parameter name,
  a random direction over all tensors of the group) is compared with the autograd directional
  derivative: a ``detach`` or a wrong custom gradient anywhere in the network shows here.

Switches are read from the public API (``sss_nnunet.network`` exports and ``RWKVSSS``'s
signature), so a new string switch with an exported tuple of modes is covered automatically.
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict

import pytest
import torch
from torch import nn

import sss_nnunet.network as network
from sss_nnunet.network import RWKVSSS

SHAPES = {2: (16, 16), 3: (8, 16, 16)}


def _modes_of(name: str, default: str) -> tuple[str, ...]:
    """The exported tuple of allowed values of switch ``name`` (SHIFT_MODES for shift, MIXES for mixes...)."""
    tuples = {n: getattr(network, n) for n in network.__all__ if isinstance(getattr(network, n), tuple)}
    for candidate in (name.upper() + "S", name.upper(), name.upper() + "_MODES", name.upper() + "ES"):
        if candidate in tuples:
            return tuples[candidate]
    holding = [t for t in tuples.values() if default in t]
    return holding[0] if len(holding) == 1 else ()


def _switches() -> list[tuple[str, object]]:
    """(argument, value) pairs: every value of every string switch other than its default, every
    boolean switch flipped, layer scale on."""
    cases = []
    for name, param in inspect.signature(RWKVSSS).parameters.items():
        if name == "deep_supervision":
            continue  # always on here: every head's gradient counts
        default = param.default
        if isinstance(default, bool):
            cases.append((name, not default))
        elif isinstance(default, str):
            allowed = ("separable", "plain") if name == "conv_block" else _modes_of(name, default)
            assert allowed, f"RWKVSSS switch {name!r}: no exported tuple of its values; add it to this test"
            cases += [(name, value) for value in allowed if value != default]
    cases.append(("layer_scale", 0.5))
    return cases


SWITCHES = _switches()
# 2D: every switch in the quick loop; 3D: the default quick, the switches in the slow suite
CASES = [pytest.param(dims, switch, id=f"{dims}d-" + ("default" if switch is None else f"{switch[0]}={switch[1]}"),
                      marks=[pytest.mark.slow] if dims == 3 and switch is not None else [])
         for dims in (2, 3) for switch in [None, *SWITCHES]]


def perturbed_net(dims: int, **switches) -> RWKVSSS:
    """A 3-stage RWKVSSS (two RWKV stages, deep supervision), every parameter + N(0, 0.2^2)."""
    torch.manual_seed(0)
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    net = RWKVSSS(1, 2, 3, [4, 8, 8], conv, 3, [1, 2, 2], deep_supervision=True, first_rwkv_stage=1, **switches)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


def weighted_loss(outs) -> torch.Tensor:
    """Every deep-supervision head and every voxel weighted differently."""
    outs = outs if isinstance(outs, list) else [outs]
    return sum((o * torch.linspace(-1, 1, o.numel(), dtype=o.dtype).view_as(o)).sum() * (i + 1)
               for i, o in enumerate(outs))


def _grads(net: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    net.zero_grad(set_to_none=True)
    weighted_loss(net(x)).backward()
    return {n: p.grad.detach().double().clone() if p.grad is not None else torch.zeros_like(p, dtype=torch.float64)
            for n, p in net.named_parameters() if p.requires_grad}


def _naive(monkeypatch) -> None:
    monkeypatch.setenv("SSS_BI_WKV_BACKEND", "naive")


def _groups(net: nn.Module) -> dict[str, list[tuple[str, nn.Parameter]]]:
    groups = defaultdict(list)
    for mod_name, mod in net.named_modules():
        for p_name, p in mod.named_parameters(recurse=False):
            if p.requires_grad:
                groups[f"{type(mod).__name__}.{p_name}"].append((f"{mod_name}.{p_name}", p))
    return dict(groups)


def check_against_float64(dims: int, monkeypatch, **switches) -> dict[str, float]:
    """Relative error (vs the largest float64 gradient entry of the tensor) per parameter."""
    net32 = perturbed_net(dims, **switches)
    x = torch.randn(2, 1, *SHAPES[dims], generator=torch.Generator().manual_seed(2))
    monkeypatch.delenv("SSS_BI_WKV_BACKEND", raising=False)
    g32 = _grads(net32, x)
    _naive(monkeypatch)
    g64 = _grads(perturbed_net(dims, **switches).double(), x.double())
    floor = 1e-4 * max(g.abs().max().item() for g in g64.values())
    return {n: ((g32[n] - g64[n]).abs().max() / g64[n].abs().max().clamp_min(floor)).item() for n in g64}


def check_finite_differences(dims: int, monkeypatch, **switches) -> dict[str, tuple[float, float]]:
    """(autograd, central difference) directional derivative per parameter group, float64, naive Bi-WKV.

    The scan gate's softmax and DySample's sampling run in float32 on purpose (``.float()``); their
    rounding would drown a finite difference, so ``Tensor.float`` keeps float64 tensors float64 here."""
    _naive(monkeypatch)
    to_float32 = torch.Tensor.float
    monkeypatch.setattr(torch.Tensor, "float",
                        lambda self, *a, **kw: self if self.dtype == torch.float64 else to_float32(self, *a, **kw))
    net = perturbed_net(dims, **switches).double()
    x = torch.randn(2, 1, *SHAPES[dims], generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    grads = dict(zip([n for n, _ in net.named_parameters()], _grads(net, x).values()))
    g = torch.Generator().manual_seed(3)
    out = {}
    eps = 1e-7  # small: a larger step crosses LeakyReLU kinks in the conv groups
    for group, params in _groups(net).items():
        dirs = [torch.randn(p.shape, generator=g, dtype=torch.float64) for _, p in params]
        analytic = sum((grads[n] * d).sum().item() for (n, _), d in zip(params, dirs))
        values = []
        with torch.no_grad():
            for sign in (1, -1):
                for (_, p), d in zip(params, dirs):
                    p.add_(sign * eps * d)
                values.append(weighted_loss(net(x)).item())
                for (_, p), d in zip(params, dirs):
                    p.sub_(sign * eps * d)
        out[group] = (analytic, (values[0] - values[1]) / (2 * eps))
    return out


def _assert_fd(results: dict[str, tuple[float, float]]) -> None:
    scale = max(abs(fd) for _, fd in results.values())
    bad = {k: v for k, v in results.items()
           if not abs(v[0] - v[1]) <= 2e-3 * abs(v[1]) + 1e-6 * scale}  # a NaN gradient fails too
    assert not bad, f"autograd vs finite differences (group: (autograd, fd)): {bad}"
    assert sum(abs(a) > 1e-9 * scale for a, _ in results.values()) >= len(results) - 2, "vacuous: zero gradients"


def _fd_switches(switches: dict) -> dict:
    """StageScanBlock detaches the scan gate's weights where they set the token shift's directions
    (shift="stage", the default: a shift differentiable in its weights would keep 2 x dims shifted maps
    for backward). The forward then depends on the gate, and through its input on every earlier
    parameter, along a path autograd does not see; finite differences run with the qshift4 shift unless
    the case sets the shift itself (shift="stage" is covered by the float64 comparison)."""
    return switches if "shift" in switches else {**switches, "shift": "qshift4"}


@pytest.mark.parametrize(("dims", "switch"), CASES)
def test_every_parameter_gradient_matches_float64(dims, switch, monkeypatch):
    switches = {} if switch is None else {switch[0]: switch[1]}
    errs = check_against_float64(dims, monkeypatch, **switches)
    assert len(errs) > 50
    not_finite = [name for name, e in errs.items() if not math.isfinite(e)]
    assert not not_finite, f"gradient error not finite (NaN/inf gradients?) for {not_finite}"
    worst = max(errs, key=errs.get)
    assert errs[worst] < 2e-3, f"{worst}: float32 gradient off by {errs[worst]:.2g} of the float64 one"


@pytest.mark.parametrize(("dims", "switch"), CASES)
def test_every_parameter_group_matches_finite_differences(dims, switch, monkeypatch):
    switches = {} if switch is None else {switch[0]: switch[1]}
    _assert_fd(check_finite_differences(dims, monkeypatch, **_fd_switches(switches)))


def test_every_parameter_gets_a_gradient_after_the_perturbation(monkeypatch):
    """The point of the perturbation: no parameter tensor (decay, bonus, key, value, gate...) has a zero gradient."""
    monkeypatch.delenv("SSS_BI_WKV_BACKEND", raising=False)
    net = perturbed_net(3)
    # 32^3: pooled WKV shrinks the stage maps, and a local window must keep more than one token for its
    # decay, bonus and key to matter (on SHAPES[3] the local windows of this 3-stage net are single tokens)
    grads = _grads(net, torch.randn(2, 1, 32, 32, 32, generator=torch.Generator().manual_seed(2)))
    zero = [n for n, g in grads.items() if g.abs().max() == 0]
    assert not zero, zero


def test_a_wrong_bi_wkv_backward_is_caught(monkeypatch):
    """Plant the bug the issue describes: Bi-WKV's backward returning noise."""
    from sss_nnunet.kernels import dispatch

    def noisy(w, u, k, v, y, logD, gy, backend):
        return tuple(torch.randn_like(t) * 100 for t in (w, u, k, v))

    monkeypatch.setattr(dispatch, "bi_wkv_bwd", noisy)
    monkeypatch.setattr(dispatch.dense, "applies", lambda *a: False)  # the scan's op everywhere (not dense)
    errs = check_against_float64(2, monkeypatch)
    assert max(errs.values()) > 1.0


def test_a_detached_glue_path_is_caught(monkeypatch):
    """A ``detach`` in the network's glue (here: every sigmoid gate's input) is invisible to the autograd
    comparison and must show as a finite-difference mismatch."""
    real, calls = torch.sigmoid, []

    def sigmoid(x, *args, **kw):
        calls.append(1)
        return real(x.detach(), *args, **kw)

    monkeypatch.setattr(torch, "sigmoid", sigmoid)
    with pytest.raises(AssertionError, match="finite differences"):
        _assert_fd(check_finite_differences(2, monkeypatch, shift="qshift4"))
    assert calls, "the network no longer calls torch.sigmoid: plant the detach elsewhere"


def test_a_nan_gradient_fails_the_finite_difference_check():
    """``abs(nan - fd) > tol`` is False: the check must fail on a NaN autograd value all the same."""
    with pytest.raises(AssertionError, match="autograd vs finite differences"):
        _assert_fd({"a": (float("nan"), 1.0), "b": (1.0, 1.0), "c": (2.0, 2.0)})
