"""Dialling one endpoint with blocking sockets (and TLS)."""

from __future__ import annotations

import socket
import ssl

from .endpoints import Endpoint

__all__ = ["open_socket"]


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
