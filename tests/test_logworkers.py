"""The forked scan workers: replies, settling, totals, failures and dead workers."""

from __future__ import annotations

import os
import signal
import time

import pytest

from doctor.logworkers import ScanWorkers, WorkerDied


SLOW = 100  # the piece that takes 0.3 s to scan


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel")
        self.callback = lambda: None


def scan_number(number: int) -> tuple[int, int]:
    """Reply with the number doubled and keep the number itself."""
    if number == 0:
        raise ValueError("zero is not a piece")
    if number == -1:
        raise Unpicklable()
    if number == -9:
        os.kill(os.getpid(), signal.SIGKILL)
    if number == SLOW:
        time.sleep(0.3)
    return number * 2, number


def new_totals() -> list[int]:
    return []


def add_number(totals: list[int], number: int) -> None:
    totals.append(number)


def workers() -> ScanWorkers:
    return ScanWorkers(2, scan_number, new_totals, add_number)


def test_only_kept_pieces_reach_totals():
    with workers() as pool:
        handles = [(number, pool.submit(number)) for number in range(1, 7)]
        replies = []
        for number, worker in handles:
            replies.append(pool.result(worker))
            if number % 2:
                pool.keep(worker)
            else:
                pool.drop(worker)
        totals = pool.finish()

    assert replies == [2, 4, 6, 8, 10, 12]
    assert totals == [[1, 3, 5], []]  # the pieces go to the two workers in turn


def test_discard_drops_piece_counts():
    with workers() as pool:
        first = pool.submit(1)
        second = pool.submit(2)
        pool.discard(first)
        assert pool.result(second) == 4
        pool.keep(second)
        totals = pool.finish()

    assert totals == [[], [2]]


def test_failed_scan_raises_workers_continue():
    with workers() as pool:
        failing = pool.submit(0)
        later = pool.submit(3)
        with pytest.raises(ValueError, match="zero is not a piece"):
            pool.result(failing)
        assert pool.result(later) == 6
        pool.keep(later)
        again = pool.submit(4)
        assert pool.result(again) == 8
        pool.keep(again)
        totals = pool.finish()

    assert totals == [[4], [3]]


def test_unpicklable_error_arrives_as_text():
    with workers() as pool:
        worker = pool.submit(-1)
        with pytest.raises(RuntimeError, match="Unpicklable: cannot travel"):
            pool.result(worker)
        pool.finish()


def test_killed_worker_raises_worker_died():
    pool = workers()
    try:
        worker = pool.submit(-9)
        with pytest.raises(WorkerDied, match="exit code -9"):
            pool.result(worker)
        with pytest.raises(WorkerDied):
            pool.submit(1)
    finally:
        pool.close()

    assert not any(process.is_alive() for process in pool._processes)


def test_workers_end_after_finish():
    with workers() as pool:
        pool.finish()

    assert [process.exitcode for process in pool._processes] == [0, 0]


def test_idle_worker_finishes_while_another_scans():
    with workers() as pool:
        first = pool.submit(1)
        second = pool.submit(2)
        assert pool.result(first) == 2
        pool.keep(first)

        early = pool.finish(busy={second})
        assert pool.result(second) == 4
        pool.keep(second)
        late = pool.finish()

    assert early == [[1]]
    assert late == [[2]]


def test_finished_worker_takes_no_piece():
    with workers() as pool:
        pool.finish(busy={1})
        assert pool.submit(5) == 1
        assert pool.result(1) == 10
        pool.keep(1)
        pool.finish()
        with pytest.raises(RuntimeError, match="every log-scanning worker has finished"):
            pool.submit(6)


def test_piece_goes_to_least_busy_worker():
    with workers() as pool:
        slow = pool.submit(SLOW)
        fast = pool.submit(1)
        assert (slow, fast) == (0, 1)
        assert pool.result(fast) == 2
        pool.keep(fast)

        assert pool.submit(2) == 1  # worker 0 still scans the slow piece
        assert pool.result(slow) == 2 * SLOW
        pool.keep(slow)
        assert pool.result(1) == 4
        pool.keep(1)
        totals = pool.finish()

    assert totals == [[SLOW], [1, 2]]
