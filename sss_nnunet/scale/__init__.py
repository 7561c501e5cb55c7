"""Beyond one machine: torchrun training of any nnU-Net trainer (``python -m sss_nnunet.train``),
preemption-safe runs (SIGUSR1 / SIGTERM -> checkpoint -> exit 75 -> ``--c``) and fold farming on
SLURM (``sss-nnunet slurm``). See docs/scale_out.md."""
