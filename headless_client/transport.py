"""The blocking transport: carry one batch of questions to one nameserver (selectors).

Only moves bytes; what to send and what a reply means is decided in
:mod:`headless_client.wire` and :mod:`headless_client.lookup`.
"""

from __future__ import annotations

import selectors
import socket
import time

from .errors import ResolutionError
from .interrupt import Interrupt
from .lookup import Batch
from .wire import (
    MAX_UDP_BATCH,
    Nameserver,
    Pending,
    Reply,
    accept_datagram,
    build_queries,
    drain_stream,
    retransmit_intervals,
    stream_payload,
    udp_give_up_at,
)

__all__ = ["exchange_with"]


def exchange_with(
    server: Nameserver, batch: Batch, deadline: float, interrupt: Interrupt | None = None
) -> list[Reply]:
    pending = build_queries(batch)
    tcp_indexes: list[int]
    if len(batch) <= MAX_UDP_BATCH:
        tcp_indexes = _udp(server, pending, deadline, interrupt)
    else:
        tcp_indexes = list(range(len(batch)))
    if tcp_indexes:
        _tcp(server, pending, tcp_indexes, deadline, interrupt)
    return [r for r in pending.replies if r is not None]


def _family(server: Nameserver) -> socket.AddressFamily:
    return socket.AF_INET6 if server.family == 6 else socket.AF_INET


def _udp(
    server: Nameserver, pending: Pending, deadline: float, interrupt: Interrupt | None = None
) -> list[int]:
    """Send every query in one datagram each; return the indexes to ask over TCP.

    Those are the answers that came back truncated and, past half the budget, the
    questions still unanswered: on a lossy path TCP's own retransmission does better than
    more datagrams.
    """
    truncated: list[int] = []
    waiting = set(range(len(pending.wires)))
    start = time.monotonic()
    intervals = retransmit_intervals(deadline - start)
    to_tcp_at = udp_give_up_at(start, deadline)
    try:
        with socket.socket(_family(server), socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            # connect() makes the kernel drop datagrams from any other source.
            sock.connect((server.host, server.port))
            next_send = start
            while waiting:
                now = time.monotonic()
                if now >= deadline:
                    raise ResolutionError(f"{server} did not answer in time (UDP)")
                if now >= to_tcp_at:
                    truncated.extend(sorted(waiting))
                    break
                if now >= next_send:
                    for i in waiting:
                        sock.send(pending.wires[i])
                    next_send = now + next(intervals)
                with selectors.DefaultSelector() as sel:
                    sel.register(sock, selectors.EVENT_READ)
                    if interrupt is not None:
                        sel.register(interrupt, selectors.EVENT_READ)
                    ready = sel.select(min(deadline, next_send, to_tcp_at) - now)
                if interrupt is not None and interrupt.is_set():
                    raise ResolutionError(f"{server}: interrupted (closing)")
                if not ready:
                    continue
                while True:
                    try:
                        wire = sock.recv(65535)
                    except BlockingIOError:
                        break
                    accept_datagram(pending, wire, waiting, truncated)
    except OSError as exc:
        raise ResolutionError(f"{server}: {exc.strerror or exc} (UDP)") from exc
    return truncated


def _tcp(
    server: Nameserver,
    pending: Pending,
    indexes: list[int],
    deadline: float,
    interrupt: Interrupt | None = None,
) -> None:
    """Ask *indexes* over one TCP connection, pipelined; answers may come in any order."""
    outgoing = stream_payload(pending, indexes)
    waiting = set(indexes)
    inbox = bytearray()
    sent = 0
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ResolutionError(f"{server} did not answer in time (TCP)")
        with socket.create_connection((server.host, server.port), timeout=remaining) as sock:
            sock.setblocking(False)
            with selectors.DefaultSelector() as sel:
                sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
                if interrupt is not None:
                    sel.register(interrupt, selectors.EVENT_READ)
                while waiting:
                    if interrupt is not None and interrupt.is_set():
                        raise ResolutionError(f"{server}: interrupted (closing)")
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise ResolutionError(
                            f"{server} did not answer {len(waiting)} of {len(indexes)} questions "
                            "in time (TCP)"
                        )
                    for key, events in sel.select(remaining):
                        if key.fileobj is interrupt:
                            continue
                        if events & selectors.EVENT_WRITE and sent < len(outgoing):
                            try:
                                sent += sock.send(memoryview(outgoing)[sent : sent + 65536])
                            except BlockingIOError:
                                pass
                            if sent >= len(outgoing):
                                sel.modify(sock, selectors.EVENT_READ)
                        if events & selectors.EVENT_READ:
                            try:
                                chunk = sock.recv(262144)
                            except BlockingIOError:
                                continue
                            if not chunk:
                                raise ResolutionError(
                                    f"{server} closed the TCP connection with {len(waiting)} "
                                    "questions unanswered"
                                )
                            inbox += chunk
                            drain_stream(pending, inbox, waiting)
    except OSError as exc:
        raise ResolutionError(f"{server}: {exc.strerror or exc} (TCP)") from exc
