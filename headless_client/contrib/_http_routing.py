"""What the HTTP integrations share without I/O: their routing arguments, checked once, and
the names and messages they derive from them.

:mod:`~headless_client.contrib.requests` (an adapter), :mod:`~headless_client.contrib.aiohttp`
(a middleware) and :mod:`~headless_client.contrib.httpx` (transports) each send a
service's requests to its pods: they take the same ``key=``/``header=``, ``retries=``,
``server_name=``, ``host_header=``, ``failure_statuses=`` and ``retry_methods=``
(:class:`HttpRouting`), scope themselves to the service's host names
(:func:`service_scope`, :func:`foreign_host`) and retry as
:class:`~headless_client.attempts.Attempts` decides. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..endpoints import Endpoint
from ..errors import ForeignHost, InvalidArgument, InvalidName
from ..hosts import ServiceHosts, service_hosts

__all__ = ["IDEMPOTENT_METHODS", "HttpRouting", "foreign_host", "service_scope"]

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""Methods retried after a broken connection (RFC 9110 section 9.2.2)."""

ServerName = Literal["pod", "service"]
HostHeader = Literal["url", "service", "pod"]


@dataclass(frozen=True, slots=True)
class HttpRouting:
    """How an HTTP integration routes one service's requests (see :meth:`checked`).

    Attributes:
        key: ``key(request) -> key`` for the strategy, or None.
        header: the request header holding the key, or None.
        retries: extra attempts on other pods.
        server_name: the TLS name a pod must prove: ``"pod"`` (its FQDN when known) or
            ``"service"``.
        host_header: the ``Host`` sent: ``"url"`` (unchanged), ``"service"`` or ``"pod"``.
        failure_statuses: statuses that count as a pod failure.
        retry_methods: methods (upper case) retried after a broken connection.
    """

    key: Callable[[Any], object] | None
    header: str | None
    retries: int
    server_name: ServerName
    host_header: HostHeader
    failure_statuses: frozenset[int]
    retry_methods: frozenset[str]

    @classmethod
    def checked(
        cls,
        key: Callable[[Any], object] | None,
        header: str | None,
        retries: int,
        server_name: ServerName,
        host_header: HostHeader,
        failure_statuses: Collection[int],
        retry_methods: Collection[str],
    ) -> HttpRouting:
        """The routing an integration's arguments describe.

        Raises:
            InvalidName: both *key* and *header*, a bad *retries*, *server_name* or
                *host_header*.
            InvalidArgument: a *key* that is not callable.
        """
        if key is not None and header is not None:
            raise InvalidName("pass key= or header=, not both")
        if key is not None and not callable(key):
            raise InvalidArgument(f"key must be a function of the request: {key!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidName(f"retries must be an int >= 0: {retries!r}")
        if server_name not in ("pod", "service"):
            raise InvalidName(f"server_name must be 'pod' or 'service': {server_name!r}")
        if host_header not in ("url", "service", "pod"):
            raise InvalidName(f"host_header must be 'url', 'service' or 'pod': {host_header!r}")
        return cls(key, header, retries, server_name, host_header, frozenset(failure_statuses),
                   frozenset(m.upper() for m in retry_methods))

    def key_of(self, request: object, headers: Mapping[str, str]) -> object:
        """The strategy's key for *request* (whose headers are *headers*), or None."""
        if self.key is not None:
            return self.key(request)
        if self.header is not None:
            return headers.get(self.header)
        return None

    def tls_name(self, endpoint: Endpoint, service_name: str) -> str:
        """The name *endpoint*'s certificate must carry."""
        return endpoint.hostname if self.server_name == "pod" and endpoint.hostname else service_name

    def host_name(self, endpoint: Endpoint, service_name: str) -> str:
        """The host of the ``Host`` header sent to *endpoint* (``host_header`` not ``"url"``)."""
        return endpoint.hostname if self.host_header == "pod" and endpoint.hostname else service_name

    def may_resend(self, method: str) -> bool:
        """True when a request with *method* may be sent again after a broken connection."""
        return method.upper() in self.retry_methods


def service_scope(service: Any) -> ServiceHosts:
    """The host names that mean *service*, in every spelling its resolver accepts."""
    return service_hosts(service.name, service.resolver.qualify)


def foreign_host(host: object, service_name: str, hosts: ServiceHosts, what: str, advice: str) -> ForeignHost:
    """The refusal of a request for *host*, another host than the service's: *what* (the
    integration) sends only the service's requests to its pods; *advice* says what to do."""
    return ForeignHost(
        f"{host!r} is not {service_name} (accepted: {hosts.describe()}): this {what} sends only "
        f"the service's requests to its pods; {advice}"
    )
