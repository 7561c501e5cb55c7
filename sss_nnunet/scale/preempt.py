"""Preemption requests: SIGUSR1 or SIGTERM sets a flag; the trainer reads it after every iteration.

The handlers only record the signal (they never raise), so a signal that lands inside a data-loader
call, a collective or ``torch.save`` cannot leave anything half-done. :class:`Preempted` is raised
by the trainer (``sss_nnunet.scale.trainer.ScaleMixin``) once the checkpoint is on disk, and the
entry point turns it into the exit status :data:`EXIT_PREEMPTED`.
"""

from __future__ import annotations

import signal

#: Exit status of a run that stopped on SIGUSR1 / SIGTERM after writing checkpoint_latest.pth
#: (EX_TEMPFAIL of sysexits.h: "temporary failure, retry"): rerun the same command with ``--c``.
EXIT_PREEMPTED = 75
SIGNALS = (signal.SIGUSR1, signal.SIGTERM)

_received: list[int] = []


class Preempted(Exception):  # noqa: N818 (a request, not an error)
    """Raised out of ``run_training`` after the preemption checkpoint was written."""


def _record(signum: int, frame) -> None:
    _received.append(signum)


def install() -> dict[int, object]:
    """SIGUSR1 and SIGTERM only set the flag from now on (this process and processes it forks).

    Returns the handlers they had, for :func:`restore`: a process that goes on after training (a
    notebook, a test) must not keep them, or its forked workers (``multiprocessing.Pool``) would
    survive ``Pool.terminate()``'s SIGTERM and its ``join`` would wait for ever."""
    previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
    for sig in SIGNALS:
        signal.signal(sig, _record)
    return previous


def restore(previous: dict[int, object]) -> None:
    """The handlers :func:`install` returned are back."""
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def ignore() -> None:
    """SIGUSR1 and SIGTERM ignored from now on: for the end of a finished run, whose interpreter
    teardown would otherwise die of a late signal (Python restores the default actions there)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def requested() -> bool:
    return bool(_received)


def signal_name() -> str:
    """Name of the first signal received (``"SIGUSR1"``), or ``""``."""
    return signal.Signals(_received[0]).name if _received else ""


def reset() -> None:
    _received.clear()
