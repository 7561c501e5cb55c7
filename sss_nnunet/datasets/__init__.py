"""Dataset converters (Synapse / BTCV, ACDC, BraTS) to the nnU-Net v2 raw layout.

``specs`` says what each dataset is (ids, names, label maps); ``synapse``, ``acdc``
and ``brats`` find the cases of one raw download; ``common`` reads, checks and writes
one case; ``splits`` builds ``splits_final.json``; ``writer`` writes a whole dataset
atomically; ``cli`` is ``sss-nnunet convert``.
"""
