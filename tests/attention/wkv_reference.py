"""Helpers of the attention-map tests: a tiny double-precision RWKVSSS and the naive Bi-WKV attention weights
recovered from the network's own Bi-WKV calls."""

from __future__ import annotations

import sys

import numpy as np
import torch
from torch import nn

from sss_nnunet.attention.maps import stage_blocks
from sss_nnunet.network import RWKVSSS

PATCH = {3: (10, 14, 12), 2: (14, 11)}
QUERY = {3: (3, 9, 5), 2: (9, 4)}


def tiny_net(dims: int, scan: str = "raster", pooled: bool = False, **kw) -> RWKVSSS:
    conv = nn.Conv3d if dims == 3 else nn.Conv2d
    kw.setdefault("global_windows", [0, 3, 2])
    kw.setdefault("local_windows", [0, 3, 2])
    kw.setdefault("mixes", "both")  # the maps of both mix kinds are tested
    torch.manual_seed(0)
    net = RWKVSSS(1, 2, 3, [4, 8, 16], conv, 3, [1, 2, 2], first_rwkv_stage=1, scan=scan, pooled_wkv=pooled,
                  wkv_pool=[1, 2, 1] if pooled else None, **kw)
    with torch.no_grad():  # trained-looking parameters: output projections are zero at init
        for name, p in net.named_parameters():
            if name.endswith("output.weight"):
                p.normal_(0, 0.3)
    return net.double().eval()


def mixes(net):
    for s, j, block in stage_blocks(net):
        for name in ("global", "local"):
            if getattr(block, f"{name}_mix", None) is not None:
                yield s, j, name, getattr(block, f"{name}_mix")


def recorded_wkv_calls(net, x, mix) -> list[tuple]:
    """(w, u, k, token ids) of every Bi-WKV call of ``mix`` when its v tokens are replaced by their index + 1
    (padding tokens then read 0): this recovers the scan order and windows from the network itself."""
    calls, active = [], [False]
    modules = [m for n, m in sys.modules.items() if n.startswith("sss_nnunet.network") and hasattr(m, "bi_wkv")]
    originals = [m.bi_wkv for m in modules]

    def record(w, u, k, v, *args, **kwargs):
        if active[0]:
            calls.append((w.detach(), u.detach(), k.detach(), v.detach()[..., 0].round().long() - 1))
        return originals[0](w, u, k, v, *args, **kwargs)

    def ids(_m, _i, out):
        n = out.shape[1]
        return torch.arange(1, n + 1, dtype=out.dtype).view(1, n, 1).expand_as(out).contiguous()

    handles = [mix.value.register_forward_hook(ids),
               mix.register_forward_pre_hook(lambda *a: active.__setitem__(0, True)),
               mix.register_forward_hook(lambda *a: active.__setitem__(0, False))]
    for m in modules:
        m.bi_wkv = record
    try:
        with torch.no_grad():
            net(x)
    finally:
        for m, f in zip(modules, originals):
            m.bi_wkv = f
        for h in handles:
            h.remove()
    return calls


def naive_weights(calls, query: int, n_tokens: int) -> np.ndarray:
    """(N, C) weights of token ``query`` over all tokens straight from the Bi-WKV formula:
    a_ti ~ exp(-(|t-i|-1) w + k_i) for i != t, exp(u + k_t) for i == t, normalised over i."""
    out, hits = None, 0
    for w, u, k, ids in calls:
        for r, t in zip(*np.nonzero(ids.numpy() == query)):
            T = k.shape[1]
            dist = torch.tensor([abs(int(t) - i) for i in range(T)], dtype=torch.float64)[:, None]
            logits = -(dist - 1) * w + k[r]
            logits[t] = u + k[r, t]
            a = torch.softmax(logits, 0).numpy()  # (T, C)
            out = np.zeros((n_tokens, k.shape[2])) if out is None else out
            valid = ids[r].numpy() >= 0
            np.add.at(out, ids[r].numpy()[valid], a[valid])
            hits += 1
    assert hits == 1, f"query token found in {hits} sequences"
    return out
