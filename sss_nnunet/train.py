"""``python -m sss_nnunet.train DATASET CONFIG FOLD -tr TRAINER [nnUNetv2_train options]``.

nnU-Net's own ``nnUNetv2_train`` (same parser, same options, same device set-up), with two changes:

- the trainer nnU-Net finds (nnunetv2's, ours, or a user's on ``nnUNet_extTrainer``) gets
  ``sss_nnunet.scale.trainer.ScaleMixin`` (same class name, same results folder);
- started by torchrun (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT`` set),
  each process trains its share of one DDP run across all nodes (``sss_nnunet.scale.distributed``)::

    torchrun --nnodes 2 --nproc-per-node 4 --rdzv-backend c10d --rdzv-endpoint HOST:29500 --rdzv-id JOB \\
        -m sss_nnunet.train 4 3d_fullres 0 -tr SSSTrainer --c

Without torchrun it runs nnU-Net's ``run_training`` unchanged (``-num_gpus`` included).

Preemption: SIGUSR1 or SIGTERM -> the current iteration finishes, ``checkpoint_latest.pth`` is written
(atomically, by global rank 0) and every process exits with status 75
(:data:`sss_nnunet.scale.preempt.EXIT_PREEMPTED`); the same command with ``--c`` continues from the
interrupted epoch. Under torchrun one signalled rank is enough: the ranks agree after every iteration,
meet at a barrier after the checkpoint and leave at once (``os._exit``): torchrun stops the remaining
workers with SIGTERM as soon as the first one exits with a non-zero status.
"""

from __future__ import annotations

import os
import sys

from sss_nnunet.scale import preempt


def main(*, as_program: bool = False) -> int:
    """Train as ``nnUNetv2_train`` would, preemption-safe; the exit status (0, 2 or 75).

    Called from Python, the caller's SIGUSR1 / SIGTERM handlers are back afterwards, however it ends
    (``--help`` included). ``as_program`` (``python -m sss_nnunet.train``): both signals are ignored
    instead, as the process is about to end and a late signal must not change its exit status."""
    previous = preempt.install()
    try:
        return _train(as_program)
    finally:
        if as_program:
            preempt.ignore()
        else:
            preempt.restore(previous)


def _train(as_program: bool) -> int:
    from nnunetv2.run import run_training as rt

    from sss_nnunet._ext_trainer_hook import explaining
    from sss_nnunet.errors import SSSError
    from sss_nnunet.scale.distributed import run_distributed, under_torchrun
    from sss_nnunet.scale.trainer import scaled

    find, run_training = rt.recursive_find_trainer_class_by_name, rt.run_training
    rt.recursive_find_trainer_class_by_name = lambda name: scaled(find(name))
    if under_torchrun():
        rt.run_training = run_distributed
    if as_program:
        sys.argv[0] = "sss_nnunet.train"
        sys.excepthook = explaining(sys.excepthook)  # "not planned / not trained" as one line, as nnUNetv2_train
    try:
        rt.run_training_entry()
    except preempt.Preempted as e:
        print(f"sss_nnunet.train: {e}; checkpoint_latest.pth written, rerun with --c "
              f"(exit {preempt.EXIT_PREEMPTED})", file=sys.stderr)
        if under_torchrun():  # all ranks leave together: no interpreter teardown that torchrun could cut short
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(preempt.EXIT_PREEMPTED)
        return preempt.EXIT_PREEMPTED
    except SSSError as e:
        print(f"sss_nnunet.train: error: {e}", file=sys.stderr)
        return 2
    finally:
        rt.recursive_find_trainer_class_by_name, rt.run_training = find, run_training
    return 0


if __name__ == "__main__":
    sys.exit(main(as_program=True))
