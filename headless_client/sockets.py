"""Dialling one endpoint with blocking sockets (and TLS)."""

from __future__ import annotations

import socket
import ssl

from .endpoints import Endpoint
from .errors import InvalidArgument, InvalidName

__all__ = ["check_dial_options", "open_socket"]


def check_dial_options(ssl_context: object, source_address: object) -> None:
    """Refuse a TLS context or source address that would fail deep inside a dial.

    Raises:
        InvalidArgument: *ssl_context* is not an :class:`ssl.SSLContext`, or
            *source_address* is not a ``(host, port)`` tuple.
        InvalidName: a source port outside 0..65535.
    """
    if ssl_context is not None and not isinstance(ssl_context, ssl.SSLContext):
        raise InvalidArgument(
            f"ssl_context must be an ssl.SSLContext (e.g. ssl.create_default_context()), "
            f"not {type(ssl_context).__name__}: {ssl_context!r}"
        )
    if source_address is None:
        return
    if (
        not isinstance(source_address, tuple)
        or len(source_address) != 2
        or not isinstance(source_address[0], str)
        or isinstance(source_address[1], bool)
        or not isinstance(source_address[1], int)
    ):
        raise InvalidArgument(f"source_address must be a (host, port) tuple: {source_address!r}")
    if not 0 <= source_address[1] <= 65535:
        raise InvalidName(f"source_address port must be in 0..65535: {source_address!r}")


def open_socket(
    endpoint: Endpoint,
    timeout: float,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """Connect to *endpoint* within *timeout* seconds (TCP handshake and TLS handshake).

    With *ssl_context* the certificate is verified against *server_hostname* while the
    socket dials the IP, so per-pod certificates work without DNS on the connect path.
    The returned socket is in blocking mode with no timeout, as :func:`socket.create_connection`
    would leave it without one.

    Raises:
        OSError: refused, unreachable, timed out, or the TLS handshake failed
            (:class:`ssl.SSLCertVerificationError` for a certificate that does not match).
    """
    sock = socket.create_connection(
        (endpoint.address, endpoint.port), timeout=timeout, source_address=source_address
    )
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname)
        sock.settimeout(None)
    except BaseException:
        sock.close()
        raise
    return sock
