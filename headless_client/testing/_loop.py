"""The fake cluster's I/O: one selector thread serving DNS (UDP and TCP) and the pods.

Everything binds to loopback. The thread owns every socket; other threads change what it
serves only through :meth:`Loop.call`, which runs a function on the thread and waits for
it (bounded). Each wake-up handles a bounded burst of datagrams, accepts and bytes, and
every buffer is capped, so a misbehaving client cannot wedge the loop.
"""

from __future__ import annotations

import collections
import contextlib
import ipaddress
import logging
import selectors
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

from ._zone import respond

if TYPE_CHECKING:
    from ._zone import Zone

__all__ = ["Fault", "Listener", "Loop", "PodMode", "Protocol"]

log = logging.getLogger("headless_client.testing")

Protocol = Literal["tcp", "http"]
PodMode = Literal["serve", "refuse", "hang"]
Fault = Literal["servfail", "refused", "drop", "truncate", "unsynced"]

_BURST = 64  # datagrams or accepts handled per wake-up and socket
_MAX_INBOX = 1 << 16  # bytes buffered per connection before it is dropped
_MAX_OUTBOX = 1 << 22
_IDLE = 30.0  # seconds an idle connection is kept
_MAX_CONNECTIONS = 1024
_CALL_TIMEOUT = 5.0


def bind_listener(address: str, port: int, backlog: int = 128) -> socket.socket:
    """A non-blocking TCP listener on ``address:port`` (``port`` 0: a free one)."""
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(eq=False)
class Listener:
    """A serving pod: what the loop needs to answer for it."""

    key: tuple[str, str]  # (namespace, pod name)
    address: str
    port: int
    protocol: Protocol
    #: Reply to one request text (a line, or ``"GET /path"``): ``str``, ``(status, str)``
    #: or ``None`` for the default (the pod's name).
    reply: Callable[[Listener, str], str | tuple[int, str] | None]
    mode: PodMode = "serve"
    connections: int = 0
    requests: int = 0
    sock: socket.socket | None = None
    conns: set[_Conn] = field(default_factory=set)

    @property
    def name(self) -> str:
        return self.key[1]


@dataclass(eq=False)
class _Conn:
    sock: socket.socket
    kind: Literal["dns", "pod"]
    listener: Listener | None = None
    inbox: bytearray = field(default_factory=bytearray)
    outbox: bytearray = field(default_factory=bytearray)
    last: float = 0.0
    close_after_flush: bool = False
    answered: int = 0  # DNS questions answered on this connection
    half_closed: bool = False  # FIN sent, draining the client's input
    eof: bool = False  # the client closed its side


class Loop:
    """The server thread of one :class:`~headless_client.testing.FakeClusterDNS`."""

    def __init__(self, host: str, zone: Callable[[], Zone]) -> None:
        self.host = host
        self._zone = zone
        self.glue = True
        self.fault: Fault | None = None
        #: Questions answered per TCP connection before closing it (None: no cap).
        self.max_tcp_queries: int | None = None
        self.queries: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=10_000)
        self._sel = selectors.DefaultSelector()
        # Made by start(): a server constructed and dropped (or closed) unstarted holds no socket.
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._calls: list[tuple[Callable[[], object], threading.Event, list[object]]] = []
        self._calls_lock = threading.Lock()
        self._conns: set[_Conn] = set()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.udp: socket.socket | None = None
        self.tcp: socket.socket | None = None
        self.port = 0

    # -- lifecycle (caller's thread) --------------------------------------------------

    def start(self, port: int = 0, attempts: int = 20) -> None:
        """Bind UDP and TCP on one port of *host* and start the thread."""
        family = socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET
        last: OSError | None = None
        for _ in range(attempts):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.bind((self.host, port))
                chosen = udp.getsockname()[1]
                tcp = bind_listener(self.host, chosen)
            except OSError as exc:
                udp.close()
                last = exc
                if port:
                    break
                continue
            udp.setblocking(False)
            self.udp, self.tcp, self.port = udp, tcp, chosen
            break
        else:  # pragma: no cover - 20 ports in a row taken for TCP but free for UDP
            pass
        if self.udp is None or self.tcp is None:
            raise OSError(f"fake cluster DNS could not bind {self.host}:{port or '<free port>'}: {last}")
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._sel.register(self.udp, selectors.EVENT_READ, "udp")
        self._sel.register(self.tcp, selectors.EVENT_READ, "tcp")
        self._thread = threading.Thread(target=self._run, name="fake-cluster-dns", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = _CALL_TIMEOUT) -> None:
        """Close every socket and stop the thread (bounded by *timeout*)."""
        thread = self._thread
        if thread is None:
            self._sel.close()  # never started (or already stopped): nothing else is open
            return
        self._stopping = True
        self._wake()
        if thread is not threading.current_thread():
            thread.join(timeout)
        self._thread = None
        if thread.is_alive():  # pragma: no cover - the loop wakes at least every second
            log.warning(
                "fake cluster DNS thread did not stop within %ss", timeout,
                extra={"service": None, "pod": None, "address": None, "reason": "fake_dns"},
            )
            return
        self._shutdown()

    def _shutdown(self) -> None:
        for conn in list(self._conns):
            self._drop(conn)
        for key in list(self._sel.get_map().values()):
            if isinstance(key.data, Listener):
                self._close_listener(key.data)
        for sock in (self.udp, self.tcp):
            if sock is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(sock)
                sock.close()
        self._sel.close()
        self._close_wakers()

    def _close_wakers(self) -> None:
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")

    def call(self, fn: Callable[[], object], timeout: float = _CALL_TIMEOUT) -> object:
        """Run *fn* on the loop thread and return its result (re-raising its error)."""
        if self._thread is None or self._stopping:
            raise RuntimeError("the fake cluster is not running (use it as a context manager)")
        if threading.current_thread() is self._thread:
            return fn()
        done = threading.Event()
        outcome: list[object] = []
        with self._calls_lock:
            self._calls.append((fn, done, outcome))
        self._wake()
        if not done.wait(timeout):
            raise TimeoutError(f"fake cluster loop did not run a call within {timeout}s")
        result = outcome[0]
        if isinstance(result, _Raised):
            raise result.error
        return result

    # -- pods (loop thread, through call) ---------------------------------------------

    def set_mode(self, listener: Listener, mode: PodMode) -> None:
        """Serve, refuse (listener closed, connections reset) or hang (accept, stay mute)."""
        if mode == "refuse":
            self._close_listener(listener)
            for conn in list(listener.conns):
                self._drop(conn, reset=True)
        elif listener.sock is None:
            sock = bind_listener(listener.address, listener.port)
            listener.port = sock.getsockname()[1]
            listener.sock = sock
            self._sel.register(sock, selectors.EVENT_READ, listener)
        listener.mode = mode

    def _close_listener(self, listener: Listener) -> None:
        if listener.sock is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(listener.sock)
            listener.sock.close()
            listener.sock = None

    # -- the thread ------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while not self._stopping:
                for key, mask in self._sel.select(timeout=1.0):
                    self._dispatch(key.data, mask)
                self._run_calls()
                self._expire(time.monotonic())
        except Exception:  # pragma: no cover - a bug here must not hang the tests silently
            log.exception(
                "fake cluster DNS loop crashed",
                extra={"service": None, "pod": None, "address": None, "reason": "fake_dns"},
            )
        finally:
            self._run_calls()

    def _run_calls(self) -> None:
        with self._calls_lock:
            calls, self._calls = self._calls, []
        for fn, done, outcome in calls:
            try:
                outcome.append(fn())
            except BaseException as exc:
                outcome.append(_Raised(exc))
            done.set()

    def _dispatch(self, data: object, mask: int) -> None:
        if data == "wake":
            assert self._wake_r is not None
            with contextlib.suppress(OSError):
                self._wake_r.recv(4096)
        elif data == "udp":
            self._datagrams()
        elif data == "tcp":
            assert self.tcp is not None
            self._accept(self.tcp, None)
        elif isinstance(data, Listener):
            if data.sock is not None:
                self._accept(data.sock, data)
        elif isinstance(data, _Conn):
            self._io(data, mask)

    def _expire(self, now: float) -> None:
        for conn in [c for c in self._conns if now - c.last > _IDLE]:
            self._drop(conn)

    # -- DNS ---------------------------------------------------------------------------

    def _answer(self, wire: bytes, transport: str) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError, IndexError, UnicodeError):
            return None  # noise: a real server would drop it too
        if query.question:
            q = query.question[0]
            self.queries.append((q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype), transport))
        fault = self.fault
        if fault == "drop":
            return None
        if fault in ("servfail", "refused"):
            rcode = dns.rcode.SERVFAIL if fault == "servfail" else dns.rcode.REFUSED
            return respond(self._zone(), query, max_size=None, rcode=rcode)
        synced = fault != "unsynced"
        if transport == "udp":
            limit = query.payload if query.edns >= 0 else 512
            return respond(self._zone(), query, max_size=limit, glue=self.glue, synced=synced)
        return respond(self._zone(), query, max_size=None, glue=self.glue, synced=synced)

    def _datagrams(self) -> None:
        udp = self.udp
        assert udp is not None
        for _ in range(_BURST):
            try:
                wire, peer = udp.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # ICMP errors surfacing on the socket: ignore
                continue
            answer = self._answer(wire, "udp")
            if answer is not None:
                if self.fault == "truncate":
                    answer = _force_tc(answer)
                with contextlib.suppress(OSError):
                    udp.sendto(answer, peer)

    # -- connections -----------------------------------------------------------------------

    def _accept(self, sock: socket.socket, listener: Listener | None) -> None:
        for _ in range(_BURST):
            try:
                client, _ = sock.accept()
            except OSError:  # BlockingIOError: nothing more
                return
            if len(self._conns) >= _MAX_CONNECTIONS:
                client.close()
                continue
            client.setblocking(False)
            conn = _Conn(client, "dns" if listener is None else "pod", listener, last=time.monotonic())
            self._conns.add(conn)
            events = selectors.EVENT_READ
            if listener is not None:
                listener.conns.add(conn)
                listener.connections += 1
                if listener.mode == "serve" and listener.protocol == "tcp":
                    conn.outbox += f"{listener.name}\n".encode()
                    events |= selectors.EVENT_WRITE
            self._sel.register(client, events, conn)

    def _io(self, conn: _Conn, mask: int) -> None:
        conn.last = time.monotonic()
        if mask & selectors.EVENT_READ:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._drop(conn)
                return
            if data == b"":
                conn.eof = True
                if not conn.outbox:
                    self._drop(conn)
                    return
                conn.close_after_flush = True
            elif data:
                if conn.listener is not None and conn.listener.mode == "hang":
                    data = b""  # a stuck process reads nothing useful and answers nothing
                conn.inbox += data
                if len(conn.inbox) > _MAX_INBOX or len(conn.outbox) > _MAX_OUTBOX:
                    self._drop(conn)
                    return
                if conn.kind == "dns":
                    self._dns_stream(conn)
                elif conn.listener is not None and conn.listener.protocol == "tcp":
                    self._lines(conn, conn.listener)
                elif conn.listener is not None:
                    self._http(conn, conn.listener)
        if conn.outbox:
            try:
                sent = conn.sock.send(conn.outbox)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(conn)
                return
            del conn.outbox[:sent]
        if not conn.outbox and conn.close_after_flush:
            if conn.kind == "dns" and not conn.eof and not conn.half_closed:
                # A capped DNS connection: send FIN and read (and drop) what the client
                # still sends until it closes, so no reset destroys answers in flight.
                conn.half_closed = True
                with contextlib.suppress(OSError):
                    conn.sock.shutdown(socket.SHUT_WR)
            elif not conn.half_closed or conn.eof:
                self._drop(conn)
                return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.outbox else 0)
        if self._sel.get_key(conn.sock).events != events:
            self._sel.modify(conn.sock, events, conn)

    def _dns_stream(self, conn: _Conn) -> None:
        inbox = conn.inbox
        if conn.close_after_flush:  # capped: closing, nothing more is answered
            inbox.clear()
            return
        offset = 0
        while len(inbox) - offset >= 2:  # bounded by the (capped) inbox
            size = int.from_bytes(inbox[offset : offset + 2], "big")
            if len(inbox) - offset - 2 < size:
                break
            wire = bytes(inbox[offset + 2 : offset + 2 + size])
            offset += 2 + size
            answer = self._answer(wire, "tcp")
            if answer is not None:
                conn.outbox += len(answer).to_bytes(2, "big") + answer
            conn.answered += 1
            cap = self.max_tcp_queries
            if cap is not None and conn.answered >= cap:
                # Like miekg/dns's maxTCPQueries: close after N; the rest is never answered.
                conn.close_after_flush = True
                inbox.clear()
                return
        del inbox[:offset]

    def _reply(self, listener: Listener, request: str) -> tuple[int, str]:
        listener.requests += 1
        try:
            out = listener.reply(listener, request)
        except Exception:
            log.exception(
                "fake pod %s: handler failed for %r", listener.name, request,
                extra={"service": None, "pod": listener.name, "address": None, "reason": "fake_pod"},
            )
            return 500, "handler error"
        if out is None:
            return 200, listener.name
        if isinstance(out, tuple):
            return out
        return 200, out

    def _lines(self, conn: _Conn, listener: Listener) -> None:
        while listener.mode == "serve":  # bounded by the inbox's lines
            end = conn.inbox.find(b"\n")
            if end < 0:
                return
            line = conn.inbox[:end].decode("utf-8", "replace").rstrip("\r")
            del conn.inbox[: end + 1]
            _, text = self._reply(listener, line)
            conn.outbox += text.encode("utf-8") + b"\n"

    def _http(self, conn: _Conn, listener: Listener) -> None:
        while listener.mode == "serve" and not conn.close_after_flush:
            end = conn.inbox.find(b"\r\n\r\n")
            if end < 0:
                return
            head = conn.inbox[:end].decode("latin-1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ")
            headers: dict[str, str] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            if len(parts) != 3 or "transfer-encoding" in headers:
                status = 400 if len(parts) != 3 else 501
                conn.outbox += _http_response(status, "unsupported", listener, "", True)
                conn.close_after_flush = True
                return
            try:
                length = int(headers.get("content-length", "0"))
            except ValueError:
                length = -1
            if length < 0 or length > _MAX_INBOX:
                conn.outbox += _http_response(400, "bad content-length", listener, "", True)
                conn.close_after_flush = True
                return
            if len(conn.inbox) < end + 4 + length:
                return
            del conn.inbox[: end + 4 + length]
            method, target, version = parts
            close = headers.get("connection", "").lower() == "close" or version == "HTTP/1.0"
            status, body = self._reply(listener, f"{method} {target}")
            conn.outbox += _http_response(
                status, body, listener, headers.get("host", ""), close, head_only=method == "HEAD"
            )
            if close:
                conn.close_after_flush = True

    def _drop(self, conn: _Conn, *, reset: bool = False) -> None:
        self._conns.discard(conn)
        if conn.listener is not None:
            conn.listener.conns.discard(conn)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        if reset:
            # SO_LINGER 0: the peer sees a reset, like a killed process's socket.
            with contextlib.suppress(OSError):
                conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()

    def close_listener(self, listener: Listener) -> None:
        """Stop serving *listener* for good (loop thread)."""
        self.set_mode(listener, "refuse")


class _Raised:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error",
            501: "Not Implemented", 503: "Service Unavailable"}


def _http_response(
    status: int, body: str, listener: Listener, host: str, close: bool, *, head_only: bool = False
) -> bytes:
    payload = body.encode("utf-8")
    reason = _REASONS.get(status, "Status")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(payload)}\r\n"
        f"X-Pod: {listener.name}\r\n"
        f"X-Request-Host: {host}\r\n"
        f"Connection: {'close' if close else 'keep-alive'}\r\n\r\n"
    )
    return head.encode("latin-1") + (b"" if head_only else payload)


def _force_tc(answer: bytes) -> bytes:
    """*answer* with TC set and no records: the "always truncated" fault."""
    try:
        message = dns.message.from_wire(answer)
    except dns.exception.DNSException:  # pragma: no cover - we built it
        return answer
    message.answer.clear()
    message.authority.clear()
    message.additional.clear()
    message.flags |= 0x0200
    return message.to_wire()
