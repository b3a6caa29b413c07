"""httpx transports that send each request to a pod of a headless service.

``pip install 'headless-client[httpx]'``, then::

    import httpx
    from headless_client import HeadlessService, Sticky
    from headless_client.contrib.httpx import HeadlessTransport

    with HeadlessService("web.prod", port="http", strategy=Sticky()) as svc:
        with httpx.Client(transport=HeadlessTransport(svc, header="X-User"),
                          base_url="http://web.prod") as client:
            client.get("/profile", headers={"X-User": "42"})   # always the same pod for user 42

Host scoping: the transport sends to pods **only requests whose host is the service**, in
any spelling the service's resolver accepts (``web``, ``web.prod``, ``web.prod.svc``, the
FQDN, any case, a trailing dot). A request for any other host is passed to *fallback* (an
``httpx.HTTPTransport()`` of your own) when given, else refused with
:class:`~headless_client.errors.ForeignHost`: a pod never receives a request, or its
``Authorization`` header, meant for another host. The simplest way to use one client for
the service and the rest of the world is httpx's own ``mounts=``::

    client = httpx.Client(mounts={"http://web.prod": HeadlessTransport(svc)})

For every request to the service the transport picks a pod with the service's strategy and
sends the request to that pod's address and port (from DNS): the URL's host and port only
name the service. What the server sees is unchanged: the ``Host`` header stays as the URL wrote it
(``host_header=`` changes that), and for ``https`` the TLS server name (SNI, and the name the
certificate must match) is the pod's FQDN when DNS gave one, else the service's FQDN
(``server_name="service"`` always uses the service's). Each pod has a transport (a connection
pool) of its own, kept in a :class:`~headless_client.registry.ClientRegistry`: built when the
pod appears, closed when it leaves or moves, after the requests still reading from it (at
most ``grace`` seconds); so a pooled TLS connection verified for one pod is never reused
for another pod that later gets its address.

Routing: ``key=`` (a function of the request) or ``header=`` (a header's value) gives the
strategy its key (:class:`~headless_client.Sticky` needs one). Per request,
``extensions={"headless_client.key": k}``, ``{"headless_client.ordinal": n}`` (that pod) or
``{"headless_client.partition": p}`` (that partition's leader) override it.

Health: a response reports ``report_success(endpoint, latency)`` (time to the response
headers) when its body is closed; a transport error reports ``report_failure(endpoint)``
(the pod is ejected for a while), as does a status in ``failure_statuses``. Strategies
that track load (:class:`~headless_client.LeastLoaded`) count the request in flight until
then. The endpoint used is in ``response.extensions["headless_client.endpoint"]``.

Retries, on another pod, at most ``retries`` times: a request whose connection could not
be established (``httpx.ConnectError``/``ConnectTimeout``: nothing was sent) is retried
whatever its method; a request whose connection broke (``ReadError``, ``WriteError``,
``RemoteProtocolError``) only when its method is idempotent (``retry_methods``: GET, HEAD,
OPTIONS, PUT, DELETE, TRACE) and its body can be sent again. Timeouts are not retried, nor
are requests pinned to an ordinal or a partition. When every attempt failed the last
httpx error is raised; when there is no pod to try (empty view, unknown ordinal, no
leader) an ``httpx.ConnectError`` is raised whose ``__cause__`` is the library's error.
"""

from __future__ import annotations

from ._extras import missing_extra

try:
    import httpx  # noqa: F401 - checked here, for the message
except ImportError as exc:  # pragma: no cover - exercised by a test with httpx hidden
    raise missing_extra("headless_client.contrib.httpx", "httpx", "httpx") from exc

from ._http_routing import IDEMPOTENT_METHODS
from ._httpx_async import AsyncHeadlessTransport
from ._httpx_router import ENDPOINT_EXTENSION, KEY_EXTENSION, ORDINAL_EXTENSION, PARTITION_EXTENSION
from ._httpx_sync import HeadlessTransport

__all__ = [
    "ENDPOINT_EXTENSION",
    "IDEMPOTENT_METHODS",
    "KEY_EXTENSION",
    "ORDINAL_EXTENSION",
    "PARTITION_EXTENSION",
    "AsyncHeadlessTransport",
    "HeadlessTransport",
]

# The transports live in private modules (the blocking one is generated from the asyncio
# one); their public home is here.
HeadlessTransport.__module__ = AsyncHeadlessTransport.__module__ = __name__
