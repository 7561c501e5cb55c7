"""nnUNetTrainer subclasses for RWKV-SSS. ``SSSTrainer`` and its variants (see ``variants``).

Stock nnU-Net finds them through the shim folder ``sss_nnunet/trainers/nnunet_ext`` listed in
``nnUNet_extTrainer`` (the package's startup hook appends it; see ``sss_nnunet._ext_trainer_hook``).
"""

from sss_nnunet.trainers.sss_trainer import SSSTrainer, network_kwargs_from_plans
from sss_nnunet.trainers.variants import LADDER as LADDER_RUNGS
from sss_nnunet.trainers.variants import (
    SSSTrainer_1epoch,
    SSSTrainer_5epochs,
    SSSTrainer_50epochs,
    SSSTrainer_250epochs,
    SSSTrainer_bothMixes,
    SSSTrainer_decayWindow,
    SSSTrainer_demo,
    SSSTrainer_firstRWKV1,
    SSSTrainer_globalOnly,
    SSSTrainer_L0,
    SSSTrainer_L1,
    SSSTrainer_L2,
    SSSTrainer_L3,
    SSSTrainer_L4,
    SSSTrainer_L5,
    SSSTrainer_L6,
    SSSTrainer_localOnly,
    SSSTrainer_noPooledWKV,
    SSSTrainer_posEmbed,
    SSSTrainer_scanRaster,
    SSSTrainer_scanWeightsStatic,
    SSSTrainer_scanWeightsUniform,
    SSSTrainer_scanZigzag,
    SSSTrainer_shiftNone,
    SSSTrainer_shiftQShift4,
    SSSTrainer_shiftShared,
    SSSTrainer_skipConcat,
    SSSTrainer_tiny,
    SSSTrainer_transposedUp,
    SSSTrainer_VRWKV,
)

TRAINERS = [
    SSSTrainer, SSSTrainer_1epoch, SSSTrainer_5epochs, SSSTrainer_50epochs, SSSTrainer_250epochs, SSSTrainer_demo,
    SSSTrainer_tiny, SSSTrainer_scanRaster, SSSTrainer_scanZigzag, SSSTrainer_shiftNone, SSSTrainer_shiftQShift4,
    SSSTrainer_noPooledWKV, SSSTrainer_transposedUp, SSSTrainer_scanWeightsStatic, SSSTrainer_scanWeightsUniform,
    SSSTrainer_globalOnly, SSSTrainer_localOnly, SSSTrainer_firstRWKV1, SSSTrainer_posEmbed, SSSTrainer_VRWKV,
    SSSTrainer_skipConcat, SSSTrainer_bothMixes, SSSTrainer_decayWindow, SSSTrainer_shiftShared,
    SSSTrainer_L0, SSSTrainer_L1, SSSTrainer_L2, SSSTrainer_L3, SSSTrainer_L4, SSSTrainer_L5, SSSTrainer_L6,
]
LADDER = [*LADDER_RUNGS]
ABLATION_TRAINERS = [t for t in TRAINERS if t.network_overrides]
__all__ = [t.__name__ for t in TRAINERS] + ["ABLATION_TRAINERS", "LADDER", "TRAINERS", "network_kwargs_from_plans"]
