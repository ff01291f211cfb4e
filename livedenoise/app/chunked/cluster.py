"""Where a chunked run's tasks run: a local ``dask.distributed`` cluster of processes on this machine
(one engine each, the cores shared out so they do not oversubscribe), or a running scheduler given by
its address (dask-jobqueue on HPC, a cloud cluster); and the tasks submitted to it and gathered.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from livedenoise.app.chunked.blocks import Block
from livedenoise.app.chunked.output import record_error
from livedenoise.app.chunked.task import BlockResult, Job, ModelFiles, run_block
from livedenoise.app.denoising import DenoiseError
from livedenoise.cpu import cpu_threads
from livedenoise.events import Events, Progress


@contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) pressed inside the block and raise it as KeyboardInterrupt at its end.

    For work that must not stop half-done. Only the main thread receives signals; elsewhere (and
    for a block that raises on its own) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if pressed:
        raise KeyboardInterrupt


class Cluster:
    """A ``dask.distributed`` client: to the scheduler at an address, or to a new local cluster."""

    def __init__(self, workers: int, scheduler: str | None) -> None:
        self.workers, self.scheduler = workers, scheduler

    def __enter__(self) -> tuple[Any, str]:
        """The client and a line for people saying where the tasks run."""
        self.cluster: Any = None
        line = self._start_local() if self.scheduler is None else self._connect(self.scheduler)
        return self.client, line

    def _connect(self, scheduler: str) -> str:
        from distributed import Client

        try:
            self.client = Client(scheduler, timeout="20s")
        except OSError as err:
            raise DenoiseError(
                f"cannot reach the Dask scheduler at {scheduler} ({err})",
                option="scheduler",
                value=scheduler,
                hint="check the address (tcp://HOST:8786) and that the scheduler is running",
            ) from None
        count = len(self.client.scheduler_info().get("workers", {}))
        if count == 0:
            try:
                self.client.wait_for_workers(1, timeout=60)
            except TimeoutError:
                self.client.close()
                raise DenoiseError(
                    f"the Dask scheduler at {scheduler} has no workers, and none joined in 60 s",
                    option="scheduler",
                    value=scheduler,
                    hint=f"start some (dask worker {scheduler}) on machines with livedenoise "
                    "installed, the same version as here",
                ) from None
            count = len(self.client.scheduler_info().get("workers", {}))
        return (
            f"Dask scheduler {scheduler}: {count} worker(s); dashboard {self.client.dashboard_link}"
        )

    def _start_local(self) -> str:
        from distributed import Client, LocalCluster

        if self.workers < 1:
            raise DenoiseError(
                f"{self.workers} workers: give at least 1 worker",
                option="workers",
                value=self.workers,
            )
        threads = max(1, cpu_threads() // self.workers)
        try:
            # a cluster stopped half-started cannot be closed: its workers' state makes Dask's exit
            # hook fail with a traceback; Ctrl-C waits the second or two until it is up
            with ctrl_c_held():
                # one engine per worker process, the cores shared out: engines never compete
                self.cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # a free port: a taken 8787 would only print a warning
                    env={"OMP_NUM_THREADS": str(threads)},
                    silence_logs=logging.CRITICAL,  # a failed block reaches the user as its error
                )
                self.client = Client(self.cluster)
        except KeyboardInterrupt:
            self.__exit__()
            raise
        return f"local Dask cluster: {self.workers} worker process(es), {threads} engine thread(s) each"

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def compute(
    client: Any,
    job: Job,
    blocks: list[Block],
    todo: list[int],
    files: ModelFiles,
    done: int,
    events: Events,
) -> list[BlockResult]:
    """Run the blocks of ``todo``; the first error cancels the rest, is recorded and raised."""
    from distributed import KilledWorker, as_completed

    events.progress.emit(Progress(done, len(blocks), "blocks"))
    if not todo:
        return []
    model = client.scatter(files, broadcast=True, hash=False)
    futures = client.map(
        run_block, todo, [blocks[row] for row in todo], job=job, model=model, pure=False
    )
    results = []
    try:
        for future in as_completed(futures):
            results.append(future.result())
            done += 1
            events.progress.emit(Progress(done, len(blocks), "blocks"))
    except BaseException as err:
        client.cancel(futures)
        record_error(Path(job.output), err)
        if isinstance(err, KilledWorker):
            raise DenoiseError(
                f"a Dask worker died while denoising ({err}), most often for lack of memory",
                path=job.output,
                option="workers",
                hint="finished blocks are kept: run again with fewer workers to resume",
            ) from None
        raise
    return results
