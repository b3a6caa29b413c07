"""A requests transport adapter that sends each request to a pod of a headless service.

``pip install 'headless-client[requests]'``, then mount the adapter on a ``Session`` for
the service's base URL::

    import requests
    from headless_client import HeadlessService
    from headless_client.contrib.requests import HeadlessAdapter

    with HeadlessService("api.prod", port="http") as svc, requests.Session() as session:
        session.mount("http://api.prod", HeadlessAdapter(svc))
        session.get("http://api.prod:8080/users/42")     # a pod picked for this request
        session.get("https://example.com/")              # not the service: requests' own adapter

Host scoping: the adapter sends to pods **only requests whose host is the service**, in any
spelling the service's resolver accepts (``api``, ``api.prod``, ``api.prod.svc``, the FQDN,
any case, a trailing dot). requests picks adapters by URL *prefix*, so a mount for
``http://api.prod`` also receives ``http://api.production.example``: such a request is
passed to *fallback* (an adapter of your own) when given, else refused with
:class:`~headless_client.errors.ForeignHost`. A pod never receives a request, or its
``Authorization`` header, meant for another host.

For every request to the service the adapter picks a pod with the service's strategy and
sends the request to that pod's address and port (from DNS) through a **connection pool
of that pod's own** (a urllib3 ``PoolManager`` per pod, kept in a
:class:`~headless_client.registry.ClientRegistry`: closed when the pod leaves the view or
changes address, after the requests in flight). The URL only names the service: the
``Host`` header stays the URL's (``host_header=`` changes that), and the response's
``url`` is the one you asked for. Proxies from the environment are not used for pods.

TLS (``https``): the certificate is verified as requests does (``verify=``, ``cert=``),
against the **pod's own name** (its FQDN, when DNS gave one: SRV) while dialling its
address (urllib3's ``server_hostname`` and ``assert_hostname`` on the pod's pool), or the
service's FQDN (``server_name="service"``, or on the A/AAAA path where pods have no names).

Routing: ``key=`` (a function of the ``PreparedRequest``) or ``header=`` (a header's value)
gives the strategy its key (:class:`~headless_client.Sticky` needs one).

Health and retries: a response reports a success with its latency (time to the response
headers); a connection error reports a failure (the pod is ejected for a while, DNS
refreshed early), as does a status in ``failure_statuses``. A request whose connection
could not be made (nothing was sent) is retried on another pod, whatever its method, at
most ``retries`` times; one whose connection broke after sending is retried only when its
method is idempotent (``retry_methods``) and its body can be sent again. Timeouts are not
retried. With no pod to send to, a ``requests.ConnectionError`` is raised whose
``__cause__`` is the library's error. The pod that answered is
``response.headless_endpoint``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from ._extras import missing_extra

try:
    import requests
    import requests.adapters
    import urllib3
    import urllib3.exceptions
except ImportError as exc:  # pragma: no cover - exercised by a test with requests hidden
    raise missing_extra("headless_client.contrib.requests", "requests", "requests") from exc

from ..attempts import Attempts
from ..endpoints import Endpoint
from ..errors import InvalidArgument
from ..hosts import ServiceHosts
from ..registry import DEFAULT_GRACE, ClientRegistry
from ..registry_core import Lease
from ..request import Request
from ._http_routing import IDEMPOTENT_METHODS, HttpRouting, foreign_host, service_scope

__all__ = ["ENDPOINT_ATTRIBUTE", "IDEMPOTENT_METHODS", "HeadlessAdapter"]

ENDPOINT_ATTRIBUTE = "headless_endpoint"
"""The response attribute holding the :class:`~headless_client.Endpoint` that answered."""

KeyFunction = Callable[[requests.PreparedRequest], object]
_CONNECT_ERRORS = (urllib3.exceptions.NewConnectionError, urllib3.exceptions.ConnectTimeoutError)
_LEASE = "_headless_lease"


def _nothing_sent(error: BaseException) -> bool:
    """True when *error* (a requests error) failed before any byte was sent."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:  # bounded: each cause visited once
        seen.add(id(current))
        if isinstance(current, _CONNECT_ERRORS):
            return True
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException) and id(reason) not in seen:
            current = reason
            continue
        args = [a for a in getattr(current, "args", ()) if isinstance(a, BaseException)]
        current = args[0] if args else current.__cause__ or current.__context__
    return False


class _PodPools:
    """One pod's urllib3 PoolManager (http and https pools, by TLS settings)."""

    __slots__ = ("endpoint", "manager")

    def __init__(self, endpoint: Endpoint, manager: urllib3.PoolManager) -> None:
        self.endpoint = endpoint
        self.manager = manager

    def close(self) -> None:
        self.manager.clear()


class HeadlessAdapter(requests.adapters.HTTPAdapter):
    """A requests adapter sending each request for *service* to one of its pods.

    See the module documentation for host scoping, routing, TLS, health and retries.

    Args:
        service: a started :class:`~headless_client.HeadlessService` (the caller's:
            closing the adapter does not close it).
        key: a function ``prepared_request -> key`` for the strategy.
        header: take the key from this request header instead.
        retries: extra attempts on other pods.
        server_name: the TLS name to verify: ``"pod"`` (its FQDN when known) or ``"service"``.
        host_header: ``"url"`` (unchanged), ``"service"`` or ``"pod"`` (its FQDN).
        failure_statuses: statuses that count as a pod failure (e.g. ``{502, 503, 504}``).
        retry_methods: methods retried after a broken connection.
        fallback: the adapter for requests to other hosts (default: refuse them with
            :class:`~headless_client.errors.ForeignHost`).
        grace: how long a departed pod's pool may finish its requests (seconds).
        pool_connections: ``HTTPAdapter``'s, per pod.
        pool_maxsize: ``HTTPAdapter``'s, per pod.
        pool_block: ``HTTPAdapter``'s, per pod.

    Raises:
        InvalidArgument / InvalidName: a wrong argument, naming it.
    """

    def __init__(
        self,
        service: Any,
        *,
        key: KeyFunction | None = None,
        header: str | None = None,
        retries: int = 2,
        server_name: Literal["pod", "service"] = "pod",
        host_header: Literal["url", "service", "pod"] = "url",
        failure_statuses: Collection[int] = (),
        retry_methods: Collection[str] = IDEMPOTENT_METHODS,
        fallback: requests.adapters.BaseAdapter | None = None,
        grace: float = DEFAULT_GRACE,
        pool_connections: int = requests.adapters.DEFAULT_POOLSIZE,
        pool_maxsize: int = requests.adapters.DEFAULT_POOLSIZE,
        pool_block: bool = requests.adapters.DEFAULT_POOLBLOCK,
    ) -> None:
        routing = HttpRouting.checked(
            key, header, retries, server_name, host_header, failure_statuses, retry_methods
        )
        if fallback is not None and not isinstance(fallback, requests.adapters.BaseAdapter):
            raise InvalidArgument(f"fallback must be a requests adapter: {fallback!r}")
        super().__init__(pool_connections=pool_connections, pool_maxsize=pool_maxsize,
                         pool_block=pool_block)
        self._per_pod: dict[str, Any] = {
            "num_pools": pool_connections, "maxsize": pool_maxsize, "block": pool_block,
        }
        self._registry: ClientRegistry[_PodPools] = ClientRegistry(
            service, self._open, close=_PodPools.close, failures=(), grace=grace,
        )
        self.service = service
        self.hosts: ServiceHosts = service_scope(service)
        self._routing = routing
        self._fallback = fallback

    @property
    def registry(self) -> ClientRegistry[_PodPools]:
        """The per-pod pools."""
        return self._registry

    def _open(self, endpoint: Endpoint) -> _PodPools:
        return _PodPools(endpoint, urllib3.PoolManager(**self._per_pod))

    # -- the request ---------------------------------------------------------------------------

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send *request* to a pod (or to the fallback, for another host)."""
        host = urlsplit(request.url or "").hostname
        if not self.hosts.matches(host):
            if self._fallback is not None:
                return self._fallback.send(request, stream=stream, timeout=timeout, verify=verify,
                                           cert=cert, proxies=proxies)
            raise foreign_host(host, self.service.name, self.hosts, "adapter",
                               "pass fallback=requests.adapters.HTTPAdapter() for the other hosts")
        routing = self._routing
        core = self.service.core
        wanted = Request(key=routing.key_of(request, request.headers))
        attempts = Attempts.for_call(core, wanted, routing.retries)
        while True:  # bounded: every failure retried spends one of the attempts
            endpoint = attempts.pick(core, lambda exc: requests.ConnectionError(
                f"no pod of {self.service.name} to send to: {exc}", request=request
            ))
            lease = self._registry.lease(endpoint)
            sent = self._for_pod(request, lease)
            start = time.monotonic()
            try:
                response = super().send(sent, stream=stream, timeout=timeout, verify=verify, cert=cert,
                                        proxies=None)
            except (requests.ConnectionError, requests.Timeout) as exc:
                lease.failure()
                if attempts.retry(endpoint, exc, _nothing_sent(exc) or self._may_resend(request, exc)):
                    continue
                raise
            except BaseException:
                lease.neutral()
                raise
            if response.status_code in routing.failure_statuses:
                lease.failure()
            else:
                lease.success(time.monotonic() - start)
            response.request = request
            setattr(response, ENDPOINT_ATTRIBUTE, endpoint)
            return response

    def _may_resend(self, request: requests.PreparedRequest, error: BaseException) -> bool:
        """True when *request*, whose connection broke after sending (*error*), may be
        sent again: not a timeout nor a TLS failure, an idempotent method, a body in memory."""
        return (
            isinstance(error, requests.ConnectionError)
            and not isinstance(error, (requests.Timeout, requests.exceptions.SSLError))
            and self._routing.may_resend(request.method or "")
            and _replayable(request.body)
        )

    def _for_pod(
        self, request: requests.PreparedRequest, lease: Lease[_PodPools]
    ) -> requests.PreparedRequest:
        """A copy of *request* carrying its lease, with the Host header settled."""
        sent = request.copy()
        setattr(sent, _LEASE, lease)
        if "Host" not in sent.headers:
            parts = urlsplit(sent.url or "")
            endpoint = lease.endpoint
            if self._routing.host_header == "url":
                host = parts.netloc.rpartition("@")[2]
            else:
                name = self._routing.host_name(endpoint, self.service.name)
                host = name if parts.port is None else f"{name}:{parts.port}"
            sent.headers["Host"] = host
        return sent

    # -- HTTPAdapter hooks ------------------------------------------------------------------------

    def get_connection_with_tls_context(
        self,
        request: requests.PreparedRequest,
        verify: Any,
        proxies: Mapping[str, str] | None = None,
        cert: Any = None,
    ) -> Any:
        """The pool of the pod this request was leased to, with TLS checking its name."""
        lease: Lease[_PodPools] | None = getattr(request, _LEASE, None)
        if lease is None:  # pragma: no cover - only send() calls HTTPAdapter.send
            raise InvalidArgument("HeadlessAdapter sends only through its own send()")
        host_params, tls = self.build_connection_pool_key_attributes(request, verify, cert)
        pool_kwargs: dict[str, Any] = dict(tls)
        endpoint = lease.endpoint
        if host_params["scheme"] == "https":
            name = self._routing.tls_name(endpoint, self.service.name)
            pool_kwargs["server_hostname"] = name
            pool_kwargs["assert_hostname"] = name if pool_kwargs.get("cert_reqs") != "CERT_NONE" else False
        host_params["host"] = endpoint.address
        host_params["port"] = endpoint.port
        return lease.client.manager.connection_from_host(**host_params, pool_kwargs=pool_kwargs)

    def request_url(self, request: requests.PreparedRequest, proxies: Mapping[str, str] | None) -> str:
        """The path: pods are reached directly, never through a proxy."""
        return request.path_url

    def close(self) -> None:
        """Close every pod's pool and the fallback (not the service)."""
        self._registry.close()
        super().close()
        if self._fallback is not None:
            self._fallback.close()


def _replayable(body: object) -> bool:
    return body is None or isinstance(body, (bytes, str))
