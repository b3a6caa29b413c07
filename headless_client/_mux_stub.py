"""TEMPORARY stand-in for transport.Multiplexer (until the exchange work lands)."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable
from typing import Any


class Multiplexer:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._open()

    def _open(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._sel.register(self._r, selectors.EVENT_READ)

    def submit(self, lookup: Any, done: Callable[[Any, BaseException | None], None]) -> Any:
        raise NotImplementedError

    def cancel(self, job: Any) -> None:
        pass

    def next_deadline(self) -> float | None:
        return None

    def poll(self, timeout: float | None) -> None:
        if self._sel.select(timeout):
            try:
                while self._r.recv(4096):
                    pass
            except BlockingIOError:
                pass

    def wake(self) -> None:
        try:
            self._w.send(b"!")
        except OSError:
            pass

    def reset_after_fork(self) -> None:
        self._sel.close()
        self._r.close()
        self._w.close()
        self._open()

    def close(self) -> None:
        self._sel.close()
        self._r.close()
        self._w.close()

    def descriptor_count(self) -> int:
        return 3
