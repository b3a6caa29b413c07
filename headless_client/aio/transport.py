"""The asyncio transport: carry one batch of questions to one nameserver."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from typing import Any

from ..errors import ResolutionError
from ..lookup import Batch
from ..wire import (
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


async def exchange_with(server: Nameserver, batch: Batch, deadline: float) -> list[Reply]:
    pending = build_queries(batch)
    if len(batch) <= MAX_UDP_BATCH:
        tcp_indexes = await _udp(server, pending, deadline)
    else:
        tcp_indexes = list(range(len(batch)))
    if tcp_indexes:
        await _tcp(server, pending, tcp_indexes, deadline)
    return [r for r in pending.replies if r is not None]


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, pending: Pending, waiting: set[int], truncated: list[int]) -> None:
        self.pending = pending
        self.waiting = waiting
        self.truncated = truncated
        self.changed = asyncio.Event()
        self.error: OSError | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        accept_datagram(self.pending, data, self.waiting, self.truncated)
        if not self.waiting:
            self.changed.set()

    def error_received(self, exc: Exception) -> None:
        self.error = exc if isinstance(exc, OSError) else OSError(str(exc))
        self.changed.set()


async def _udp(server: Nameserver, pending: Pending, deadline: float) -> list[int]:
    loop = asyncio.get_running_loop()
    waiting = set(range(len(pending.wires)))
    truncated: list[int] = []
    start = time.monotonic()
    intervals = retransmit_intervals(deadline - start)
    to_tcp_at = udp_give_up_at(start, deadline)
    family = socket.AF_INET6 if server.family == 6 else socket.AF_INET
    try:
        transport, proto = await loop.create_datagram_endpoint(
            lambda: _Datagrams(pending, waiting, truncated),
            remote_addr=(server.host, server.port),
            family=family,
        )
    except OSError as exc:
        raise ResolutionError(f"{server}: {exc.strerror or exc} (UDP)") from exc
    try:
        while waiting:
            now = time.monotonic()
            if now >= deadline:
                raise ResolutionError(f"{server} did not answer in time (UDP)")
            if now >= to_tcp_at:
                # Lossy path: TCP's own retransmission does better than more datagrams.
                truncated.extend(sorted(waiting))
                waiting.clear()
                break
            for i in list(waiting):
                transport.sendto(pending.wires[i])
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proto.changed.wait(), min(next(intervals), to_tcp_at - now))
            error = proto.error
            if error is not None:
                raise ResolutionError(f"{server}: {error.strerror or error} (UDP)") from error
    finally:
        transport.close()
    return truncated


async def _tcp(server: Nameserver, pending: Pending, indexes: list[int], deadline: float) -> None:
    waiting = set(indexes)
    inbox = bytearray()
    writer: asyncio.StreamWriter | None = None
    try:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ResolutionError(f"{server} did not answer in time (TCP)")
        reader, opened = await asyncio.wait_for(
            asyncio.open_connection(server.host, server.port, limit=1 << 20), remaining
        )
        writer = opened
        # No drain() before reading: the transport flushes as the socket allows, and
        # reading meanwhile keeps the server from blocking on its replies.
        opened.write(stream_payload(pending, indexes))
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ResolutionError(
                    f"{server} did not answer {len(waiting)} of {len(indexes)} questions in time (TCP)"
                )
            chunk = await asyncio.wait_for(reader.read(262144), remaining)
            if not chunk:
                raise ResolutionError(
                    f"{server} closed the TCP connection with {len(waiting)} questions unanswered"
                )
            inbox += chunk
            drain_stream(pending, inbox, waiting)
    except asyncio.TimeoutError as exc:
        raise ResolutionError(f"{server} did not answer in time (TCP)") from exc
    except OSError as exc:
        raise ResolutionError(f"{server}: {exc.strerror or exc} (TCP)") from exc
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                await asyncio.wait_for(writer.wait_closed(), 1.0)

