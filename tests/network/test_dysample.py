"""DySample: grid axis order, normalisation and anisotropic scales."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sss_nnunet.network.dysample import DySample


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize(
    ("scale", "spatial"),
    [((2, 2, 2), (4, 3, 5)), ((1, 2, 2), (3, 5, 6)), ((2, 1, 2), (3, 4, 2)), ((2, 2), (5, 7)),
     ((1, 2), (4, 4))],
)
def test_zero_offsets_equal_linear_interpolation(scale, spatial, dynamic):
    """With zero offsets every output voxel samples its own sub-voxel centre: exactly
    interpolate(align_corners=False). A wrong axis order or normalisation breaks this."""
    x = torch.randn(2, 8, *spatial)
    m = DySample(8, scale, len(spatial), dynamic=dynamic)
    torch.nn.init.zeros_(m.offset.weight)
    mode = "trilinear" if len(spatial) == 3 else "bilinear"
    ref = F.interpolate(x, scale_factor=scale, mode=mode, align_corners=False)
    out = m(x)
    assert out.shape == ref.shape
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_offsets_move_samples_along_the_right_axis():
    """A constant offset of +1 voxel along W (first grid component) shifts the output by one
    input voxel along W only, whatever the per-axis scale."""
    D, H, W = 3, 4, 6
    x = torch.arange(D * H * W, dtype=torch.float32).view(1, 1, D, H, W).repeat(1, 4, 1, 1, 1)
    m = DySample(4, (1, 2, 2), 3, groups=1)
    torch.nn.init.zeros_(m.offset.weight)
    with torch.no_grad():
        m.offset.bias.view(1, 3, 4)[:, 0] = 4.0  # x (=W) offsets of every sub-position: 4 * 0.25 = 1 voxel
    moved = torch.cat([x[..., 1:], x[..., -1:]], -1)
    shifted = F.interpolate(moved, scale_factor=(1, 2, 2), mode="trilinear", align_corners=False)
    # compare away from the W borders, where the two clamp differently
    torch.testing.assert_close(m(x)[..., 1:-2], shifted[..., 1:-2], atol=1e-4, rtol=1e-5)


def test_grid_is_float32_under_autocast_and_built_once():
    torch.manual_seed(0)
    m = DySample(8, (2, 2, 2), 3)
    x = torch.randn(1, 8, 6, 10, 12)
    ref = m(x)
    base = m._base((6, 10, 12), x.device)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        grid = m.grid(x)
        out = m(x.bfloat16())
    assert grid.dtype == torch.float32 and base[0].dtype == torch.float32
    assert m._base((6, 10, 12), x.device)[0] is base[0]  # cached, not rebuilt
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.02)  # only the input rounding differs
    # the module samples with the float32 grid: under autocast its output is the float32 output of the rounded
    # input, up to the bfloat16 rounding of the output (a bfloat16 grid puts samples ~1/100 of the map off)
    torch.testing.assert_close(out.float(), m(x.bfloat16().float()), atol=1e-2, rtol=8e-3)
