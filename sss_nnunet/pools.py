"""Process pools for per-case work (``convert``, ``evaluate``): workers die with their parent.

Workers are started with ``spawn`` (SimpleITK/ITK thread pools do not survive a fork, and the
parent may have imported torch). Each worker asks the kernel to SIGKILL it when the parent dies
(Linux ``prctl(PR_SET_PDEATHSIG)``; elsewhere a thread polls the parent's id), so a killed
command leaves no orphaned workers. A worker that dies (out-of-memory killer, a crash in a C
library) ends the run with one :class:`~sss_nnunet.errors.SSSError` line instead of a traceback.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from sss_nnunet.errors import SSSError

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _watch_parent(parent: int) -> None:
    while True:
        time.sleep(1.0)
        if os.getppid() != parent:
            os._exit(1)


def die_with_parent(parent: int) -> None:
    """Pool initializer: end this process as soon as process ``parent`` is gone."""
    armed = False
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(parent,), daemon=True, name="sss-parent-watch").start()


def run_in_pool(fn: Callable[..., Any], jobs: Sequence[tuple], workers: int) -> Iterator[tuple[int, Any]]:
    """Yield ``(i, fn(*jobs[i]))`` in completion order, computed by ``workers`` spawned processes.

    The first exception of a job is raised (after the pending jobs are cancelled); a worker that died
    is an :class:`SSSError`. ``fn`` and the jobs must be picklable.
    """
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max(1, min(workers, len(jobs))), mp_context=context,
                             initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
        try:
            for future in as_completed(futures):
                yield futures[future], future.result()
        except BrokenProcessPool:
            pool.shutdown(wait=True, cancel_futures=True)
            raise SSSError("a worker process died (killed, e.g. by the out-of-memory killer, or crashed in a C "
                           "library); nothing was written. Rerun with --workers 1 to see the file it stopped at"
                           ) from None
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
