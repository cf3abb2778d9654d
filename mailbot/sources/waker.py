"""A self-pipe, so that a source's wait can be cut short by a signal.

A signal handler runs in the main thread between two bytecodes; if that
thread is blocked in select(), the select is retried after the handler
returns. A byte written to the pipe from the handler makes the retried
select return at once, so a daemon stops within moments of SIGTERM
instead of at the end of a half-hour IMAP IDLE.
"""

from __future__ import annotations

import contextlib
import os
import select
import time


class Waker:
    """A flag that select() can wait on alongside a socket.

    The pipe is made on first use and again after `close()`, so an object
    that owns a Waker holds no file descriptors until it waits.
    """

    def __init__(self) -> None:
        self._pipe: tuple[int, int] | None = None

    def _fds(self) -> tuple[int, int]:
        if self._pipe is None:
            read, write = os.pipe()
            os.set_blocking(read, False)
            os.set_blocking(write, False)
            self._pipe = read, write
        return self._pipe

    def fileno(self) -> int:
        return self._fds()[0]

    def wake(self) -> None:
        """Set the flag; safe from a signal handler and any thread."""
        # A full pipe already means "awake".
        with contextlib.suppress(OSError):
            os.write(self._fds()[1], b"!")

    def clear(self) -> None:
        with contextlib.suppress(OSError):
            while os.read(self._fds()[0], 512):
                pass

    def sleep(self, seconds: float) -> bool:
        """Sleep up to `seconds`; True (and the flag cleared) if woken."""
        deadline = time.monotonic() + max(seconds, 0.0)
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            ready, _, _ = select.select([self], [], [], left)
            if ready:
                self.clear()
                return True
            if left <= 0:
                return False

    def close(self) -> None:
        pipe, self._pipe = self._pipe, None
        for fd in pipe or ():
            with contextlib.suppress(OSError):
                os.close(fd)
