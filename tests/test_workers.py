"""The pool of parsing processes: calls answered in order, failures
carried back, no call that can wait forever, and processes that end on
their own when the pool closes."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from mailbot import workers
from mailbot.workers import WorkerEnded, Workers


def nothing() -> None:
    pass


def echo(value: object) -> object:
    return value


def pid_after(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def fail(message: str) -> None:
    raise ValueError(message)


def unpicklable() -> object:
    return lambda: None


def die() -> None:
    os._exit(3)


@pytest.fixture
def pool() -> Iterator[Workers]:
    pool = Workers(2, nothing)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture
def deadline() -> Iterator[None]:
    """A test that would wait forever fails instead."""
    def expired(signum: int, frame: FrameType | None) -> None:
        raise TimeoutError("the pool kept the test waiting")

    before = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, before)


def test_calls_are_answered_in_order_by_both_processes(pool: Workers) -> None:
    tickets = [pool.submit(pid_after, 0.01 * (n % 3)) for n in range(12)]
    assert None not in tickets
    pids = [pool.result(t) for t in tickets if t is not None]
    assert len(set(pids)) == 2 and os.getpid() not in pids
    values = [pool.submit(echo, n) for n in range(20)]
    assert [pool.result(t) for t in values if t is not None] == list(range(20))


def test_a_failing_call_raises_its_error_here(pool: Workers) -> None:
    ticket = pool.submit(fail, "no such school")
    assert ticket is not None
    with pytest.raises(ValueError, match="no such school"):
        pool.result(ticket)
    # An answer that cannot travel is an error too, and the pool goes on.
    ticket = pool.submit(unpicklable)
    assert ticket is not None
    with pytest.raises(Exception, match="pickle|lambda"):
        pool.result(ticket)
    again = pool.submit(echo, "still here")
    assert again is not None and pool.result(again) == "still here"


def test_calls_larger_than_a_pipe_never_wait_forever(
        pool: Workers, deadline: None) -> None:
    big = b"x" * (3 * workers.PIPE_BYTES)
    tickets = []
    for n in range(6):
        ticket = pool.submit(echo, big + bytes([n]))
        if ticket is None:
            # Each process has a call to answer and this one would not
            # fit beside it: the caller takes a result first.
            assert len(tickets) >= 2
            break
        tickets.append(ticket)
    answers = [pool.result(t) for t in tickets]
    assert answers == [big + bytes([n]) for n in range(len(tickets))]


def test_a_process_that_ends_ends_the_pool(pool: Workers,
                                           deadline: None) -> None:
    ended = pool.submit(die)
    after = pool.submit(echo, 1)
    assert ended is not None and after is not None
    with pytest.raises(WorkerEnded):
        pool.result(ended)
    with pytest.raises(WorkerEnded):
        pool.result(after)
    with pytest.raises(WorkerEnded):
        pool.submit(echo, 2)


def test_closing_ends_the_processes_without_killing_them(
        deadline: None) -> None:
    """Each process ends when its pipes close, though a later one was
    forked holding this process's ends of the earlier one's: it closes
    them first thing, or the earlier one would wait to be killed."""
    pool = Workers(3, nothing)
    processes = [w.process for w in pool._workers]
    # One answer left unread, too big for its pipe: its process waits
    # to write it when the pool closes.
    pool.submit(echo, b"y" * (2 * workers.PIPE_BYTES))
    started = time.monotonic()
    pool.close()
    assert time.monotonic() - started < workers.CLOSE_SECONDS
    assert [p.exitcode for p in processes] == [0, 0, 0]


def test_closing_tells_of_a_process_that_had_ended(deadline: None) -> None:
    """A process killed after its last answer was read was noticed by
    nothing, and its end went unlogged (found by a fault test)."""
    pool = Workers(2, nothing)
    ticket = pool.submit(echo, 1)
    assert ticket is not None and pool.result(ticket) == 1
    killed = pool._workers[1].process
    os.kill(killed.pid, signal.SIGKILL)
    killed.join(5)
    assert pool.close() == [-signal.SIGKILL]
    # Processes that end because the pool closes are not counted.
    again = Workers(2, nothing)
    assert again.close() == []
