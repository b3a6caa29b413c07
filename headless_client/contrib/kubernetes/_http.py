"""A minimal HTTP/1.1 GET client over asyncio streams: what list and watch need, no more.

One connection per request (``Connection: close``): a list is one short exchange, a watch
one long response. Bodies come by ``Content-Length``, chunked transfer coding, or until the
server closes. Every read is bounded in size and time, so a hostile or broken server can
neither exhaust memory nor hang a watch forever.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from ... import __version__
from .config import KubernetesConfig

__all__ = ["HTTPResponse", "ProtocolError", "get"]

MAX_HEADER: Final = 64 * 1024
MAX_BODY: Final = 64 * 1024 * 1024  # a list of one Service's slices is far smaller
MAX_LINE: Final = 16 * 1024 * 1024  # one watch event (a slice of 1000 endpoints is ~300 KB)
_READ: Final = 64 * 1024


class ProtocolError(Exception):
    """The server's answer is not HTTP this client understands (or exceeds a bound)."""


class HTTPResponse:
    """The status line and headers of one response, and its body as bytes or lines."""

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, str],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._reader = reader
        self._writer = writer
        self._chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        length = headers.get("content-length")
        self._length = int(length) if length is not None and length.isdigit() else None

    async def chunks(self, idle_timeout: float) -> AsyncIterator[bytes]:
        """The body in pieces; each read waits at most *idle_timeout* seconds.

        Raises:
            ProtocolError: a malformed chunked body.
            asyncio.TimeoutError: the server sent nothing for *idle_timeout* seconds.
        """
        reader = self._reader
        if self._chunked:
            while True:
                size_line = await asyncio.wait_for(reader.readuntil(b"\r\n"), idle_timeout)
                try:
                    size = int(size_line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    raise ProtocolError(f"bad chunk size line {size_line[:40]!r}") from None
                if size == 0:
                    return  # trailers are not read: the connection is closed anyway
                if size > MAX_LINE:
                    raise ProtocolError(f"chunk of {size} bytes is over the limit")
                data = await asyncio.wait_for(reader.readexactly(size + 2), idle_timeout)
                yield data[:-2]
        elif self._length is not None:
            left = self._length
            while left > 0:
                data = await asyncio.wait_for(reader.read(min(left, _READ)), idle_timeout)
                if not data:
                    raise ProtocolError(f"the body ended {left} bytes early")
                left -= len(data)
                yield data
        else:
            while True:
                data = await asyncio.wait_for(reader.read(_READ), idle_timeout)
                if not data:
                    return
                yield data

    async def body(self, timeout: float, limit: int = MAX_BODY) -> bytes:
        """The whole body (at most *limit* bytes), within *timeout* seconds in all."""

        async def collect() -> bytes:
            parts: list[bytes] = []
            size = 0
            async for chunk in self.chunks(timeout):
                size += len(chunk)
                if size > limit:
                    raise ProtocolError(f"the body is larger than {limit} bytes")
                parts.append(chunk)
            return b"".join(parts)

        return await asyncio.wait_for(collect(), timeout)

    async def json(self, timeout: float) -> Any:
        """The body parsed as JSON.

        Raises:
            ProtocolError: it is not JSON.
        """
        data = await self.body(timeout)
        try:
            return json.loads(data)
        except ValueError:
            raise ProtocolError(f"the body is not JSON: {data[:80]!r}") from None

    async def lines(self, idle_timeout: float) -> AsyncIterator[bytes]:
        """The body's lines (without the newline), for a watch's stream of events."""
        pending = b""
        async for chunk in self.chunks(idle_timeout):
            pending += chunk
            while True:
                end = pending.find(b"\n")
                if end < 0:
                    break
                line, pending = pending[:end], pending[end + 1 :]
                if line.strip():
                    yield line
            if len(pending) > MAX_LINE:
                raise ProtocolError(f"a watch event is longer than {MAX_LINE} bytes")
        if pending.strip():
            yield pending

    def close(self) -> None:
        """Close the connection (harmless twice).

        Aborted rather than closed: the request said ``Connection: close`` and nothing more
        is read, and a TLS close would wait for the server's close_notify on a loop that
        may be stopping (leaving the socket open until the garbage collector finds it).
        """
        self._writer.transport.abort()


async def get(
    config: KubernetesConfig,
    path: str,
    query: Mapping[str, str],
    *,
    timeout: float,
    ssl_context: ssl.SSLContext | None,
) -> HTTPResponse:
    """Send ``GET path?query`` to *config*'s server; returns once the headers arrived
    (within *timeout* seconds, connection and TLS handshake included). The caller closes
    the response.

    Raises:
        OSError: the connection failed.
        asyncio.TimeoutError: no headers within *timeout*.
        ProtocolError: not an HTTP/1.x answer.
        KubeConfigError: the token file cannot be read.
    """
    token = config.bearer_token()
    target = path + ("?" + urllib.parse.urlencode(query) if query else "")
    host = config.host
    host_header = f"[{host}]" if ":" in host else host
    if config.port != (443 if config.tls else 80):
        host_header += f":{config.port}"
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: {host_header}",
        "Accept: application/json",
        f"User-Agent: headless-client/{__version__}",
        "Connection: close",
    ]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def exchange() -> HTTPResponse:
        reader, writer = await asyncio.open_connection(
            host,
            config.port,
            ssl=ssl_context,
            server_hostname=config.server_hostname() if ssl_context is not None else None,
            limit=MAX_HEADER,
        )
        try:
            writer.write(request)
            await writer.drain()
            status, reason, headers = await _read_head(reader)
        except BaseException:
            writer.transport.abort()
            raise
        return HTTPResponse(status, reason, headers, reader, writer)

    # Shielded, so that a timeout or a cancellation of the caller racing with the answer
    # cannot drop an open response on the floor (asyncio.wait_for before 3.12 can lose a
    # result that way): whatever the exchange still produces is closed.
    opening = asyncio.ensure_future(exchange())
    try:
        return await asyncio.wait_for(asyncio.shield(opening), timeout)
    except BaseException:
        opening.cancel()
        opening.add_done_callback(_close_unclaimed)
        raise


def _close_unclaimed(opening: asyncio.Future[HTTPResponse]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        opening.result().close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, str, dict[str, str]]:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise ProtocolError(f"the response headers are longer than {MAX_HEADER} bytes") from None
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(f"the connection closed before the headers ({len(exc.partial)} bytes)") from None
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), parts[2] if len(parts) > 2 else "", headers
