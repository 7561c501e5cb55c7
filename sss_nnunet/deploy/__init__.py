"""Deployment: a trained nnU-Net model (any trainer, RWKV-SSS included) as ONNX, and prediction from it.

- ``export``: ``sss-nnunet export -d ID -c CONFIG -f FOLD -tr TRAINER --out DIR`` writes
  ``DIR/model.onnx`` (batch 1, the configuration's patch size, Bi-WKV as standard ONNX
  operators), ``plans.json``, ``dataset.json`` and ``manifest.json``;
- ``onnx_predict``: ``sss-nnunet predict --onnx DIR -i IN -o OUT`` runs that model with
  onnxruntime inside nnU-Net's own ``nnUNetPredictor`` (same preprocessing, sliding window with
  Gaussian weighting, mirroring and export of the segmentations).

Both need the optional extra ``pip install 'sss-nnunet[deploy]'`` (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from sss_nnunet.errors import SSSError

DEPLOY_PACKAGES = ("onnx", "onnxscript", "onnxruntime")


def require(name: str) -> ModuleType:
    """Import one of ``DEPLOY_PACKAGES`` or raise the one-line SSSError that says how to install them."""
    try:
        return importlib.import_module(name)
    except ImportError as e:
        raise SSSError(f"ONNX export and prediction need the optional packages {', '.join(DEPLOY_PACKAGES)} "
                       f"({name} is missing: {e}); install them with: pip install 'sss-nnunet[deploy]'") from e
