"""Evaluation: Dice / HD95 equal to medpy, the paper and strict protocols, paper tables.

Modules: ``metrics`` (Dice, HD95), ``protocols`` (paper / strict), ``tasks`` (classes
of a dataset), ``cases`` (pairing, geometry, loading), ``evaluate`` (per case, in
parallel, summary), ``published`` / ``tables`` / ``plots`` (outputs), ``cli``;
``isic`` (2D skin lesions: mIoU, DSC, Acc, Spe, Sen pooled as VM-UNet and per image).
"""
