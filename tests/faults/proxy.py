"""FaultProxy: a loopback DNS proxy (UDP and TCP) that injects faults on the way.

Put it between the library and the BIND9 test ground::

    with FaultProxy(("127.0.0.1", bind.port)) as proxy:
        resolver = hc.Resolver([proxy.nameserver], timeout=1)
        proxy.set(drop=0.3)               # 30 % of datagrams lost, each direction
        with proxy.applied(blackhole=True):
            ...                           # DNS is down inside the block
        proxy.wait_until(lambda s: s["blackholed"] >= 1, timeout=5)

Faults (a frozen :class:`Faults`, replaced atomically by :meth:`FaultProxy.set`) are read
when a query arrives and again when its answer comes back, so a change applies at once to
traffic in flight. Everything runs on one selector thread; every loop in it is bounded by
a stop event, per-wakeup burst limits, timeouts on every flight and connection, and a
hard ``max_lifetime`` after which the proxy closes itself. Loopback only: the proxy
refuses to listen on, or forward to, anything else.
"""

from __future__ import annotations

import contextlib
import errno
import heapq
import ipaddress
import itertools
import random
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from types import TracebackType
from typing import Any

from tests.faults.packets import (
    MALFORMED_KINDS,
    MAX_TCP,
    MAX_UDP,
    Query,
    garbage_body,
    malformed,
    noise,
    oversized,
    parse_query,
    rcode_answer,
    truncated,
    with_wrong_id,
    with_wrong_question,
)

__all__ = ["REFUSED", "SERVFAIL", "FaultProxy", "Faults", "ProxyError"]

SERVFAIL = 2
REFUSED = 5

Transform = Callable[[bytes], "bytes | None"]


class ProxyError(RuntimeError):
    """The proxy could not start, or its thread did not stop."""


@dataclass(frozen=True)
class Faults:
    """What the proxy does to traffic. The default passes everything through untouched.

    Attributes:
        drop: share of UDP datagrams lost, in each direction independently (queries
            and answers), like packet loss. TCP is reliable: its frames are not dropped.
        delay: seconds each answer is held back (UDP and TCP).
        rcode: answer every query at once with this rcode (2 SERVFAIL, 5 REFUSED),
            without asking the server.
        truncate: UDP answers come back empty with TC set, and TCP connections are
            closed as soon as they are accepted ("retry over TCP", with no TCP service).
        wrong_id: answers carry another message ID (so none is ever accepted).
        wrong_question: answers echo another question name.
        spoof_first: a forged copy with a wrong ID, and one with a wrong question, is
            sent just before each real answer (the real one must still be used).
        garbage: answers keep the ID and question, then random counts and bytes.
        noise: answers are random bytes.
        oversized: answers carry this many well-formed records of the asked type
            (as many as fit in one message: about 4000 A records), synthesised.
        malformed: answers are broken in this way (see :data:`MALFORMED_KINDS`).
        blackhole: nothing is answered, over UDP or TCP (TCP connects still complete).
        tcp: ``"serve"``, ``"close"`` (accept then close at once), ``"hang"`` (accept,
            read and never answer) or ``"refuse"`` (no TCP listener: connects are refused,
            as with a NetworkPolicy that allows DNS over UDP only).
        tcp_max_questions: a TCP connection is closed once it has answered this many
            questions, and questions past the cap on it are never answered, like miekg/dns
            servers (CoreDNS before 1.10.1: 128; ``maxtcpqueries``). 0: no cap.
        tcp_truncate: TCP answers come back with TC set (records kept), as a server does
            for an answer that does not fit in 64 KiB.
        transform: ``f(answer) -> answer`` applied to every real answer (``None`` drops
            it): for surgical rewrites such as planting a foreign SRV target.
    """

    drop: float = 0.0
    delay: float = 0.0
    rcode: int | None = None
    truncate: bool = False
    wrong_id: bool = False
    wrong_question: bool = False
    spoof_first: bool = False
    garbage: bool = False
    noise: bool = False
    oversized: int = 0
    malformed: str | None = None
    blackhole: bool = False
    tcp: str = "serve"
    tcp_max_questions: int = 0
    tcp_truncate: bool = False
    transform: Transform | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop <= 1.0:
            raise ValueError(f"drop must be a share in [0, 1]: {self.drop!r}")
        if not 0.0 <= self.delay <= 30.0:
            raise ValueError(f"delay must be in [0, 30] seconds: {self.delay!r}")
        if self.rcode is not None and not 0 < self.rcode < 16:
            raise ValueError(f"rcode must be in 1..15: {self.rcode!r}")
        if self.malformed is not None and self.malformed not in MALFORMED_KINDS:
            raise ValueError(f"malformed must be one of {MALFORMED_KINDS}: {self.malformed!r}")
        if self.tcp not in ("serve", "close", "hang", "refuse"):
            raise ValueError(f"tcp must be 'serve', 'close', 'hang' or 'refuse': {self.tcp!r}")
        if self.tcp_max_questions < 0:
            raise ValueError(f"tcp_max_questions must be >= 0: {self.tcp_max_questions!r}")
        if self.oversized < 0:
            raise ValueError(f"oversized must be >= 0: {self.oversized!r}")

    @property
    def synthesised(self) -> bool:
        """True if answers are made up by the proxy instead of asked of the server."""
        return bool(
            self.rcode is not None or self.truncate or self.garbage or self.noise
            or self.oversized or self.malformed
        )  # fmt: skip

    def describe(self) -> str:
        """The non-default settings, for messages and figures."""
        default = Faults()
        parts = [
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        ]
        return ", ".join(parts) or "pass-through"


def _check_loopback(host: str, what: str) -> None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ProxyError(f"{what} {host!r} is not an IP address") from None
    if not ip.is_loopback:
        raise ProxyError(f"{what} {host!r} is not a loopback address: tests talk to loopback only")


class FaultProxy:
    """A UDP+TCP DNS proxy on loopback that forwards to *upstream* and injects faults.

    Args:
        upstream: ``(host, port)`` or ``"host:port"`` of the real server (loopback).
        host: where to listen (loopback); ``port`` 0 picks one free for UDP and TCP.
        seed: seeds the random choices (drops, garbage), for reproducible runs.
        max_lifetime: seconds after which the proxy stops by itself, whatever happens.
        flight_timeout: seconds an upstream UDP query waits for its answer.
        idle_timeout: seconds a silent TCP connection is kept.
        max_flights, max_clients: bounds on UDP queries in flight and TCP connections.
    """

    def __init__(
        self,
        upstream: tuple[str, int] | str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int | None = 0,
        max_lifetime: float = 600.0,
        flight_timeout: float = 5.0,
        idle_timeout: float = 30.0,
        max_flights: int = 4096,
        max_clients: int = 256,
    ) -> None:
        if isinstance(upstream, str):
            up_host, _, up_port = upstream.rpartition(":")
            upstream = (up_host, int(up_port))
        _check_loopback(upstream[0], "upstream")
        _check_loopback(host, "listen address")
        self.upstream: tuple[str, int] = upstream
        self.host = host
        self.max_lifetime = max_lifetime
        self.flight_timeout = flight_timeout
        self.idle_timeout = idle_timeout
        self.max_flights = max_flights
        self.max_clients = max_clients
        self._faults = Faults()
        self._rng = random.Random(seed)
        self._cond = threading.Condition()
        self._stats: Counter[str] = Counter()
        self.errors: list[BaseException] = []
        """Unexpected exceptions inside the proxy loop (a test may assert it is empty)."""
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = itertools.count()
        self._flights: set[_UdpFlight] = set()
        self._clients: set[_TcpClient] = set()
        self._stop = threading.Event()
        # Listener switches asked for by set(), done by the loop thread.
        self._requests: list[threading.Event] = []
        self.expired = False
        """True if the proxy stopped because ``max_lifetime`` ran out."""
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._udp, tcp = self._listen(host, port)
        self._tcp: socket.socket | None = tcp
        self.port: int = self._udp.getsockname()[1]
        for sock in (self._wake_r, self._wake_w, self._udp, self._tcp):
            sock.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._on_wake)
        self._sel.register(self._udp, selectors.EVENT_READ, self._on_udp)
        self._sel.register(self._tcp, selectors.EVENT_READ, self._on_accept)
        self._born = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"fault-proxy:{self.port}", daemon=True)
        self._thread.start()

    @staticmethod
    def _listen(host: str, port: int) -> tuple[socket.socket, socket.socket]:
        """A UDP socket and a TCP listener on the same port (retrying for port 0)."""
        for _ in range(20 if port == 0 else 1):
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((host, port))
                udp.bind((host, tcp.getsockname()[1]))
                tcp.listen(64)
            except OSError:
                tcp.close()
                udp.close()
                continue
            return udp, tcp
        raise ProxyError(f"no port free for UDP and TCP on {host} (asked for {port})")

    # -- configuration ---------------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:PORT``, as ``hc.Resolver(nameservers=[...])`` takes it."""
        return f"{self.host}:{self.port}"

    @property
    def faults(self) -> Faults:
        return self._faults

    def set(self, faults: Faults | None = None, /, **changes: Any) -> Faults:
        """Replace the faults: a whole :class:`Faults`, or changes to the current ones.
        Returns the previous faults."""
        previous = self._faults
        base = faults if faults is not None else previous
        self._faults = replace(base, **changes) if changes else base
        self._sync_listener()
        return previous

    def _sync_listener(self, timeout: float = 5.0) -> None:
        """Close or reopen the TCP listener for ``tcp="refuse"`` before returning, so a
        connect made right after :meth:`set` sees the new state."""
        refuse = self._faults.tcp == "refuse"
        if refuse == (self._tcp is None) or not self.running:
            return
        done = threading.Event()
        self._requests.append(done)
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if not done.wait(timeout):
            raise ProxyError(f"fault proxy on {self.nameserver} did not switch its TCP listener in {timeout}s")

    def reset(self) -> None:
        """Back to pass-through."""
        self._faults = Faults()
        self._sync_listener()

    @contextlib.contextmanager
    def applied(self, faults: Faults | None = None, /, **changes: Any) -> Iterator[FaultProxy]:
        """``with proxy.applied(blackhole=True):`` the faults hold inside the block only."""
        previous = self.set(faults, **changes)
        try:
            yield self
        finally:
            self._faults = previous
            self._sync_listener()

    # -- statistics -----------------------------------------------------------------------

    @property
    def stats(self) -> Counter[str]:
        """A copy of the counters: udp_queries, tcp_queries, forwarded, answered,
        dropped_queries, dropped_answers, blackholed, synthesised, spoofed, delayed,
        tcp_connections, tcp_closed, timed_out, overflow, over_cap (TCP questions past
        tcp_max_questions), capped_connections, tcp_truncated, query_bytes and
        answer_bytes (DNS messages received and sent, without TCP length prefixes)."""
        with self._cond:
            return Counter(self._stats)

    def wait_until(self, predicate: Callable[[Mapping[str, int]], bool], timeout: float) -> Counter[str]:
        """Block until ``predicate(stats)`` holds; raise :class:`TimeoutError` after *timeout*."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self._stats):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"proxy stats {dict(self._stats)} did not satisfy the wait in {timeout}s")
                self._cond.wait(left)
            return Counter(self._stats)

    def _count(self, key: str, n: int = 1) -> None:
        with self._cond:
            self._stats[key] += n
            self._cond.notify_all()

    # -- lifecycle ----------------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and close every socket (bounded); harmless to call twice."""
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise ProxyError(f"fault proxy on {self.nameserver} did not stop within {timeout}s")

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- the loop ------------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                end = self._born + self.max_lifetime
                if now >= end:
                    self.expired = True
                    break
                wait = min(0.1, end - now)
                if self._timers:
                    wait = max(0.0, min(wait, self._timers[0][0] - now))
                for key, mask in self._sel.select(wait):
                    self._guard(key.data, mask)
                self._run_timers()
                self._reap()
        finally:
            self._shutdown()

    def _guard(self, handler: Callable[[int], None], mask: int) -> None:
        try:
            handler(mask)
        except Exception as exc:  # keep serving; the test can inspect proxy.errors
            if len(self.errors) < 100:
                self.errors.append(exc)

    def _later(self, delay: float, fn: Callable[[], None]) -> None:
        if delay <= 0:
            fn()
            return
        self._count("delayed")
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._seq), fn))

    def _run_timers(self) -> None:
        now = time.monotonic()
        for _ in range(10_000):  # bounded burst
            if not self._timers or self._timers[0][0] > now:
                return
            _, _, fn = heapq.heappop(self._timers)
            try:
                fn()
            except Exception as exc:
                if len(self.errors) < 100:
                    self.errors.append(exc)

    def _reap(self) -> None:
        now = time.monotonic()
        for flight in [f for f in self._flights if f.expires <= now]:
            self._count("timed_out")
            flight.close()
        for client in [c for c in self._clients if now - c.last_activity > self.idle_timeout]:
            client.close()

    def _shutdown(self) -> None:
        for flight in list(self._flights):
            flight.close()
        for client in list(self._clients):
            client.close()
        self._timers.clear()
        self._sel.close()
        for sock in (self._udp, self._tcp, self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _on_wake(self, mask: int) -> None:
        with contextlib.suppress(OSError):
            self._wake_r.recv(4096)
        while self._requests:
            done = self._requests.pop()
            try:
                self._switch_listener()
            finally:
                done.set()

    def _switch_listener(self) -> None:
        refuse = self._faults.tcp == "refuse"
        if refuse and self._tcp is not None:
            self._sel.unregister(self._tcp)
            self._tcp.close()
            self._tcp = None
        elif not refuse and self._tcp is None:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((self.host, self.port))
                tcp.listen(64)
                tcp.setblocking(False)
            except OSError:
                tcp.close()
                raise
            self._tcp = tcp
            self._sel.register(tcp, selectors.EVENT_READ, self._on_accept)

    # -- answers ------------------------------------------------------------------------------

    def _synthesise(self, query: Query | None, faults: Faults, max_size: int) -> bytes | None:
        if query is None or not faults.synthesised:
            return None
        self._count("synthesised")
        if faults.rcode is not None:
            return rcode_answer(query, faults.rcode)
        if faults.truncate:
            return truncated(query)
        if faults.garbage:
            return garbage_body(query, self._rng)
        if faults.noise:
            return noise(self._rng)
        if faults.oversized:
            return oversized(query, faults.oversized, max_size=max_size)
        assert faults.malformed is not None
        return malformed(query, faults.malformed)

    def _deliver(self, answer: bytes, faults: Faults, send: Callable[[bytes], None], *, real: bool) -> None:
        """Apply the answer-side faults to *answer* and send it (after the delay)."""
        if real and faults.transform is not None:
            transformed = faults.transform(answer)
            if transformed is None:
                self._count("dropped_answers")
                return
            answer = transformed
        if faults.wrong_id:
            answer = with_wrong_id(answer)
        if faults.wrong_question:
            answer = with_wrong_question(answer)
        out = [answer]
        if faults.spoof_first:
            out = [with_wrong_id(answer), with_wrong_question(answer), answer]
            self._count("spoofed", 2)

        def send_all() -> None:
            if self._faults.blackhole:  # DNS went down while the answer was held
                self._count("blackholed")
                return
            for data in out:
                send(data)
                self._count("answer_bytes", len(data))
            self._count("answered")

        self._later(faults.delay, send_all)

    # -- UDP -------------------------------------------------------------------------------------

    def _on_udp(self, mask: int) -> None:
        for _ in range(64):  # bounded burst per wakeup
            try:
                data, addr = self._udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            self._udp_query(data, addr)

    def _udp_query(self, data: bytes, addr: tuple[str, int]) -> None:
        faults = self._faults
        self._count("udp_queries")
        self._count("query_bytes", len(data))
        if faults.blackhole:
            self._count("blackholed")
            return
        if faults.drop and self._rng.random() < faults.drop:
            self._count("dropped_queries")
            return

        def reply(answer: bytes) -> None:
            with contextlib.suppress(OSError):
                self._udp.sendto(answer, addr)

        synthetic = self._synthesise(parse_query(data), faults, MAX_UDP)
        if synthetic is not None:
            self._udp_answer(synthetic, reply, real=False)
            return
        if len(self._flights) >= self.max_flights:
            self._count("overflow")
            return
        up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            up.setblocking(False)
            up.connect(self.upstream)
            up.send(data)
        except OSError:
            up.close()
            self._count("upstream_errors")
            return
        flight = _UdpFlight(self, up, reply, time.monotonic() + self.flight_timeout)
        self._flights.add(flight)
        self._sel.register(up, selectors.EVENT_READ, flight.on_event)
        self._count("forwarded")

    def _udp_answer(self, answer: bytes, reply: Callable[[bytes], None], *, real: bool) -> None:
        faults = self._faults
        if faults.blackhole:
            self._count("blackholed")
            return
        if faults.drop and self._rng.random() < faults.drop:
            self._count("dropped_answers")
            return
        self._deliver(answer, faults, reply, real=real)

    # -- TCP -------------------------------------------------------------------------------------

    def _on_accept(self, mask: int) -> None:
        for _ in range(16):
            if self._tcp is None:
                return
            try:
                sock, _ = self._tcp.accept()
            except OSError:  # BlockingIOError: nothing more to accept
                return
            faults = self._faults
            self._count("tcp_connections")
            if faults.truncate or faults.tcp == "close" or len(self._clients) >= self.max_clients:
                self._count("tcp_closed")
                sock.close()
                continue
            sock.setblocking(False)
            client = _TcpClient(self, sock)
            self._clients.add(client)
            self._sel.register(sock, selectors.EVENT_READ, client.on_event)

    def _tcp_query(self, client: _TcpClient, frame: bytes) -> None:
        faults = self._faults
        self._count("tcp_queries")
        self._count("query_bytes", len(frame))
        client.questions += 1
        if faults.tcp_max_questions and client.questions > faults.tcp_max_questions:
            self._count("over_cap")  # a capped server never reads past its cap
            return
        if faults.blackhole or faults.tcp == "hang":
            self._count("blackholed")
            return
        synthetic = self._synthesise(parse_query(frame), faults, MAX_TCP)
        if synthetic is not None:
            self._deliver(synthetic, faults, client.send_frame, real=False)
            return
        client.forward(frame)
        self._count("forwarded")

    def _tcp_answer(self, client: _TcpClient, answer: bytes) -> None:
        faults = self._faults
        if faults.blackhole or faults.tcp == "hang":
            self._count("blackholed")
            return
        if faults.tcp_truncate and len(answer) >= 4:
            answer = answer[:2] + bytes([answer[2] | 0x02]) + answer[3:]
            self._count("tcp_truncated")
        self._deliver(answer, faults, client.send_frame, real=True)


class _UdpFlight:
    """One query forwarded to the server over its own UDP socket, waiting for the answer."""

    def __init__(self, proxy: FaultProxy, sock: socket.socket, reply: Callable[[bytes], None], expires: float):
        self.proxy = proxy
        self.sock = sock
        self.reply = reply
        self.expires = expires
        self.closed = False

    def on_event(self, mask: int) -> None:
        try:
            answer = self.sock.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. ECONNREFUSED: the server is down
            self.proxy._count("upstream_errors")
            self.close()
            return
        self.close()
        self.proxy._udp_answer(answer, self.reply, real=True)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy._flights.discard(self)
        with contextlib.suppress(KeyError, ValueError):
            self.proxy._sel.unregister(self.sock)
        self.sock.close()


_MAX_BUFFER = 1 << 20


class _TcpClient:
    """One client TCP connection, and its own upstream connection (opened on demand)."""

    def __init__(self, proxy: FaultProxy, sock: socket.socket) -> None:
        self.proxy = proxy
        self.sock = sock
        self.inbox = bytearray()
        self.outbox = bytearray()
        self.up: socket.socket | None = None
        self.up_in = bytearray()
        self.up_out = bytearray()
        self.closed = False
        self.last_activity = time.monotonic()
        self.questions = 0
        self.answers = 0
        self.closing = False

    # client side
    def on_event(self, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = self.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.close()
                return
            if data == b"":
                self.close()
                return
            if data:
                self.last_activity = time.monotonic()
                self.inbox += data
                if len(self.inbox) > _MAX_BUFFER:
                    self.close()
                    return
                for frame in _frames(self.inbox):
                    self.proxy._tcp_query(self, frame)
                    if self.closed:
                        return
        if mask & selectors.EVENT_WRITE:
            self._flush()

    def send_frame(self, data: bytes) -> None:
        if self.closed or self.closing:
            return
        if len(data) > MAX_TCP:
            self.proxy._count("too_big")
            return
        self.outbox += len(data).to_bytes(2, "big") + data
        self.answers += 1
        cap = self.proxy.faults.tcp_max_questions
        if cap and self.answers >= cap:
            # Like miekg/dns: after the last allowed answer, the connection is closed.
            self.closing = True
            self.proxy._count("capped_connections")
        self._flush()

    def _flush(self) -> None:
        if self.closed:
            return
        if self.outbox:
            try:
                sent = self.sock.send(self.outbox)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.close()
                return
            del self.outbox[:sent]
        if self.closing and not self.outbox:
            self.close()
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.outbox else 0)
        with contextlib.suppress(KeyError, ValueError):
            if self.proxy._sel.get_key(self.sock).events != events:
                self.proxy._sel.modify(self.sock, events, self.on_event)

    # upstream side
    def forward(self, frame: bytes) -> None:
        if self.up is None:
            up = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            up.setblocking(False)
            code = up.connect_ex(self.proxy.upstream)
            if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
                up.close()
                self.proxy._count("upstream_errors")
                self.close()
                return
            self.up = up
            self.proxy._sel.register(up, selectors.EVENT_READ | selectors.EVENT_WRITE, self.on_upstream)
        self.up_out += len(frame).to_bytes(2, "big") + frame
        self._set_upstream_events()

    def on_upstream(self, mask: int) -> None:
        up = self.up
        if up is None:
            return
        if mask & selectors.EVENT_WRITE and self.up_out:
            try:
                sent = up.send(self.up_out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.proxy._count("upstream_errors")
                self.close()
                return
            del self.up_out[:sent]
        if mask & selectors.EVENT_READ:
            try:
                data = up.recv(262144)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self.proxy._count("upstream_errors")
                self.close()
                return
            if data == b"":
                self.close()
                return
            if data:
                self.last_activity = time.monotonic()
                self.up_in += data
                if len(self.up_in) > _MAX_BUFFER:
                    self.close()
                    return
                for frame in _frames(self.up_in):
                    self.proxy._tcp_answer(self, frame)
                    if self.closed:
                        return
        self._set_upstream_events()

    def _set_upstream_events(self) -> None:
        if self.up is None or self.closed:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self.up_out else 0)
        with contextlib.suppress(KeyError, ValueError):
            if self.proxy._sel.get_key(self.up).events != events:
                self.proxy._sel.modify(self.up, events, self.on_upstream)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy._clients.discard(self)
        for sock in (self.sock, self.up):
            if sock is None:
                continue
            with contextlib.suppress(KeyError, ValueError):
                self.proxy._sel.unregister(sock)
            sock.close()


def _frames(buffer: bytearray) -> list[bytes]:
    """Take every complete length-prefixed message off the front of *buffer*."""
    out: list[bytes] = []
    offset = 0
    while len(buffer) - offset >= 2:
        size = int.from_bytes(buffer[offset : offset + 2], "big")
        if len(buffer) - offset - 2 < size:
            break
        out.append(bytes(buffer[offset + 2 : offset + 2 + size]))
        offset += 2 + size
    del buffer[:offset]
    return out
