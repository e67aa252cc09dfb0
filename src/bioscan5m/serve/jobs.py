"""Identify work on a worker thread: the request that submits it returns at once, the page polls its progress.

One worker runs jobs in turn (identification uses every core already); finished jobs are kept for download
until ``kept`` newer ones have finished.
"""

from __future__ import annotations

import itertools
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from bioscan5m.errors import as_user_error

#: What a job function gets: ``report(done, total)`` after each piece of work.
Progress = Callable[[int, int], None]


@dataclass
class Job:
    """One submitted piece of work and where it stands."""

    id: str
    state: str = "queued"  # queued, running, done, failed
    done: int = 0
    total: int = 0
    error: str | None = None
    status: int = 400  # the HTTP status of a failed job's error
    result: Any = None
    submitted: float = field(default_factory=time.time)
    future: Future | None = None

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "done": self.done, "total": self.total, "error": self.error}


class JobRunner:
    """Runs ``work(report)`` functions on one worker thread and keeps their results."""

    def __init__(self, kept: int = 64) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bioscan5m-serve-job")
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()
        self._kept = kept
        self._counter = itertools.count(1)

    def submit(self, work: Callable[[Progress], Any], total: int = 0) -> Job:
        # Unguessable ids: one user's results are not listed to another who guesses numbers.
        job = Job(id=f"{next(self._counter)}-{secrets.token_hex(8)}", total=total)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_old()
        job.future = self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def _run(self, job: Job, work: Callable[[Progress], Any]) -> Any:
        job.state = "running"

        def report(done: int, total: int) -> None:
            job.done, job.total = done, total

        try:
            job.result = work(report)
            job.state = "done"
        except Exception as error:  # noqa: BLE001 -- a job's failure is its answer, the worker goes on
            refused = as_user_error(error)
            if refused is None:
                job.error, job.status = f"internal error: {type(error).__name__}: {error}", 500
            else:
                job.error, job.status = str(refused), getattr(error, "status", 400)
            job.state = "failed"
        return job.result

    def _forget_old(self) -> None:
        finished = [job_id for job_id, job in self._jobs.items() if job.state in ("done", "failed")]
        for job_id in finished[: max(0, len(finished) - self._kept)]:
            del self._jobs[job_id]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
