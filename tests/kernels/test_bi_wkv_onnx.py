"""Bi-WKV's ``onnx`` backend (log-space doubling scan): exact against the float64 reference, chosen
while exporting, and exported as standard ONNX operators that onnxruntime runs to the same result."""

from __future__ import annotations

import pytest
import torch

from sss_nnunet.kernels import bi_wkv, onnx_export_mode, resolve_backend
from sss_nnunet.kernels.wkv.cases import CASES, Case, make_inputs, reference, rel_err, tolerance
from sss_nnunet.kernels.wkv.log_scan import bi_wkv_log_scan, decayed_scan


@pytest.mark.parametrize("case", CASES, ids=str)
def test_log_scan_matches_the_reference(case: Case):
    w, u, k, v, gy = make_inputs(case)
    y_ref, _ = reference(w, u, k, v, gy)
    y = bi_wkv(w, u, k, v, backend="onnx")
    assert y.dtype == v.dtype and y.shape == v.shape
    assert rel_err(y, y_ref) <= tolerance(case)["y"]


def test_decayed_scan_is_the_exclusive_decayed_sum_both_ways():
    g = torch.Generator().manual_seed(1)
    B, T, C = 2, 11, 3
    x, V, w = torch.randn(B, T, C, generator=g), torch.randn(B, T, C, 2, generator=g), torch.rand(C, generator=g)
    x, V, w = x.double(), V.double(), w.double()
    for reverse in (False, True):
        p, P = decayed_scan(x, V, w, reverse)
        got = p.exp()[..., None] * P
        for t in range(T):
            idx = range(t + 1, T) if reverse else range(t)
            want = sum((torch.exp(-(abs(t - i) - 1) * w + x[:, i])[..., None] * V[:, i] for i in idx),
                       torch.zeros(B, C, 2, dtype=torch.float64))
            assert torch.allclose(got[:, t], want, atol=1e-12), (reverse, t)


def test_float64_and_padding_keys():
    case = Case(2, 300, 5, w_max=50.0, k_max=100.0, dtype=torch.float64)
    w, u, k, v, gy = make_inputs(case)
    w, u = w.double(), u.double()
    k[:, 250:] = -1.0e4  # padding tokens as the network writes them (PAD_KEY)
    y_ref, _ = reference(w, u, k, v, gy)
    assert rel_err(bi_wkv_log_scan(w, u, k, v), y_ref) < 1e-10


def test_export_mode_selects_the_onnx_backend(monkeypatch):
    x = torch.zeros(1)
    monkeypatch.setenv("SSS_BI_WKV_BACKEND", "torch")
    assert resolve_backend(None, x) == "torch"
    with onnx_export_mode():
        assert resolve_backend(None, x) == "onnx"
        assert resolve_backend("naive", x) == "naive"  # an explicit backend still wins
    assert resolve_backend(None, x) == "torch"


class _Wkv(torch.nn.Module):
    def __init__(self, C: int):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.w = torch.nn.Parameter((torch.rand(C, generator=g) * 2 - 1) * 0.5)
        self.u = torch.nn.Parameter(torch.randn(C, generator=g))

    def forward(self, k, v):
        return bi_wkv(self.w, self.u, k, v)


def test_export_holds_standard_operators_and_onnxruntime_agrees(tmp_path):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    import onnx

    from sss_nnunet.deploy.export import non_standard_nodes, onnx_session

    module = _Wkv(6).eval()
    k, v = torch.randn(2, 37, 6) * 3, torch.randn(2, 37, 6)
    path = tmp_path / "wkv.onnx"
    with torch.no_grad():  # no onnx_export_mode(): torch.onnx.is_in_onnx_export() alone selects the backend
        torch.onnx.export(module, (k, v), str(path), dynamo=True, external_data=False, verbose=False)
    model = onnx.load(str(path))
    assert non_standard_nodes(model) == []
    ops = {n.op_type for n in model.graph.node}
    assert "Exp" in ops and not any("wkv" in op.lower() for op in ops)
    sess = onnx_session(path)
    names = [i.name for i in sess.get_inputs()]
    out = sess.run(None, dict(zip(names, (k.numpy(), v.numpy()))))[0]
    y_ref, _ = reference(module.w.detach(), module.u.detach(), k, v, torch.zeros_like(v))
    assert rel_err(torch.from_numpy(out), y_ref) < 1e-5
