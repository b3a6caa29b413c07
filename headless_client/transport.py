"""The blocking driver of lookups (selectors): :func:`run_lookup` and :class:`Multiplexer`.

Only moves bytes. Every decision (which server, UDP or TCP, when to retransmit, what a
reply means) is taken by :class:`~headless_client.exchange.Exchange` and the lookup plans;
this module opens the sockets they ask for, feeds them what arrives and keeps time.
One selector can carry any number of lookups at once: :class:`Multiplexer` lets one
thread drive the refreshes of many services, and a black-holed nameserver delays only
the lookups that wait on it.
"""

from __future__ import annotations

import errno
import logging
import os
import selectors
import socket
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import HeadlessClientError, ResolutionError
from .exchange import Exchange, Lookup, Open, Send
from .interrupt import Interrupt

__all__ = ["Job", "Multiplexer", "run_lookup"]

log = logging.getLogger("headless_client.transport")

T = TypeVar("T")
Done = Callable[[Any, "BaseException | None"], None]

_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE
#: Datagrams taken per readiness event, so one flooded socket cannot starve the others.
_DATAGRAM_BURST = 64
_RECV_STREAM = 262_144
#: The longest single wait, in seconds (selectors overflow on huge timeouts).
_MAX_WAIT = 3600.0


def _describe(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


class Job(Generic[T]):
    """One lookup in flight: its plan, its current exchange and the sockets it asked for.

    Returned by :meth:`Multiplexer.submit`, to :meth:`Multiplexer.cancel` it. Its
    ``done`` callback is called once, with the result or the error.
    """

    __slots__ = ("_deadline", "_done", "_exchange", "_finished", "_sel", "_socks", "_streams", "lookup")

    def __init__(self, lookup: Lookup[T], sel: selectors.BaseSelector, done: Done) -> None:
        self.lookup = lookup
        self._sel = sel
        self._done = done
        self._exchange: Exchange | None = None
        self._socks: dict[int, socket.socket] = {}
        # TCP channels: bytes still to send, and whether the connect completed.
        self._streams: dict[int, tuple[bytearray, bool]] = {}
        self._deadline = 0.0
        self._finished = False

    def __repr__(self) -> str:
        state = "finished" if self._finished else f"{len(self._socks)} sockets"
        return f"<Job {self.lookup.name or 'lookup'}: {state}>"

    @property
    def finished(self) -> bool:
        """True once the lookup has a result or an error (or was cancelled)."""
        return self._finished

    def descriptors(self) -> int:
        """Sockets this job holds open."""
        return len(self._socks)

    # -- steps ------------------------------------------------------------------------------

    def begin(self, now: float) -> None:
        """Start the plan (one deadline for all its batches)."""
        self._deadline = now + self.lookup.config.timeout
        if self._advance(None, now):
            try:
                self._carry_out(now)
            except Exception as exc:  # a bug must end this lookup, not the caller
                self._finish(None, exc)

    def next_timer(self) -> float | None:
        exchange = self._exchange
        return None if exchange is None or self._finished else exchange.next_timer()

    def on_timer(self, now: float) -> None:
        exchange = self._exchange
        if exchange is None or self._finished:
            return
        at = exchange.next_timer()
        if at is not None and at <= now:
            try:
                exchange.timer(now)
                self._carry_out(now)
            except Exception as exc:  # a bug must end this lookup, not the driving thread
                self._finish(None, exc)

    def on_ready(self, channel: int, mask: int, now: float) -> None:
        """A socket of this job is readable or writable."""
        exchange = self._exchange
        sock = self._socks.get(channel)
        if exchange is None or sock is None:
            return
        try:
            stream = self._streams.get(channel)
            if stream is None:
                self._read_datagrams(exchange, channel, sock, now)
            else:
                self._on_stream(exchange, channel, sock, mask, stream, now)
            self._carry_out(now)
        except Exception as exc:  # a bug must end this lookup, not the driving thread
            self._finish(None, exc)

    def close(self) -> None:
        """Close every socket and end the plan; no callback."""
        self._finished = True
        for channel in list(self._socks):
            self._close_channel(channel)
        self.lookup.plan.close()

    def forget(self) -> None:
        """In a forked child: close this process's copies of the sockets only.

        The selector is the parent's (an epoll set is shared across fork), so nothing is
        unregistered, and nothing is shut down: the parent's connections go on.
        """
        self._finished = True
        for sock in self._socks.values():
            sock.close()
        self._socks.clear()
        self._streams.clear()

    # -- inside ----------------------------------------------------------------------------

    def _finish(self, value: T | None, error: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._exchange = None
        for channel in list(self._socks):
            self._close_channel(channel)
        self._done(value, error)

    def _advance(self, answers: Any, now: float) -> bool:
        """Hand *answers* to the plan (None starts it) and start the exchange of its next
        batch; False when the plan ended (its result or error is delivered) or that failed."""
        try:
            batch = self.lookup.plan.send(answers)
        except StopIteration as stop:
            self._finish(stop.value, None)
            return False
        except Exception as exc:
            self._finish(None, exc)
            return False
        return self._start_exchange(batch, now)

    def _start_exchange(self, batch: list[Any], now: float) -> bool:
        try:
            self._exchange = Exchange(batch, self.lookup.config, now=now, deadline=self._deadline)
        except Exception as exc:
            self._finish(None, exc)
            return False
        return True

    def _carry_out(self, now: float) -> None:
        """Do what the exchange asks; hand its answers to the plan when it is done."""
        while not self._finished and self._exchange is not None:
            exchange = self._exchange
            actions = exchange.take_actions()
            for action in actions:
                if isinstance(action, Send):
                    self._send(exchange, action.channel, action.data, now)
                elif isinstance(action, Open):
                    self._open(exchange, action, now)
                else:
                    self._close_channel(action.channel)
            if actions:
                continue
            if not exchange.done:
                return
            if not self._advance(exchange.answers(), now):
                return

    def _open(self, exchange: Exchange, action: Open, now: float) -> None:
        server = action.server
        family = socket.AF_INET6 if server.family == 6 else socket.AF_INET
        kind = socket.SOCK_STREAM if action.stream else socket.SOCK_DGRAM
        sock: socket.socket | None = None
        try:
            sock = socket.socket(family, kind)
            sock.setblocking(False)
            if action.stream:
                code = sock.connect_ex((server.host, server.port))
                if code not in (0, errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK):
                    raise OSError(code, os.strerror(code))
            else:
                # connect() makes the kernel drop datagrams from any other source.
                sock.connect((server.host, server.port))
        except OSError as exc:
            if sock is not None:
                sock.close()
            exchange.channel_failed(action.channel, _describe(exc), now)
            return
        self._socks[action.channel] = sock
        if action.stream:
            self._streams[action.channel] = (bytearray(), False)
            self._sel.register(sock, _WRITE, (self, action.channel))
        else:
            self._sel.register(sock, _READ, (self, action.channel))

    def _send(self, exchange: Exchange, channel: int, data: bytes, now: float) -> None:
        sock = self._socks.get(channel)
        if sock is None:
            return
        stream = self._streams.get(channel)
        if stream is not None:
            stream[0].extend(data)
            if stream[1]:
                self._flush(exchange, channel, sock, stream, now)
            return
        try:
            sock.send(data)
        except (BlockingIOError, InterruptedError):
            pass  # a full socket buffer is a lost datagram: the retransmission covers it
        except OSError as exc:
            exchange.channel_failed(channel, _describe(exc), now)

    def _flush(
        self,
        exchange: Exchange,
        channel: int,
        sock: socket.socket,
        stream: tuple[bytearray, bool],
        now: float,
    ) -> None:
        outbox = stream[0]
        if outbox:
            try:
                sent = sock.send(outbox[:_RECV_STREAM])
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as exc:
                exchange.channel_failed(channel, _describe(exc), now)
                return
            del outbox[:sent]
        self._sel.modify(sock, _READ | _WRITE if outbox else _READ, (self, channel))

    def _read_datagrams(self, exchange: Exchange, channel: int, sock: socket.socket, now: float) -> None:
        for _ in range(_DATAGRAM_BURST):
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # ECONNREFUSED: the port is closed (ICMP)
                exchange.channel_failed(channel, _describe(exc), now)
                return
            exchange.datagram_received(channel, data, now)
            if channel not in self._socks or exchange.done:
                return

    def _on_stream(
        self,
        exchange: Exchange,
        channel: int,
        sock: socket.socket,
        mask: int,
        stream: tuple[bytearray, bool],
        now: float,
    ) -> None:
        if not stream[1]:
            if not mask & _WRITE:
                return
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                exchange.channel_failed(channel, os.strerror(code), now)
                return
            stream = (stream[0], True)
            self._streams[channel] = stream
            self._sel.modify(sock, _READ, (self, channel))
            exchange.stream_opened(channel, now)
            self._carry_out(now)
            return
        if mask & _READ:
            try:
                data = sock.recv(_RECV_STREAM)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as exc:  # reset by the server
                exchange.channel_failed(channel, _describe(exc), now)
                return
            if data == b"":
                exchange.stream_closed(channel, now)
                return
            if data:
                exchange.stream_received(channel, data, now)
        if mask & _WRITE and channel in self._socks:
            self._flush(exchange, channel, sock, stream, now)

    def _close_channel(self, channel: int) -> None:
        sock = self._socks.pop(channel, None)
        self._streams.pop(channel, None)
        if sock is None:
            return
        try:
            self._sel.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()


def run_lookup(
    lookup: Lookup[T], *, interrupt: Interrupt | None = None, clock: Callable[[], float] = time.monotonic
) -> T:
    """Run *lookup* to its result, blocking the calling thread.

    Args:
        lookup: the plan and where to send its questions.
        interrupt: once set, the call ends early with :class:`ResolutionError`.
        clock: a monotonic clock in seconds.

    Raises:
        ResolutionError: every server failed, the budget ran out, or *interrupt* was set.
        ServiceNotFound: the name does not exist (NXDOMAIN).
    """
    outcome: list[tuple[T | None, BaseException | None]] = []
    with selectors.DefaultSelector() as sel:
        if interrupt is not None:
            sel.register(interrupt, _READ, None)
        job = Job(lookup, sel, lambda value, error: outcome.append((value, error)))
        try:
            job.begin(clock())
            while not outcome:
                if interrupt is not None and interrupt.is_set():
                    raise ResolutionError(f"resolving {lookup.name or 'a name'}: interrupted (closing)")
                at = job.next_timer()
                wait = None if at is None else min(max(at - clock(), 0.0), _MAX_WAIT)
                for key, mask in sel.select(wait):
                    if key.data is not None:
                        job.on_ready(key.data[1], mask, clock())
                job.on_timer(clock())
        finally:
            if not outcome:
                job.close()
    value, error = outcome[0]
    if error is not None:
        raise error
    return value  # type: ignore[return-value]


class Multiplexer:
    """Drive many lookups from one thread, over one selector.

    The owner thread calls :meth:`submit`, :meth:`cancel` and :meth:`poll` (in a loop,
    bounded by :meth:`next_deadline`); any thread may call :meth:`wake` to make a blocked
    :meth:`poll` return. Each lookup advances as its own answers arrive, so one slow or
    black-holed nameserver delays only the lookups waiting on it.

    Args:
        clock: a monotonic clock in seconds (the same one for every lookup).
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._jobs: dict[Job[Any], None] = {}
        self._finished: list[tuple[Job[Any], Done, Any, BaseException | None]] = []
        self._closed = False
        self._sel: selectors.BaseSelector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = self._wake_pair()

    def _wake_pair(self) -> tuple[socket.socket, socket.socket]:
        r, w = socket.socketpair()
        r.setblocking(False)
        w.setblocking(False)
        self._sel.register(r, _READ, None)
        return r, w

    def __repr__(self) -> str:
        return f"<Multiplexer: {len(self._jobs)} lookups{' closed' if self._closed else ''}>"

    def __enter__(self) -> Multiplexer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def submit(self, lookup: Lookup[T], done: Callable[[T | None, BaseException | None], None]) -> Job[T]:
        """Start *lookup*; ``done(result, None)`` or ``done(None, error)`` is called from a
        later :meth:`poll` (never from here). Owner thread only.

        Raises:
            HeadlessClientError: the multiplexer is closed.
        """
        if self._closed:
            raise HeadlessClientError("the Multiplexer is closed")
        job: Job[T] = Job(lookup, self._sel, lambda value, error: self._record(job, done, value, error))
        self._jobs[job] = None
        job.begin(self._clock())
        return job

    def _record(self, job: Job[Any], done: Done, value: Any, error: BaseException | None) -> None:
        self._jobs.pop(job, None)
        self._finished.append((job, done, value, error))

    def cancel(self, job: Job[Any]) -> None:
        """Stop *job*: its sockets close and its ``done`` is not called. Owner thread only."""
        if job in self._jobs:
            del self._jobs[job]
            job.close()
        self._finished = [f for f in self._finished if f[0] is not job]

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`poll` has work without I/O (a timer of a lookup in
        flight, or a result to deliver); ``None`` if only I/O can bring work."""
        if self._finished:
            return self._clock()
        at: float | None = None
        for job in self._jobs:
            t = job.next_timer()
            if t is not None and (at is None or t < at):
                at = t
        return at

    def poll(self, timeout: float | None) -> None:
        """One round: wait up to *timeout* seconds (``None``: until something happens) for
        I/O or :meth:`wake`, then handle what arrived and the timers that ran out, and call
        the ``done`` callbacks of finished lookups. A callback that raises is logged.
        Owner thread only.

        Raises:
            HeadlessClientError: the multiplexer is closed.
        """
        if self._closed:
            raise HeadlessClientError("the Multiplexer is closed")
        now = self._clock()
        wait = None if timeout is None else max(float(timeout), 0.0)
        at = self.next_deadline()
        if at is not None:
            until = max(at - now, 0.0)
            wait = until if wait is None else min(wait, until)
        if wait is not None:
            wait = min(wait, _MAX_WAIT)
        for key, mask in self._sel.select(wait):
            if key.data is None:
                self._drain_wake()
            else:
                job, channel = key.data
                if job in self._jobs:
                    job.on_ready(channel, mask, self._clock())
        now = self._clock()
        for job in list(self._jobs):
            job.on_timer(now)
        finished, self._finished = self._finished, []
        for job, done, value, error in finished:
            try:
                done(value, error)
            except Exception:
                log.exception(
                    "the done callback of %r raised", job,
                    extra={
                        "service": job.lookup.name or None, "pod": None, "address": None,
                        "reason": "callback_error",
                    },
                )

    def _drain_wake(self) -> None:
        for _ in range(64):
            try:
                if not self._wake_r.recv(4096):
                    return
            except OSError:
                return

    def wake(self) -> None:
        """Make a blocked :meth:`poll` return soon. Any thread; harmless after close."""
        try:
            self._wake_w.send(b"\0")
        except OSError:
            pass  # full (a wake-up is already pending) or closed

    def reset_after_fork(self) -> None:
        """In a forked child: let go of everything inherited, touching nothing of the parent.

        Closes only this process's copies of the sockets (never ``shutdown()``, which would
        cut the parent's connections), drops every lookup without calling its ``done``,
        and starts over with a fresh selector and wake-up pair. A closed multiplexer stays
        closed.
        """
        if self._closed:
            return
        for job in self._jobs:
            job.forget()
        self._jobs.clear()
        self._finished.clear()
        # Closing the inherited epoll descriptor unregisters nothing in the parent's set.
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = self._wake_pair()

    def close(self) -> None:
        """Cancel every lookup (no callbacks) and release the selector; idempotent."""
        if self._closed:
            return
        self._closed = True
        for job in list(self._jobs):
            job.close()
        self._jobs.clear()
        self._finished.clear()
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()

    def descriptor_count(self) -> int:
        """Open file descriptors held: sockets of lookups in flight, the wake-up pair and
        the selector's own (for leak checks)."""
        if self._closed:
            return 0
        own = 2
        try:
            self._sel.fileno()  # type: ignore[attr-defined]
            own += 1
        except (AttributeError, OSError):
            pass
        return own + sum(job.descriptors() for job in self._jobs)
