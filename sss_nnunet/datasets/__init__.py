"""Dataset converters (Synapse / BTCV, ACDC, BraTS, ISIC 2016-2018) to the nnU-Net v2 raw layout.

``specs`` says what each dataset is (ids, names, label maps); ``synapse``, ``acdc``,
``brats`` and ``isic`` find the cases of one raw download (``isic`` also reads and writes
its 2D PNG cases); ``common`` reads, checks and writes
one case; ``splits`` builds ``splits_final.json``; ``writer`` writes a whole dataset
atomically; ``cli`` is ``sss-nnunet convert``.
"""
