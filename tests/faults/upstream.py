"""A tiny static DNS server on loopback (UDP and TCP), for testing the proxy without BIND.

It answers from a :class:`tests.fakezone.FakeZone` and counts what it was asked. One
selector thread, bounded like the proxy: a stop event, burst limits, a hard lifetime.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import dns.exception
import dns.message

from tests.fakezone import FakeZone

__all__ = ["StaticServer"]

#: Answers bigger than this go back over UDP empty with TC set, as BIND does.
UDP_LIMIT = 1232


def _truncated(answer: bytes) -> bytes:
    """Header (TC set, no records) and question of *answer*."""
    message = dns.message.from_wire(answer)
    flags = int.from_bytes(answer[2:4], "big") | 0x0200
    question = answer[12 : 12 + len(message.question[0].name.to_wire()) + 4]
    return answer[:2] + flags.to_bytes(2, "big") + b"\x00\x01\x00\x00\x00\x00\x00\x00" + question


class StaticServer:
    """``with StaticServer(zone) as server:`` answers on ``server.address``."""

    def __init__(self, zone: FakeZone, *, host: str = "127.0.0.1", max_lifetime: float = 120.0) -> None:
        self.zone = zone
        self.host = host
        self.asked = 0
        self._stop = threading.Event()
        self._sel = selectors.DefaultSelector()
        self._tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._tcp.bind((host, 0))
            self._udp.bind((host, self._tcp.getsockname()[1]))
            self._tcp.listen(16)
        except OSError:
            self._tcp.close()
            self._udp.close()
            self._sel.close()
            raise
        self.port: int = self._tcp.getsockname()[1]
        self._tcp.setblocking(False)
        self._udp.setblocking(False)
        self._conns: dict[socket.socket, bytearray] = {}
        self._sel.register(self._udp, selectors.EVENT_READ, self._on_udp)
        self._sel.register(self._tcp, selectors.EVENT_READ, self._on_accept)
        self._deadline = time.monotonic() + max_lifetime
        self._thread = threading.Thread(target=self._run, name="static-dns", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)

    def _answer(self, wire: bytes) -> bytes | None:
        try:
            query = dns.message.from_wire(wire)
        except (dns.exception.DNSException, ValueError):
            return None
        if len(query.question) != 1:
            return None
        question = query.question[0]
        self.asked += 1
        answer = self.zone.answer(question.name.to_text(), question.rdtype)
        return wire[:2] + answer[2:]

    def _on_udp(self) -> None:
        for _ in range(64):
            try:
                data, addr = self._udp.recvfrom(65535)
            except OSError:
                return
            answer = self._answer(data)
            if answer is not None and len(answer) > UDP_LIMIT:
                answer = _truncated(answer)
            if answer is not None:
                with contextlib.suppress(OSError):
                    self._udp.sendto(answer, addr)

    def _on_accept(self) -> None:
        try:
            conn, _ = self._tcp.accept()
        except OSError:
            return
        conn.settimeout(2.0)  # replies are written with a bounded blocking send
        self._conns[conn] = bytearray()
        self._sel.register(conn, selectors.EVENT_READ, lambda: self._on_conn(conn))

    def _on_conn(self, conn: socket.socket) -> None:
        try:
            data = conn.recv(65536)
        except OSError:
            data = b""
        if not data:
            self._drop(conn)
            return
        inbox = self._conns[conn]
        inbox += data
        while len(inbox) >= 2 and len(inbox) >= 2 + int.from_bytes(inbox[:2], "big"):
            size = int.from_bytes(inbox[:2], "big")
            frame = bytes(inbox[2 : 2 + size])
            del inbox[: 2 + size]
            answer = self._answer(frame)
            if answer is not None:
                try:
                    conn.sendall(len(answer).to_bytes(2, "big") + answer)
                except OSError:
                    self._drop(conn)
                    return

    def _drop(self, conn: socket.socket) -> None:
        self._conns.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn)
        conn.close()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                for key, _ in self._sel.select(0.05):
                    handler: Callable[[], None] = key.data
                    handler()
        finally:
            for conn in list(self._conns):
                self._drop(conn)
            self._sel.close()
            self._udp.close()
            self._tcp.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._thread.is_alive():
            raise RuntimeError("static DNS server did not stop")

    def __enter__(self) -> StaticServer:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
