"""Dial a pod with asyncio streams (TCP, TLS)."""

from __future__ import annotations

import asyncio
import ssl

from ..endpoints import Endpoint

__all__ = ["Streams", "open_streams"]

Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_streams(
    endpoint: Endpoint,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
) -> Streams:
    """:func:`asyncio.open_connection` to *endpoint* within *timeout* (TCP and TLS).

    Raises:
        OSError: refused, unreachable, timed out (:class:`TimeoutError`), or TLS failed.
    """
    try:
        return await asyncio.wait_for(
            asyncio.open_connection(
                endpoint.address,
                endpoint.port,
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context is not None else None,
                local_addr=source_address,
            ),
            timeout,
        )
    except asyncio.TimeoutError as exc:
        raise TimeoutError(f"connect to {endpoint} timed out after {timeout:g}s") from exc
