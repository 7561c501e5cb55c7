"""Evaluation protocols: what Dice and HD95 a (prediction, ground truth) mask pair scores.

``paper``  (UNETR++ / nnFormer ``inference_*.py``): HD95 without voxel spacing,
           i.e. in voxel units; Dice 1 when both masks are empty; HD95 0 when
           either mask is empty (which flatters a model that misses an organ).
``strict`` HD95 in millimetres (voxel spacing). Both empty: Dice 1, HD95 0 (a
           correct "absent"). A missed class (ground truth present, prediction
           empty) or a spurious one (prediction present, ground truth empty)
           scores Dice 0 and HD95 = the image diagonal in mm,
           sqrt(sum((size_i * spacing_i)^2)) -- larger than any distance inside
           the image, the convention of the BraTS challenge (373.13 mm for
           240x240x155 at 1 mm). Such pairs are counted and listed in the
           summary and the table footer, so the penalty is never hidden in a mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sss_nnunet.evaluation.metrics import dice, hd95

# Status of one (case, class) pair.
OK, BOTH_EMPTY, MISSED, SPURIOUS = "ok", "both_empty", "missed", "spurious"


@dataclass(frozen=True)
class Score:
    dice: float
    hd95: float
    status: str  # OK | BOTH_EMPTY | MISSED | SPURIOUS


@dataclass(frozen=True)
class Protocol:
    name: str
    use_spacing: bool  # HD95 in mm (True) or voxels (False)
    penalize_empty: bool  # missed/spurious: HD95 = image diagonal (True) or 0 (False)
    description: str

    @property
    def hd95_unit(self) -> str:
        return "mm" if self.use_spacing else "voxels"

    def score(
        self, pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float], image_shape: Sequence[int]
    ) -> Score:
        """Score binary masks ``pred``/``gt`` (same shape, possibly a crop of the image).

        ``spacing``: mm per voxel in numpy axis order (D, H, W); ``image_shape``: the
        full image shape, used for the strict penalty.
        """
        has_pred, has_gt = bool(np.any(pred)), bool(np.any(gt))
        if has_pred and has_gt:
            return Score(dice(pred, gt), hd95(pred, gt, spacing if self.use_spacing else None), OK)
        if not has_pred and not has_gt:
            return Score(1.0, 0.0, BOTH_EMPTY)
        penalty = image_diagonal_mm(image_shape, spacing) if self.penalize_empty else 0.0
        return Score(0.0, penalty, MISSED if has_gt else SPURIOUS)


def image_diagonal_mm(shape: Sequence[int], spacing: Sequence[float]) -> float:
    """Diagonal of the image extent in mm: sqrt(sum((shape_i * spacing_i)^2))."""
    return float(np.sqrt(np.sum((np.asarray(shape, float) * np.asarray(spacing, float)) ** 2)))


PAPER = Protocol(
    name="paper",
    use_spacing=False,
    penalize_empty=False,
    description=(
        "as UNETR++/nnFormer: HD95 without voxel spacing (voxel units); "
        "Dice = 1 when prediction and ground truth are both empty; HD95 = 0 when either is empty"
    ),
)
STRICT = Protocol(
    name="strict",
    use_spacing=True,
    penalize_empty=True,
    description=(
        "HD95 in mm (voxel spacing); both empty: Dice = 1, HD95 = 0; "
        "a missed or spurious class scores Dice = 0 and HD95 = the image diagonal in mm "
        "(sqrt(sum((size*spacing)^2))), and is counted separately"
    ),
)
PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (PAPER, STRICT)}
