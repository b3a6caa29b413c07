"""The one fork hook of the library: objects that hold locks, threads or sockets register
here, and a forked child calls their ``_after_fork_in_child()`` before any other code of
the child runs.

Python web servers fork (gunicorn ``--preload``, uWSGI, Celery prefork, multiprocessing's
fork context). A child inherits copies of the parent's locks in whatever state the
parent's *other* threads left them (held by a thread that does not exist in the child),
and copies of its sockets (shared with the parent). Each registered object replaces its
locks, drops or reopens what it must, and restarts its own machinery in the child; the
parent is untouched.

Registration is weak: a registered object that dies is forgotten.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from typing import Protocol

__all__ = ["ForkAware", "forks_seen", "register"]

log = logging.getLogger("headless_client")


class ForkAware(Protocol):
    """An object that repairs itself in a forked child."""

    def _after_fork_in_child(self) -> None: ...


_registered: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_registry_lock = threading.Lock()
_forks = 0


def register(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in every child forked while *obj* lives."""
    with _registry_lock:
        _registered.add(obj)


def forks_seen() -> int:
    """How many forks this process descends from since the library was imported (tests)."""
    return _forks


def _before_fork() -> None:
    # Held across the fork so the child's copy of the registry is never mid-update.
    _registry_lock.acquire()


def _after_fork_in_parent() -> None:
    _registry_lock.release()


def _after_fork_in_child() -> None:
    global _registry_lock, _forks
    _registry_lock = threading.Lock()
    _forks += 1
    # Locks first (every object), then machinery that may start threads: an object's
    # repair may rely on another's lock being fresh already.
    objects = sorted(_registered, key=lambda o: getattr(o, "_fork_order", 0))
    for obj in objects:
        try:
            obj._after_fork_in_child()
        except Exception:  # pragma: no cover - a repair must never break the child
            log.exception(
                "headless_client: repairing %r after fork failed", obj,
                extra={"service": None, "pod": None, "address": None, "reason": "fork"},
            )


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
