"""A few processes that run calls for the daemon, fed by its own thread.

The standard ProcessPoolExecutor hands each call over, and each result
back, through two threads of the calling process. While that process is
busy (the daemon handling a message), those threads wait their turn for
the interpreter, and the processes wait for them: in a poll of 3,000
messages, each parsing process stood waiting between chunks for about a
fifth of the poll (measured; about an eighth with this pool, whose
daemon also spends less CPU without the threads). Here the calling
thread writes each call straight into a pipe of one process, and reads
the answers back when it asks for them or finds them ready; there are
no threads.

Nothing here can deadlock: a call is written only where it fits into
what the process's pipe can hold besides the calls it has not answered
(so the write never waits), or to a process that has answered them all
(which is waiting to read it). A process waiting to write an answer is
read in turn, since answers are read in the order the calls were made.

Each process runs its calls in order. A process that ends raises
WorkerEnded for every call not yet answered, there and in the others;
closing the pool ends them all, and tells of any that had ended.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import pickle
from collections import deque
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

# What each pipe is asked to hold: enough for a few chunks of mail each
# way (Linux lets anyone ask for up to 1 MiB; where that is refused, or
# cannot be asked, a pipe holds what it holds).
PIPE_BYTES = 1024 * 1024
# A pipe stores what is written to it in pages: what a write may cost
# besides its bytes, with the length sent before them.
_WRITE_SLACK = 2 * 4096
# How long closing waits for a process to end before ending it.
CLOSE_SECONDS = 5.0


class WorkerEnded(Exception):
    """A process of the pool ended before answering."""


@dataclass
class _Worker:
    process: Any  # a multiprocessing Process
    calls: Connection  # this process writes calls here
    answers: Connection  # and reads the answers here
    capacity: int  # bytes the calls pipe holds
    waiting: deque[tuple[int, int]] = field(default_factory=deque)  # (ticket, bytes)
    # Answers read before they were asked for, by ticket.
    early: dict[int, bytes] = field(default_factory=dict)

    @property
    def unanswered_bytes(self) -> int:
        """What may still be in the calls pipe: the calls not answered."""
        return sum(size for ticket, size in self.waiting
                   if ticket not in self.early)


class Workers:
    """`count` processes forked from this one, each first running
    `initializer(*initargs)`."""

    def __init__(self, count: int, initializer: Callable[..., None],
                 initargs: tuple[Any, ...] = ()) -> None:
        context = multiprocessing.get_context("fork")
        self._workers: list[_Worker] = []
        self._tickets = 0
        self._where: dict[int, _Worker] = {}
        self._ended = False
        try:
            for _ in range(count):
                calls_in, calls_out = context.Pipe(duplex=False)
                answers_in, answers_out = context.Pipe(duplex=False)
                capacity = _widen(calls_out)
                _widen(answers_out)
                # The child closes this process's ends of every pipe, its
                # own and its elder siblings', so that a pipe ends when
                # the processes at its two ends do.
                ours = [c for w in self._workers for c in (w.calls, w.answers)]
                process = context.Process(
                    target=_serve, daemon=True,
                    args=(calls_in, answers_out, [calls_out, answers_in, *ours],
                          initializer, initargs))
                process.start()
                calls_in.close()
                answers_out.close()
                self._workers.append(
                    _Worker(process, calls_out, answers_in, capacity))
        except BaseException:
            self.close()
            raise

    def submit(self, fn: Callable[..., Any], *args: Any) -> int | None:
        """Hand `fn(*args)` to the process with least to do, and return
        the ticket to ask for its result by; None if no process can take
        it without waiting (each has calls to answer, and this one does
        not fit beside them). Raises WorkerEnded once a process ended."""
        if self._ended:
            raise WorkerEnded("a process of the pool ended")
        payload = pickle.dumps((fn, args), pickle.HIGHEST_PROTOCOL)
        size = len(payload) + _WRITE_SLACK
        for worker in sorted(self._workers, key=lambda w: w.unanswered_bytes):
            busy = worker.unanswered_bytes
            if busy and busy + size > worker.capacity:
                continue
            try:
                worker.calls.send_bytes(payload)
            except OSError as exc:
                self._ended = True
                raise WorkerEnded("a process of the pool ended") from exc
            self._tickets += 1
            worker.waiting.append((self._tickets, size))
            self._where[self._tickets] = worker
            return self._tickets
        return None

    def result(self, ticket: int) -> Any:
        """The result of the call with `ticket`, waiting for it; or the
        exception it raised. Tickets are asked for in the order given."""
        worker = self._where.pop(ticket)
        first, _ = worker.waiting.popleft()
        assert first == ticket, "results are taken in the order asked"
        answer = worker.early.pop(ticket, None)
        if answer is None:
            answer = self._read(worker)
        ok, value = pickle.loads(answer)
        if not ok:
            raise value
        return value

    def gather(self) -> None:
        """Read the answers that are ready, to keep until asked for: a
        process whose answers wait in its pipe, once that is full, waits
        too, though it has calls to run."""
        for worker in self._workers:
            unread = [t for t, _ in worker.waiting if t not in worker.early]
            for ticket in unread:
                if self._ended or not worker.answers.poll(0):
                    break
                worker.early[ticket] = self._read(worker)

    def _read(self, worker: _Worker) -> bytes:
        if self._ended:
            raise WorkerEnded("a process of the pool ended")
        try:
            return worker.answers.recv_bytes()
        except (EOFError, OSError) as exc:
            self._ended = True
            raise WorkerEnded("a process of the pool ended") from exc

    def close(self) -> list[int]:
        """End the processes: each ends when its pipes close, or is ended
        after CLOSE_SECONDS. The exit codes of those that had ended before
        (a process may end after its last answer is read, unnoticed)."""
        ended = [w.process.exitcode for w in self._workers
                 if w.process.exitcode is not None]
        for worker in self._workers:
            worker.calls.close()
            worker.answers.close()
        for worker in self._workers:
            worker.process.join(CLOSE_SECONDS)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
        self._workers.clear()
        self._where.clear()
        return ended


def _widen(end: Connection) -> int:
    """Ask the pipe of `end` to hold PIPE_BYTES; what it holds."""
    # Both are Linux's alone.
    with suppress(OSError, AttributeError):
        fcntl.fcntl(end.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)
    try:
        return fcntl.fcntl(end.fileno(), fcntl.F_GETPIPE_SZ)
    except (OSError, AttributeError):
        return 0  # unknown: a call waits for its process to be free


def _serve(calls: Connection, answers: Connection, others: list[Connection],
           initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    """In a process of the pool: run calls until the pipes close."""
    for end in others:
        end.close()
    initializer(*initargs)
    while True:
        try:
            fn, args = pickle.loads(calls.recv_bytes())
        except (EOFError, OSError):
            return
        try:
            answer = pickle.dumps((True, fn(*args)), pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # the call's, or its result's pickling
            answer = _failure(exc)
        try:
            answers.send_bytes(answer)
        except OSError:
            return


def _failure(exc: Exception) -> bytes:
    try:
        return pickle.dumps((False, exc), pickle.HIGHEST_PROTOCOL)
    except Exception:
        return pickle.dumps((False, RuntimeError(
            f"{type(exc).__name__}: {exc}")), pickle.HIGHEST_PROTOCOL)
