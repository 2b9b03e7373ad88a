"""Forked worker processes that scan pieces of access logs and keep their counts until the end.

For each piece a worker replies with only what depends on where the piece
sits in its file: its line counts, the first and last line of each failure
kind, and its malformed lines. The worker keeps the piece's counts by key and
top failing values, adds them to its totals once the main process keeps the
piece, and sends the totals once, from `finish()`. Merging the counts piece
by piece in the main process took about 0.1 s of CPU from the two workers on
2 CPUs, in a scan of the benchmark's 1,000,000-line TEXT log.

The main process reads each worker's results in the order it submitted the
pieces, and settles each piece, kept or dropped, in that order too.
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
from collections import deque
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Collection

logger = logging.getLogger(__name__)

_SCAN = "scan"
_KEEP = "keep"
_DROP = "drop"
_FINISH = "finish"
_DONE = "done"
_FAILED = "failed"
_TOTALS = "totals"


class WorkerDied(Exception):
    """Raised when a worker process ended before the scan did (killed for memory, say)."""


# scan(*arguments) returns (the reply to send back, the counts to keep until the piece is settled),
# and add(totals, counts) adds the counts of a kept piece to the worker's totals.
ScanFunction = Callable[..., tuple[Any, Any]]
AddFunction = Callable[[Any, Any], None]


class ScanWorkers:
    """Forked processes that run `scan` on the pieces submitted.

    `submit` returns the worker that got the piece. `result` returns the next
    result of that worker, and `keep` or `drop` settles it: `keep` adds its
    counts to the worker's totals. Every method raises WorkerDied once a
    worker has ended, and `result` raises the exception of a piece that
    failed in a worker.
    """

    def __init__(self, count: int, scan: ScanFunction, new_totals: Callable[[], Any],
                 add: AddFunction, initializer: Callable[[], None] | None = None) -> None:
        context = multiprocessing.get_context("fork")
        self._connections: list[Connection] = []
        self._processes: list[multiprocessing.process.BaseProcess] = []
        self._next = 0
        self._broken = False
        self._finished: set[int] = set()
        self._outstanding = [0] * count  # pieces submitted and not yet replied to, per worker
        self._replies: list[deque] = [deque() for _ in range(count)]  # received, not yet read
        for _ in range(count):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_serve, daemon=True, name="mesh-doctor-log-scan",
                args=(theirs, scan, new_totals, add, initializer, [*self._connections, ours]))
            process.start()
            theirs.close()
            self._connections.append(ours)
            self._processes.append(process)

    def __enter__(self) -> ScanWorkers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        self.close(stop=exc_type is not None)

    def submit(self, *arguments: Any) -> int:
        """Send a piece to the worker with the fewest pieces in hand and return that worker.

        Replies are received as they come, whichever piece the caller waits for,
        so a worker slowed down by other work on the host gets fewer pieces.
        """
        count = len(self._connections)
        candidates = [(self._next + step) % count for step in range(count)]
        candidates = [worker for worker in candidates if worker not in self._finished]
        if not candidates:
            raise RuntimeError("every log-scanning worker has finished and takes no more pieces")
        worker = min(candidates, key=lambda candidate: self._outstanding[candidate])
        self._next = (worker + 1) % count
        self._send(worker, (_SCAN, arguments))
        self._outstanding[worker] += 1
        return worker

    def result(self, worker: int) -> Any:
        """Return the next result of `worker`, or raise the exception its scan raised."""
        kind, value = self._receive(worker)
        if kind == _FAILED:
            raise value
        return value

    def keep(self, worker: int) -> None:
        """Add the counts of the oldest unsettled piece of `worker` to its totals."""
        self._send(worker, (_KEEP,))

    def drop(self, worker: int) -> None:
        """Forget the counts of the oldest unsettled piece of `worker`."""
        self._send(worker, (_DROP,))

    def discard(self, worker: int) -> None:
        """Receive the next result of `worker` and drop it, whether its scan succeeded or failed."""
        kind, _ = self._receive(worker)
        if kind == _DONE:
            self.drop(worker)

    def finish(self, busy: Collection[int] = ()) -> list[Any]:
        """Return the totals of the workers not yet finished and not in `busy`, which then exit.

        Finishing an idle worker while another still scans overlaps the
        transfer of its totals with that scan.
        """
        idle = [worker for worker in range(len(self._connections))
                if worker not in self._finished and worker not in busy]
        for worker in idle:
            self._send(worker, (_FINISH,))
        self._finished.update(idle)
        return [self._receive(worker)[1] for worker in idle]

    def close(self, stop: bool = False) -> None:
        """Close the connections and wait for the workers to end; with `stop`, end them first."""
        for connection in self._connections:
            connection.close()
        for process in self._processes:
            if stop or self._broken:
                process.terminate()
            process.join()

    def _send(self, worker: int, message: tuple) -> None:
        self._check()
        try:
            self._connections[worker].send(message)
        except OSError as error:
            self._died(worker, error)

    def _receive(self, worker: int) -> tuple[str, Any]:
        """Return the next message of `worker`, keeping the other workers' messages that arrive first."""
        self._check()
        replies = self._replies[worker]
        while not replies:
            waiting = {self._connections[other]: other for other in range(len(self._connections))
                       if other == worker or self._outstanding[other]}
            for connection in wait(list(waiting)):
                sender = waiting[connection]
                try:
                    message = connection.recv()
                except (EOFError, OSError) as error:
                    self._died(sender, error)
                if message[0] in (_DONE, _FAILED):
                    self._outstanding[sender] -= 1
                self._replies[sender].append(message)
        return replies.popleft()

    def _check(self) -> None:
        if self._broken:
            raise WorkerDied("a log-scanning worker process ended earlier in this scan")

    def _died(self, worker: int, error: BaseException) -> None:
        self._broken = True
        process = self._processes[worker]
        process.join(timeout=1)
        raise WorkerDied(f"log-scanning worker {process.pid} ended (exit code {process.exitcode}): "
                         f"{str(error) or type(error).__name__}") from error


def _serve(connection: Connection, scan: ScanFunction, new_totals: Callable[[], Any], add: AddFunction,
           initializer: Callable[[], None] | None, inherited: list[Connection]) -> None:
    """Run in a worker: scan pieces, keep their counts until settled, and send the totals at the end."""
    for other in inherited:
        other.close()  # the main process's ends, so this worker reads end of file when it ends
    if initializer is not None:
        initializer()
    unsettled: deque = deque()
    totals = new_totals()
    try:
        _answer(connection, scan, totals, add, unsettled)
    except (EOFError, BrokenPipeError, KeyboardInterrupt):
        pass  # the main process has ended, given up on the scan or been interrupted


def _answer(connection: Connection, scan: ScanFunction, totals: Any, add: AddFunction,
            unsettled: deque) -> None:
    while True:
        message = connection.recv()
        kind = message[0]
        if kind == _SCAN:
            try:
                reply, counts = scan(*message[1])
            except Exception as error:  # noqa: BLE001 - sent to the main process, which raises it
                _send_failure(connection, error)
                continue
            unsettled.append(counts)
            connection.send((_DONE, reply))
        elif kind == _KEEP:
            add(totals, unsettled.popleft())
        elif kind == _DROP:
            unsettled.popleft()
        elif kind == _FINISH:
            connection.send((_TOTALS, totals))
            return


def _send_failure(connection: Connection, error: Exception) -> None:
    """Send the exception of a failed scan, or its text when it cannot be pickled."""
    try:
        connection.send((_FAILED, error))  # pickles the whole message before it writes
    except (pickle.PicklingError, TypeError, AttributeError):
        logger.debug("the scan's %s cannot be pickled, so it is sent as text", type(error).__name__)
        connection.send((_FAILED, RuntimeError(f"{type(error).__name__}: {error}")))
