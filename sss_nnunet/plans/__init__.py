"""SSSPlans: nnU-Net experiment planning for RWKV-SSS.

- ``memory``: the training-memory model (bytes) of RWKV-SSS at a patch size and batch size;
- ``planner``: ``SSSPlanner``, nnU-Net's ``ExperimentPlanner`` with that model and RWKVSSS plans;
- ``cli``: ``sss-nnunet plan`` (fingerprint, plan, preprocess through nnU-Net's API).

Modules are imported on use: torch and nnU-Net load only with ``planner`` / ``memory``.
"""
