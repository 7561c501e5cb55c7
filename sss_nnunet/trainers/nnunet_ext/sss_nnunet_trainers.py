"""Shim for nnU-Net's trainer lookup (``nnUNet_extTrainer``): nnU-Net imports the modules of
this folder as top-level names; this one re-exports the trainers from ``sss_nnunet.trainers``,
so the class nnU-Net finds *is* ``sss_nnunet.trainers.SSSTrainer`` (pickling and spawn workers
work). Keep this folder free of other modules."""

from sss_nnunet.trainers import *  # noqa: F403
from sss_nnunet.trainers import __all__  # noqa: F401
