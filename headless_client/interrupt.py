"""A wake-up a blocked selector can wait on, so ``close()`` cuts a query in flight short."""

from __future__ import annotations

import socket

__all__ = ["Interrupt"]


class Interrupt:
    """A wake-up a blocked resolver call can select on: ``set()`` ends it early."""

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._set = False

    def fileno(self) -> int:
        """The readable end, for selectors."""
        return self._r.fileno()

    def set(self) -> None:
        """Wake every call waiting on this interrupt (idempotent)."""
        self._set = True
        try:
            self._w.send(b"!")
        except OSError:
            pass

    def is_set(self) -> bool:
        """True once :meth:`set` was called."""
        return self._set

    def close(self) -> None:
        """Release the socket pair."""
        self._r.close()
        self._w.close()

