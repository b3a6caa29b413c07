"""What the server grounds share: child processes, free ports on several addresses, waits.

Every server runs as a child of the test process with ``PR_SET_PDEATHSIG`` (it gets a signal
if pytest dies without its teardown) and is registered with :func:`atexit` through
:class:`ProcessGroup`, so an interpreter that exits after a crashed test still stops it.
Every wait is bounded by a deadline and says what it waited for when it gives up.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TypeVar

__all__ = [
    "RunAs",
    "ServerError",
    "ServerMissing",
    "ServerProcess",
    "address_in_use",
    "cache_dir",
    "chown_tree",
    "common_free_port",
    "port_free_on",
    "remove_at_exit",
    "wait_until",
]

T = TypeVar("T")


class ServerError(RuntimeError):
    """A test server could not do what was asked (did not start, did not stop, bad state)."""


class ServerMissing(ServerError):
    """The server software is not installed; the message says which install script brings it."""


def cache_dir() -> Path:
    """``$HEADLESS_CLIENT_CACHE`` (default ``~/.cache/headless-client``), as the install scripts use it."""
    configured = os.environ.get("HEADLESS_CLIENT_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "headless-client"


def wait_until(
    what: str,
    check: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.05,
    alive: Callable[[], str | None] | None = None,
) -> T:
    """Call ``check`` until it returns something other than ``None`` (or falsy), or time out.

    Exceptions from ``check`` count as "not yet" (the last one is named on time-out).
    ``alive`` returns a reason when waiting is pointless (the server exited), which stops the
    wait at once with that reason.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            result = check()
        except Exception as exc:  # not ready yet: keep the last reason for the message
            last_error = exc
            result = None
        if result is not None and result is not False:
            return result
        if alive is not None:
            reason = alive()
            if reason is not None:
                raise ServerError(f"{what}: {reason}")
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error is not None else ""
            raise ServerError(f"{what}: not done after {timeout:.0f} s{detail}")
        time.sleep(interval)


def port_free_on(address: str, port: int) -> bool:
    """True when a TCP listener could bind ``address:port`` now (the probe is closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def common_free_port(addresses: Sequence[str], *, avoid: Iterable[int] = (), attempts: int = 50) -> int:
    """One TCP port free on every address (like a StatefulSet's one container port).

    The kernel picks a free port on the first address; it is kept when the others can bind it
    too. ``avoid`` lists ports already handed out for another listener of the same servers.
    """
    avoided = set(avoid)
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first:
            first.bind((addresses[0], 0))
            port: int = first.getsockname()[1]
        if port in avoided:
            continue
        if all(port_free_on(address, port) for address in addresses):
            return port
    raise ServerError(f"no TCP port free on all of {', '.join(addresses)} after {attempts} attempts")


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` so the child gets SIGTERM when pytest dies (Linux ``PR_SET_PDEATHSIG``).

    ``subprocess`` runs it after switching user, which matters: a credential change clears the
    setting. The signal follows the *thread* that forked, so only the main thread (which lives
    as long as the session) uses it; ``None`` elsewhere and where prctl is unavailable.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


@dataclass(frozen=True, slots=True)
class RunAs:
    """An unprivileged user a server must run as (PostgreSQL refuses root)."""

    name: str
    uid: int
    gid: int


_LIVE: weakref.WeakSet[ServerProcess] = weakref.WeakSet()
_LIVE_LOCK = threading.Lock()
_DIRS_TO_REMOVE: set[Path] = set()


def remove_at_exit(path: Path, *, cancel: bool = False) -> None:
    """Remove ``path`` at interpreter exit, after the servers are killed (``cancel`` forgets it)."""
    with _LIVE_LOCK:
        if cancel:
            _DIRS_TO_REMOVE.discard(path)
        else:
            _DIRS_TO_REMOVE.add(path)


def _stop_all_at_exit() -> None:
    with _LIVE_LOCK:
        live = list(_LIVE)
        dirs = list(_DIRS_TO_REMOVE)
    for process in live:
        process.kill()
    for path in dirs:
        shutil.rmtree(path, ignore_errors=True)


atexit.register(_stop_all_at_exit)


class ServerProcess:
    """One server child process, its output in a log file, stopped by signal with a deadline.

    >>> server = ServerProcess("redis-0", ["redis-server", "--port", "0"], log_path=path)
    >>> server.start(); server.stop()
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        run_as: RunAs | None = None,
        stop_signal: signal.Signals = signal.SIGTERM,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.run_as = run_as
        self.stop_signal = stop_signal
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def exit_reason(self) -> str | None:
        """``None`` while running; else the exit status and the log's last lines."""
        if self._proc is None:
            return "never started"
        code = self._proc.poll()
        if code is None:
            return None
        return f"{self.name} exited with status {code}; last log lines:\n{self.log_tail()}"

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> None:
        if self.running:
            raise ServerError(f"{self.name} is already running (pid {self.pid})")
        self._close_log()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - kept open for the child's life
        switch = self.run_as is not None and os.geteuid() != self.run_as.uid
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                preexec_fn=_die_with_parent(),
                user=self.run_as.uid if switch and self.run_as else None,
                group=self.run_as.gid if switch and self.run_as else None,
                extra_groups=[] if switch else None,
            )
        except OSError as exc:
            self._close_log()
            raise ServerError(f"cannot start {self.name} ({self.argv[0]}): {exc}") from exc
        with _LIVE_LOCK:
            _LIVE.add(self)

    def stop(self, *, timeout: float = 30.0, sig: signal.Signals | None = None) -> None:
        """Send the stop signal and wait; SIGKILL after ``timeout``. No-op when not running."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig if sig is not None else self.stop_signal)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self._forget()

    def kill(self) -> None:
        """SIGKILL at once (a crash, or the interpreter leaving)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        self._forget()

    def _forget(self) -> None:
        with _LIVE_LOCK:
            _LIVE.discard(self)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def chown_tree(path: Path, run_as: RunAs | None) -> None:
    """Give ``path`` and everything below to ``run_as`` (no-op when not switching user)."""
    if run_as is None or os.geteuid() == run_as.uid:
        return
    for root, dirs, files in os.walk(path):
        os.chown(root, run_as.uid, run_as.gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), run_as.uid, run_as.gid, follow_symlinks=False)


def address_in_use(log_text: str) -> bool:
    """True when a server's log says its listen address was taken (retry with another port)."""
    lowered = log_text.lower()
    return "address already in use" in lowered or f"errno {errno.EADDRINUSE}" in lowered
