"""The asyncio driver of lookups: :func:`run_lookup`, with no blocking call on the loop.

Only moves bytes: every decision is taken by :class:`~headless_client.exchange.Exchange`
and the lookup plans. Channels are asyncio transports (datagram endpoints and stream
connections), so any event loop with those works.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable
from typing import Any, TypeVar

from ..exchange import Exchange, ExchangeConfig, Lookup, Open, Send
from ..lookup import Batch
from ..wire import Answer

__all__ = ["run_lookup"]

T = TypeVar("T")


async def run_lookup(lookup: Lookup[T]) -> T:
    """Run *lookup* to its result on the running loop.

    Raises:
        ResolutionError: every server failed or the budget ran out.
        ServiceNotFound: the name does not exist (NXDOMAIN).
    """
    deadline = time.monotonic() + lookup.config.timeout
    plan = lookup.plan
    try:
        batch = next(plan)
        while True:
            batch = plan.send(await _carry(batch, lookup.config, deadline))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    finally:
        plan.close()


async def _carry(batch: Batch, config: ExchangeConfig, deadline: float) -> list[Answer]:
    """One exchange: carry out its actions until it is done."""
    channels = _Channels(Exchange(batch, config, now=time.monotonic(), deadline=deadline))
    try:
        channels.carry_out()
        while not channels.exchange.done:
            await channels.wait()
            channels.exchange.timer(time.monotonic())
            channels.carry_out()
        return channels.exchange.answers()
    finally:
        channels.close()


class _Channels:
    """The transports of one exchange, and the wake-up its driver loop waits on."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        self.loop = asyncio.get_running_loop()
        self.transports: dict[int, asyncio.BaseTransport] = {}
        # Which channels are TCP (asyncio's UDP transports are WriteTransports too).
        self.streams: set[int] = set()
        self.opening: dict[int, asyncio.Task[None]] = {}
        # Datagrams the exchange sent before its endpoint was ready.
        self.early: dict[int, list[bytes]] = {}
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False

    def carry_out(self) -> None:
        exchange = self.exchange
        while actions := exchange.take_actions():
            for action in actions:
                if isinstance(action, Send):
                    self._send(action.channel, action.data)
                elif isinstance(action, Open):
                    if action.stream:
                        self.streams.add(action.channel)
                    self.opening[action.channel] = self.loop.create_task(self._open(action))
                else:
                    self._close(action.channel)
        if exchange.done:
            self._wake()

    def event(self, handler: Callable[..., None], channel: int, *args: Any) -> None:
        """Feed one event to the exchange (from a protocol callback) and act on it."""
        if self.closed:
            return
        handler(channel, *args, time.monotonic())
        self.carry_out()
        self._wake()

    async def wait(self) -> None:
        """Until an event came in or the exchange's next timer is due."""
        at = self.exchange.next_timer()
        if at is None:
            return
        waiter = self.loop.create_future()
        self.waiter = waiter
        handle = self.loop.call_later(max(at - time.monotonic(), 0.0), self._wake)
        try:
            await waiter
        finally:
            handle.cancel()
            self.waiter = None

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _open(self, action: Open) -> None:
        server = action.server
        family = socket.AF_INET6 if server.family == 6 else socket.AF_INET
        try:
            if action.stream:
                await self.loop.create_connection(
                    lambda: _Stream(self, action.channel), server.host, server.port, family=family
                )
            else:
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.setblocking(False)
                    # connect() makes the kernel drop datagrams from any other source.
                    sock.connect((server.host, server.port))
                except OSError:
                    sock.close()
                    raise
                await self.loop.create_datagram_endpoint(lambda: _Datagrams(self, action.channel), sock=sock)
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            self.event(self.exchange.channel_failed, action.channel, reason)
        finally:
            self.opening.pop(action.channel, None)

    def attach(self, channel: int, transport: asyncio.BaseTransport) -> None:
        if self.closed or channel not in self.opening or channel in self.transports:
            transport.close()
            return
        self.transports[channel] = transport
        for data in self.early.pop(channel, ()):
            self._send(channel, data)

    def _send(self, channel: int, data: bytes) -> None:
        transport = self.transports.get(channel)
        if transport is None:
            if channel in self.opening:
                self.early.setdefault(channel, []).append(data)
            return
        if channel in self.streams:
            # No drain(): the transport flushes as the socket allows, and reading
            # meanwhile keeps the server from blocking on its replies.
            transport.write(data)  # type: ignore[attr-defined]
        else:
            transport.sendto(data)  # type: ignore[attr-defined]

    def _close(self, channel: int) -> None:
        task = self.opening.pop(channel, None)
        if task is not None:
            task.cancel()
        self.early.pop(channel, None)
        transport = self.transports.pop(channel, None)
        if transport is not None:
            transport.close()

    def close(self) -> None:
        """Release every channel (the exchange is done or abandoned)."""
        self.closed = True
        for channel in [*self.opening, *self.transports]:
            self._close(channel)


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self, owner: _Channels, channel: int) -> None:
        self.owner = owner
        self.channel = channel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.owner.attach(self.channel, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner.event(self.owner.exchange.datagram_received, self.channel, data)

    def error_received(self, exc: Exception) -> None:
        # ECONNREFUSED: the port is closed (ICMP).
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        self.owner.event(self.owner.exchange.channel_failed, self.channel, reason or type(exc).__name__)


class _Stream(asyncio.Protocol):
    def __init__(self, owner: _Channels, channel: int) -> None:
        self.owner = owner
        self.channel = channel

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.owner.attach(self.channel, transport)
        self.owner.event(self.owner.exchange.stream_opened, self.channel)

    def data_received(self, data: bytes) -> None:
        self.owner.event(self.owner.exchange.stream_received, self.channel, data)

    def eof_received(self) -> bool:
        self.owner.event(self.owner.exchange.stream_closed, self.channel)
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.owner.transports.pop(self.channel, None) is None:
            return  # closed on purpose, or after the end of stream
        if exc is None:
            self.owner.event(self.owner.exchange.stream_closed, self.channel)
        else:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.owner.event(self.owner.exchange.channel_failed, self.channel, reason or type(exc).__name__)
