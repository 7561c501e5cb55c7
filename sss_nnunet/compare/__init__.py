"""``sss-nnunet compare``: train several nnU-Net trainers with one budget, predict, score, tabulate.

``budget`` makes budget subclasses of any trainer nnU-Net can find (stock, ours, a user's), without
touching nnU-Net's files; ``runner`` runs the stock console scripts one trainer at a time;
``report`` writes compare.md / compare.json / compare.png / curves.png; ``cli`` is the subcommand.
"""
