"""gRPC channels that send each call to a pod of a headless service.

``pip install 'headless-client[grpc]'``, then use the channel wherever a ``grpc.Channel``
goes (generated stubs included)::

    import grpc
    from headless_client import HeadlessService
    from headless_client.contrib.grpc import HeadlessChannel

    with HeadlessService("greeter.prod", port="grpc") as svc, HeadlessChannel(svc) as channel:
        stub = GreeterStub(channel)
        stub.SayHello(HelloRequest(name="you"))        # a pod picked for this call

Why: HTTP/2 keeps one long connection, so a ClusterIP balances nothing, and grpcio's own
``dns:///`` resolver re-resolves only when a connection fails: pods added by a scale-up
get no calls. This channel keeps one ``grpc.Channel`` per pod (through a
:class:`~headless_client.registry.ClientRegistry`), follows the service's live view, and
picks a pod **per call** with the service's strategy:

* a new pod's channel is built (and starts connecting) as soon as the service sees the pod,
  so it gets calls from the next refresh on, without a failed call;
* a departed pod's channel gets no new call, finishes the calls in flight, and is closed
  (after ``grace`` seconds at most);
* ``UNAVAILABLE`` from a pod is reported (the pod is ejected for a while, DNS refreshed
  early); a unary call the user marks retryable (``retryable=``) is retried on another pod,
  at most ``retries`` times, within the call's timeout;
* :class:`~headless_client.LeastLoaded` counts the calls in flight; other status codes
  count as a pod that answered (a success, with its latency), ``CANCELLED`` and
  ``DEADLINE_EXCEEDED`` say nothing about the pod.

Routing a call (what the strategy receives as :class:`~headless_client.Request`):

* ``key=`` a function ``key(method, request)`` (the request message of unary-request
  calls, ``None`` for streamed requests), or ``key_metadata="x-user"`` to take the key from
  that metadata entry of the call (sent to the server as usual);
* per call, these metadata entries, which are removed before the call is sent:
  ``headless-client-key`` (the key), ``headless-client-ordinal`` (that StatefulSet pod
  only), ``headless-client-partition`` (that partition's leader, with
  :class:`~headless_client.PartitionLeader`; digits are read as an int).

TLS: pass ``credentials=grpc.ssl_channel_credentials(...)``. Each pod's channel dials the
pod's address and checks the certificate against the **pod's own name** (its FQDN from
SRV, ``web-0.web.prod.svc.cluster.local``), or the service's FQDN with
``server_name="service"`` or when DNS gave no pod names (the A/AAAA path); this is grpcio's
``grpc.ssl_target_name_override`` channel option, set per pod.

``AsyncHeadlessChannel`` is the ``grpc.aio`` twin, over an
:class:`~headless_client.AsyncHeadlessService`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Generator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from ._extras import missing_extra

try:
    import grpc
    import grpc.aio
except ImportError as exc:  # pragma: no cover - exercised by a test with grpc hidden
    raise missing_extra("headless_client.contrib.grpc", "grpcio", "grpc") from exc

from ..aio.registry import AsyncClientRegistry
from ..attempts import Attempts
from ..endpoints import Endpoint
from ..errors import HeadlessClientError, InvalidArgument, InvalidName
from ..registry import DEFAULT_GRACE, ClientRegistry
from ..registry_core import Lease
from ..request import Request

__all__ = [
    "KEY_METADATA",
    "ORDINAL_METADATA",
    "PARTITION_METADATA",
    "AsyncHeadlessChannel",
    "HeadlessChannel",
    "NoPodError",
]

log = logging.getLogger("headless_client.grpc")

MC = TypeVar("MC")
CH = TypeVar("CH", bound="_Channel")

KEY_METADATA = "headless-client-key"
ORDINAL_METADATA = "headless-client-ordinal"
PARTITION_METADATA = "headless-client-partition"
_ROUTING = frozenset({KEY_METADATA, ORDINAL_METADATA, PARTITION_METADATA})

#: Codes that say nothing about the pod's health.
_NEUTRAL_CODES = frozenset({grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED})

KeyFunction = Callable[[str, Any], object]
Metadata = Sequence[tuple[str, str | bytes]]
Outcome = Literal["success", "failure", "neutral"]


class NoPodError(grpc.RpcError):
    """No pod to send a call to (an empty view, an unknown ordinal, no leader): an
    ``UNAVAILABLE`` :class:`grpc.RpcError`, whose ``__cause__`` is the library's error."""

    def __init__(self, details: str) -> None:
        super().__init__(details)
        self._details = details

    def code(self) -> grpc.StatusCode:
        """``grpc.StatusCode.UNAVAILABLE``."""
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        """Why no pod could be chosen."""
        return self._details

    def initial_metadata(self) -> tuple[()]:
        """Empty: nothing was sent."""
        return ()

    def trailing_metadata(self) -> tuple[()]:
        """Empty: nothing was sent."""
        return ()

    def debug_error_string(self) -> str:
        """The details."""
        return self._details


class _PodChannel:
    """One pod's ``grpc.Channel`` (or ``grpc.aio.Channel``) and its multicallables."""

    __slots__ = ("calls", "channel", "endpoint")

    def __init__(self, endpoint: Endpoint, channel: Any) -> None:
        self.endpoint = endpoint
        self.channel = channel
        self.calls: dict[tuple[str, str, object, object, bool], Any] = {}

    def callable(self, kind: str, method: str, serializer: object, deserializer: object,
                 registered: bool) -> Any:
        key = (kind, method, serializer, deserializer, registered)
        found = self.calls.get(key)
        if found is None:
            factory = getattr(self.channel, kind)
            kwargs: dict[str, Any] = {
                "request_serializer": serializer, "response_deserializer": deserializer,
            }
            if registered:
                kwargs["_registered_method"] = True
            found = factory(method, **kwargs)
            self.calls[key] = found
        return found


def _target(endpoint: Endpoint) -> str:
    if endpoint.family == 6:
        return f"[{endpoint.address}]:{endpoint.port}"
    return f"{endpoint.address}:{endpoint.port}"


def _partition(value: str | bytes) -> object:
    text = value.decode() if isinstance(value, bytes) else value
    return int(text) if text.isdigit() else text


class _Router:
    """Everything but the I/O: requests from calls, outcomes from codes, channel options."""

    def __init__(
        self,
        service: Any,
        credentials: grpc.ChannelCredentials | None,
        options: Sequence[tuple[str, Any]],
        server_name: Literal["pod", "service"],
        key: KeyFunction | None,
        key_metadata: str | None,
        retryable: bool | Collection[str] | Callable[[str], bool],
        retries: int,
        failure_codes: Collection[grpc.StatusCode],
        compression: grpc.Compression | None,
    ) -> None:
        if credentials is not None and not isinstance(credentials, grpc.ChannelCredentials):
            raise InvalidArgument(f"credentials must be grpc.ChannelCredentials: {credentials!r}")
        if server_name not in ("pod", "service"):
            raise InvalidName(f"server_name must be 'pod' or 'service': {server_name!r}")
        if key is not None and key_metadata is not None:
            raise InvalidName("pass key= or key_metadata=, not both")
        if key is not None and not callable(key):
            raise InvalidArgument(f"key must be a function of (method, request): {key!r}")
        if key_metadata is not None and (not isinstance(key_metadata, str) or not key_metadata):
            raise InvalidName(f"key_metadata must be a metadata key: {key_metadata!r}")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidName(f"retries must be an int >= 0: {retries!r}")
        codes = frozenset(failure_codes)
        if not all(isinstance(c, grpc.StatusCode) for c in codes):
            raise InvalidArgument(f"failure_codes must be grpc.StatusCode values: {failure_codes!r}")
        self.is_retryable = _retry_predicate(retryable)
        try:
            self.options = [(str(name), value) for name, value in options]
        except (TypeError, ValueError):
            raise InvalidArgument(f"options must be (name, value) pairs: {options!r}") from None
        self.service = service
        self.credentials = credentials
        self.server_name = server_name
        self.key = key
        self.key_metadata = key_metadata.lower() if key_metadata else None
        self.retries = retries
        self.failure_codes = codes
        self.compression = compression

    def channel_options(self, endpoint: Endpoint) -> list[tuple[str, Any]]:
        options = list(self.options)
        if self.credentials is not None:
            name = endpoint.hostname if self.server_name == "pod" and endpoint.hostname else self.service.name
            options.append(("grpc.ssl_target_name_override", name))
        return options

    def request(
        self, method: str, message: Any, metadata: Metadata | None
    ) -> tuple[Request, Metadata | None]:
        """The routing request of a call, and the metadata to send (routing entries removed).

        Raises:
            NoPodError: bad routing metadata (caused by the library's error).
        """
        key: object | None = None
        ordinal: int | None = None
        partition: object | None = None
        sent = metadata
        if metadata:
            kept: list[tuple[str, str | bytes]] = []
            for name, value in metadata:
                lowered = name.lower()
                if lowered == KEY_METADATA:
                    key = value
                elif lowered == ORDINAL_METADATA:
                    text = value.decode() if isinstance(value, bytes) else value
                    ordinal = int(text) if text.isdigit() else -1
                elif lowered == PARTITION_METADATA:
                    partition = _partition(value)
                else:
                    if lowered == self.key_metadata and key is None:
                        key = value
                    kept.append((name, value))
            if len(kept) != len(metadata):
                sent = tuple(kept)
        if key is None and self.key is not None:
            key = self.key(method, message)
        try:
            return Request(key=key, ordinal=ordinal, partition=partition), sent
        except HeadlessClientError as exc:
            raise _no_pod(f"bad routing metadata for {self.service.name}: {exc}", exc) from exc

    def attempts(self, method: str, request: Request) -> Attempts:
        """The attempts a call of *method* may make: retries only for retryable methods."""
        core = self.service.core
        return Attempts.for_call(core, request, self.retries, retryable=self.is_retryable(method))

    def pick(self, attempts: Attempts) -> Endpoint:
        """The pod of the next attempt.

        Raises:
            NoPodError: no pod to call (caused by the library's error).
            grpc.RpcError: the last failure, once every pod left was tried.
        """
        return attempts.pick(self.service.core, self._no_pod)

    def _no_pod(self, error: HeadlessClientError) -> NoPodError:
        return _no_pod(f"no pod of {self.service.name} to call: {error}", error)

    def dial(self, endpoint: Endpoint, api: Any) -> Any:
        """A channel to *endpoint* from *api* (``grpc`` or ``grpc.aio``), with this router's
        credentials, options (the pod's TLS name among them) and compression."""
        options = self.channel_options(endpoint)
        if self.credentials is not None:
            return api.secure_channel(_target(endpoint), self.credentials, options, self.compression)
        return api.insecure_channel(_target(endpoint), options, self.compression)

    def outcome(self, code: grpc.StatusCode | None) -> Outcome:
        if code is None or code == grpc.StatusCode.OK:
            return "success"
        if code in self.failure_codes:
            return "failure"
        if code in _NEUTRAL_CODES:
            return "neutral"
        return "success"  # the pod answered, with an application error


def _no_pod(details: str, cause: BaseException) -> NoPodError:
    error = NoPodError(details)
    error.__cause__ = cause
    return error


def _retry_predicate(retryable: object) -> Callable[[str], bool]:
    if isinstance(retryable, bool):
        return (lambda method: True) if retryable else (lambda method: False)
    if isinstance(retryable, (str, bytes)):
        raise InvalidArgument(f"retryable must be a collection of method names, not a str: {retryable!r}")
    if callable(retryable):
        predicate: Callable[[str], bool] = retryable
        return predicate
    if isinstance(retryable, Collection):
        methods = frozenset(str(m) for m in retryable)
        return methods.__contains__
    raise InvalidArgument(f"retryable must be a bool, method names or a predicate: {retryable!r}")


def _settle(router: _Router, lease: Lease[Any], code: grpc.StatusCode | None) -> None:
    outcome = router.outcome(code)
    if outcome == "success":
        lease.success()
    elif outcome == "failure":
        lease.failure()
    else:
        lease.neutral()


@contextlib.contextmanager
def _settled_if_it_fails(router: _Router, lease: Lease[Any]) -> Iterator[None]:
    """Around starting a call on a leased pod: an RPC error settles the lease by its status
    code, anything else leaves it neutral; both propagate. A clean exit settles nothing
    (the caller settles when the call ends)."""
    try:
        yield
    except grpc.RpcError as exc:
        _settle(router, lease, _code_of(exc))
        raise
    except BaseException:
        lease.neutral()
        raise


def _remaining(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


# --------------------------------------------------------------------------------------------
# Connectivity of many pod channels as one
# --------------------------------------------------------------------------------------------

_ORDER = (
    grpc.ChannelConnectivity.READY,
    grpc.ChannelConnectivity.CONNECTING,
    grpc.ChannelConnectivity.IDLE,
    grpc.ChannelConnectivity.TRANSIENT_FAILURE,
)


def _aggregate(states: Collection[grpc.ChannelConnectivity], closed: bool) -> grpc.ChannelConnectivity:
    """READY if any pod is, else CONNECTING, IDLE, TRANSIENT_FAILURE (also: no pod)."""
    if closed:
        return grpc.ChannelConnectivity.SHUTDOWN
    for state in _ORDER:
        if state in states:
            return state
    return grpc.ChannelConnectivity.TRANSIENT_FAILURE


class _Connectivity:
    """The sync channel's ``subscribe``: pod channels watched only while someone listens."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.delivery = threading.RLock()
        self.callbacks: list[Callable[[grpc.ChannelConnectivity], None]] = []
        self.try_to_connect = False
        self.watched: dict[_PodChannel, Callable[[grpc.ChannelConnectivity], None]] = {}
        self.states: dict[_PodChannel, grpc.ChannelConnectivity] = {}
        self.last: grpc.ChannelConnectivity | None = None
        self.closed = False

    def watch(self, pod: _PodChannel) -> None:
        with self.lock:
            if not self.callbacks or pod in self.watched or self.closed:
                return

            def changed(state: grpc.ChannelConnectivity) -> None:
                self.pod_state(pod, state)

            self.watched[pod] = changed
            try_to_connect = self.try_to_connect
        if try_to_connect:
            _preconnect(pod.channel)
        pod.channel.subscribe(changed)

    def forget(self, pod: _PodChannel) -> None:
        with self.lock:
            callback = self.watched.pop(pod, None)
            self.states.pop(pod, None)
        if callback is not None:
            pod.channel.unsubscribe(callback)
        self.publish()

    def pod_state(self, pod: _PodChannel, state: grpc.ChannelConnectivity) -> None:
        with self.lock:
            if pod not in self.watched:
                return
            self.states[pod] = state
        self.publish()

    def publish(self, only: Callable[[grpc.ChannelConnectivity], None] | None = None) -> None:
        """Tell the subscribers (or *only* that one) the current state; one delivery at a
        time, in order, and never to a callback unsubscribed meanwhile."""
        with self.delivery:
            with self.lock:
                state = _aggregate(self.states.values(), self.closed)
                if only is None and state == self.last:
                    return
                if only is None:
                    self.last = state
                callbacks = [only] if only is not None else list(self.callbacks)
            for callback in callbacks:
                with self.lock:
                    if callback not in self.callbacks:
                        continue
                try:
                    callback(state)
                except Exception:  # grpc itself logs and goes on
                    # The channel-wide state has no one pod; this object does not know the service.
                    log.exception("connectivity callback %r raised", callback,
                                  extra={"service": None, "pod": None, "address": None,
                                         "reason": "subscriber_error"})


# --------------------------------------------------------------------------------------------
# The sync channel
# --------------------------------------------------------------------------------------------


def _multicallable(kind: Callable[[], Callable[[Any, str, Any, Any, bool], MC]]) -> Callable[..., MC]:
    """A channel's ``unary_unary``, ``unary_stream``, ``stream_unary`` or ``stream_stream``
    (gRPC's four share one signature): a multicallable of the class *kind* gives (looked
    up when called: the classes come later in this module) whose calls each go to a pod."""

    def multicallable(self: Any, method: str, request_serializer: Any = None,
                      response_deserializer: Any = None, _registered_method: bool = False) -> MC:
        """A multicallable whose calls each go to a picked pod."""
        return kind()(self, method, request_serializer, response_deserializer, _registered_method)

    return multicallable


class _Channel:
    """What both channels are without I/O: their arguments (see :class:`HeadlessChannel`),
    checked into a router, and the service they route over; each twin follows the
    service with its own registry (:meth:`_follow`)."""

    def __init__(
        self,
        service: Any,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        server_name: Literal["pod", "service"] = "pod",
        key: KeyFunction | None = None,
        key_metadata: str | None = None,
        retryable: bool | Collection[str] | Callable[[str], bool] = False,
        retries: int = 2,
        failure_codes: Collection[grpc.StatusCode] = (grpc.StatusCode.UNAVAILABLE,),
        compression: grpc.Compression | None = None,
        grace: float = DEFAULT_GRACE,
        preconnect: bool = True,
    ) -> None:
        self._router = _Router(service, credentials, options, server_name, key, key_metadata, retryable,
                               retries, failure_codes, compression)
        self._preconnect = bool(preconnect)
        self._follow(service, grace)

    def _follow(self, service: Any, grace: float) -> None:
        raise NotImplementedError

    @property
    def service(self) -> Any:
        """The service calls are routed over."""
        return self._router.service


class HeadlessChannel(_Channel, grpc.Channel):
    """A ``grpc.Channel`` whose every call goes to a pod of *service* (see the module docs).

    Args:
        service: a started :class:`~headless_client.HeadlessService` (the caller's:
            closing the channel does not close it).
        credentials: ``grpc.ssl_channel_credentials(...)`` for TLS (default: insecure).
        options: channel options given to every pod's channel.
        server_name: the TLS name each pod must prove: ``"pod"`` (its FQDN when DNS gave
            one) or ``"service"``.
        key: ``key(method, request) -> key`` for the strategy.
        key_metadata: take the key from this metadata entry instead.
        retryable: which unary calls may be retried on another pod after ``UNAVAILABLE``:
            ``True`` (all), method names (``"/pkg.Service/Get"``), or a predicate.
        retries: at most this many extra attempts.
        failure_codes: codes that mean the pod failed (default ``UNAVAILABLE``).
        compression: the pod channels' default compression.
        grace: how long a departed pod's channel may finish its calls (seconds).
        preconnect: start connecting a pod's channel as soon as it is built.

    Raises:
        InvalidArgument / InvalidName: a wrong argument, naming it.
    """

    def _follow(self, service: Any, grace: float) -> None:
        self._connectivity = _Connectivity()
        self._registry: ClientRegistry[_PodChannel] = ClientRegistry(
            service, self._open, close=self._close_pod, failures=(), grace=grace,
        )

    @property
    def registry(self) -> ClientRegistry[_PodChannel]:
        """The per-pod channels (``registry.clients()``: endpoint -> pod channel)."""
        return self._registry

    def _open(self, endpoint: Endpoint) -> _PodChannel:
        channel = self._router.dial(endpoint, grpc)
        pod = _PodChannel(endpoint, channel)
        if self._preconnect:
            _preconnect(channel)
        self._connectivity.watch(pod)
        return pod

    def _close_pod(self, pod: _PodChannel) -> None:
        self._connectivity.forget(pod)
        pod.channel.close()

    # -- multicallables ------------------------------------------------------------------------

    unary_unary = _multicallable(lambda: _UnaryUnary)
    unary_stream = _multicallable(lambda: _UnaryStream)
    stream_unary = _multicallable(lambda: _StreamUnary)
    stream_stream = _multicallable(lambda: _StreamStream)

    # -- connectivity ----------------------------------------------------------------------------

    def subscribe(
        self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        """Call *callback* with the channel's state now and on every change: ``READY``
        when any pod's channel is, else ``CONNECTING``, ``IDLE``, ``TRANSIENT_FAILURE``
        (also with no pod at all); ``SHUTDOWN`` once closed. Pod channels are watched
        only while someone is subscribed."""
        connectivity = self._connectivity
        with connectivity.lock:
            first = not connectivity.callbacks
            connectivity.callbacks.append(callback)
            connectivity.try_to_connect |= bool(try_to_connect)
        pods = self._registry.clients().values()
        if try_to_connect:
            for pod in pods:
                _preconnect(pod.channel)
        if first:
            for pod in pods:
                connectivity.watch(pod)
        threading.Thread(target=connectivity.publish, args=(callback,), daemon=True,
                         name="headless-client-grpc-connectivity").start()

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        """Stop calling *callback*."""
        connectivity = self._connectivity
        with connectivity.lock:
            if callback in connectivity.callbacks:
                connectivity.callbacks.remove(callback)
            last = not connectivity.callbacks
            watched = list(connectivity.watched.items()) if last else []
            if last:
                connectivity.watched.clear()
                connectivity.states.clear()
                connectivity.last = None
        for pod, pod_callback in watched:
            pod.channel.unsubscribe(pod_callback)

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pod channel (calls in flight are cancelled); the service stays open."""
        with self._connectivity.lock:
            self._connectivity.closed = True
        self._registry.close()

    def __enter__(self) -> HeadlessChannel:
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<HeadlessChannel {self._registry!r}>"


def _preconnect(channel: grpc.Channel) -> None:
    """Ask *channel* to connect now, without waiting: what grpcio's own connectivity
    poller does (``check_connectivity_state(True)`` on the core channel). grpcio offers it
    publicly only through ``subscribe(..., try_to_connect=True)``, whose polling thread
    races with ``close()`` (it may poll a closed channel and die); where the core channel
    is not reachable, the first call connects instead."""
    core = getattr(channel, "_channel", None)
    check = getattr(core, "check_connectivity_state", None)
    if callable(check):
        with contextlib.suppress(Exception):  # closed meanwhile: nothing to connect
            check(True)


if TYPE_CHECKING:  # grpc's sync multicallables are generic in the stubs only
    _UnaryUnaryBase = grpc.UnaryUnaryMultiCallable[Any, Any]
    _UnaryStreamBase = grpc.UnaryStreamMultiCallable[Any, Any]
    _StreamUnaryBase = grpc.StreamUnaryMultiCallable[Any, Any]
    _StreamStreamBase = grpc.StreamStreamMultiCallable[Any, Any]
else:
    _UnaryUnaryBase = grpc.UnaryUnaryMultiCallable
    _UnaryStreamBase = grpc.UnaryStreamMultiCallable
    _StreamUnaryBase = grpc.StreamUnaryMultiCallable
    _StreamStreamBase = grpc.StreamStreamMultiCallable


class _OfKind(Generic[CH]):
    """What every multicallable keeps, sync or asyncio: its kind (``unary_unary``...), its
    channel and that channel's router, the method and its (de)serialisers."""

    kind = ""

    def __init__(self, channel: CH, method: str, serializer: Any, deserializer: Any,
                 registered: bool) -> None:
        self._channel = channel
        self._router = channel._router
        self._method = method
        self._serializer = serializer
        self._deserializer = deserializer
        self._registered = registered

    def _on(self, pod: _PodChannel) -> Any:
        """The multicallable of this kind on *pod*'s own channel."""
        return pod.callable(self.kind, self._method, self._serializer, self._deserializer, self._registered)


class _MultiCallable(_OfKind["HeadlessChannel"]):
    """What the four sync kinds share: the pick, the lease, the per-pod multicallable."""

    def _begin(self, attempts: Attempts) -> tuple[Lease[_PodChannel], Any]:
        lease = self._channel._registry.lease(self._router.pick(attempts))
        try:
            call = self._on(lease.client)
        except BaseException:
            lease.neutral()
            raise
        return lease, call

    def _kwargs(self, timeout: float | None, metadata: Metadata | None, credentials: Any,
                wait_for_ready: bool | None, compression: Any) -> dict[str, Any]:
        return {"timeout": timeout, "metadata": metadata, "credentials": credentials,
                "wait_for_ready": wait_for_ready, "compression": compression}

    def _watched(self, request: Request, invoke: Callable[[Any], Any]) -> Any:
        """Start a call that settles when done (futures and response streams)."""
        lease, multicallable = self._begin(Attempts(request, 1))
        with _settled_if_it_fails(self._router, lease):
            call = invoke(multicallable)
        router = self._router
        call.add_done_callback(lambda done: _settle(router, lease, _code_of(done)))
        return call

    def _blocking(self, request_message: Any, routing: Request, timeout: float | None,
                  invoke: Callable[[Any, float | None], Any]) -> Any:
        """A blocking unary-response call, retried on other pods when allowed."""
        router = self._router
        attempts = router.attempts(self._method, routing)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:  # bounded: every failure retried spends one of the attempts
            lease, multicallable = self._begin(attempts)
            try:
                result = invoke(multicallable, _remaining(deadline))
            except grpc.RpcError as exc:
                code = _code_of(exc)
                _settle(router, lease, code)
                if attempts.retry(lease.endpoint, exc, code in router.failure_codes):
                    continue
                raise
            except BaseException:
                lease.neutral()
                raise
            lease.success()
            return result


def _code_of(call: Any) -> grpc.StatusCode | None:
    code = getattr(call, "code", None)
    if not callable(code):
        return None
    try:
        value = code()
    except Exception:  # a future cancelled before it started has no code
        return grpc.StatusCode.CANCELLED
    return value if isinstance(value, grpc.StatusCode) else None


class _UnaryUnary(_MultiCallable, _UnaryUnaryBase):
    kind = "unary_unary"

    def __call__(self, request: Any, timeout: float | None = None, metadata: Metadata | None = None,
                 credentials: Any = None, wait_for_ready: bool | None = None, compression: Any = None) -> Any:
        response, _ = self.with_call(request, timeout, metadata, credentials, wait_for_ready, compression)
        return response

    def with_call(self, request: Any, timeout: float | None = None, metadata: Metadata | None = None,
                  credentials: Any = None, wait_for_ready: bool | None = None,
                  compression: Any = None) -> tuple[Any, grpc.Call]:
        routing, sent = self._router.request(self._method, request, metadata)

        def invoke(multicallable: Any, remaining: float | None) -> Any:
            return multicallable.with_call(request, **self._kwargs(remaining, sent, credentials,
                                                                   wait_for_ready, compression))

        result: tuple[Any, grpc.Call] = self._blocking(request, routing, timeout, invoke)
        return result

    def future(self, request: Any, timeout: float | None = None, metadata: Metadata | None = None,
               credentials: Any = None, wait_for_ready: bool | None = None, compression: Any = None) -> Any:
        routing, sent = self._router.request(self._method, request, metadata)
        kwargs = self._kwargs(timeout, sent, credentials, wait_for_ready, compression)
        return self._watched(routing, lambda mc: mc.future(request, **kwargs))


class _UnaryStream(_MultiCallable, _UnaryStreamBase):
    kind = "unary_stream"

    def __call__(self, request: Any, timeout: float | None = None, metadata: Metadata | None = None,
                 credentials: Any = None, wait_for_ready: bool | None = None, compression: Any = None) -> Any:
        routing, sent = self._router.request(self._method, request, metadata)
        kwargs = self._kwargs(timeout, sent, credentials, wait_for_ready, compression)
        return self._watched(routing, lambda mc: mc(request, **kwargs))


class _StreamUnary(_MultiCallable, _StreamUnaryBase):
    kind = "stream_unary"

    def __call__(self, request_iterator: Iterator[Any], timeout: float | None = None,
                 metadata: Metadata | None = None, credentials: Any = None,
                 wait_for_ready: bool | None = None, compression: Any = None) -> Any:
        response, _ = self.with_call(request_iterator, timeout, metadata, credentials, wait_for_ready,
                                     compression)
        return response

    def with_call(self, request_iterator: Iterator[Any], timeout: float | None = None,
                  metadata: Metadata | None = None, credentials: Any = None,
                  wait_for_ready: bool | None = None, compression: Any = None) -> tuple[Any, grpc.Call]:
        routing, sent = self._router.request(self._method, None, metadata)
        lease, multicallable = self._begin(Attempts(routing, 1))  # a stream of requests is sent once
        with _settled_if_it_fails(self._router, lease):
            result: tuple[Any, grpc.Call] = multicallable.with_call(
                request_iterator, **self._kwargs(timeout, sent, credentials, wait_for_ready, compression))
        lease.success()
        return result

    def future(self, request_iterator: Iterator[Any], timeout: float | None = None,
               metadata: Metadata | None = None, credentials: Any = None,
               wait_for_ready: bool | None = None, compression: Any = None) -> Any:
        routing, sent = self._router.request(self._method, None, metadata)
        kwargs = self._kwargs(timeout, sent, credentials, wait_for_ready, compression)
        return self._watched(routing, lambda mc: mc.future(request_iterator, **kwargs))


class _StreamStream(_MultiCallable, _StreamStreamBase):
    kind = "stream_stream"

    def __call__(self, request_iterator: Iterator[Any], timeout: float | None = None,
                 metadata: Metadata | None = None, credentials: Any = None,
                 wait_for_ready: bool | None = None, compression: Any = None) -> Any:
        routing, sent = self._router.request(self._method, None, metadata)
        kwargs = self._kwargs(timeout, sent, credentials, wait_for_ready, compression)
        return self._watched(routing, lambda mc: mc(request_iterator, **kwargs))


# --------------------------------------------------------------------------------------------
# The asyncio channel
# --------------------------------------------------------------------------------------------


class AsyncHeadlessChannel(_Channel, grpc.aio.Channel):
    """A ``grpc.aio.Channel`` whose every call goes to a pod of an
    :class:`~headless_client.AsyncHeadlessService`; the arguments of
    :class:`HeadlessChannel`. Build it on the service's event loop.

    A unary-unary call marked retryable is retried on another pod when it is awaited;
    streaming calls are the pod channel's own call objects (not retried), settled when
    they end.
    """

    def _follow(self, service: Any, grace: float) -> None:
        self._close_grace: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._changed = asyncio.Event()
        self._registry: AsyncClientRegistry[_PodChannel] = AsyncClientRegistry(
            service, self._open, close=self._close_pod, failures=(), grace=grace,
        )
        self._registry.start_nowait()
        self._unsubscribe = service.subscribe(self._view_changed)

    @property
    def registry(self) -> AsyncClientRegistry[_PodChannel]:
        """The per-pod channels (``registry.clients()``: endpoint -> pod channel)."""
        return self._registry

    def _open(self, endpoint: Endpoint) -> _PodChannel:
        channel = self._router.dial(endpoint, grpc.aio)
        if self._preconnect:
            channel.get_state(try_to_connect=True)
        return _PodChannel(endpoint, channel)

    async def _close_pod(self, pod: _PodChannel) -> None:
        await pod.channel.close(self._close_grace)

    def _view_changed(self, old: object, new: object) -> None:
        self._changed.set()

    # -- multicallables ------------------------------------------------------------------------

    unary_unary = _multicallable(lambda: _AioUnaryUnary)
    unary_stream = _multicallable(lambda: _AioUnaryStream)
    stream_unary = _multicallable(lambda: _AioStreamUnary)
    stream_stream = _multicallable(lambda: _AioStreamStream)

    # -- connectivity ----------------------------------------------------------------------------

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        """``READY`` when any pod's channel is, else ``CONNECTING``, ``IDLE``,
        ``TRANSIENT_FAILURE`` (also with no pod); ``SHUTDOWN`` once closed."""
        pods = self._registry.clients().values()
        states = [pod.channel.get_state(try_to_connect) for pod in pods]
        return _aggregate(states, self._registry.closed)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        """Return once :meth:`get_state` differs from *last_observed_state*."""
        while self.get_state() == last_observed_state:
            if self._registry.closed:
                return
            self._changed.clear()
            waits = [asyncio.ensure_future(pod.channel.wait_for_state_change(pod.channel.get_state()))
                     for pod in self._registry.clients().values()]
            waits.append(asyncio.ensure_future(self._changed.wait()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
                await asyncio.gather(*waits, return_exceptions=True)

    async def channel_ready(self) -> None:
        """Return once some pod's channel is ``READY`` (connecting them meanwhile)."""
        while True:
            state = self.get_state(try_to_connect=True)
            if state == grpc.ChannelConnectivity.READY:
                return
            if state == grpc.ChannelConnectivity.SHUTDOWN:
                raise NoPodError(f"{self.service.name}: the channel is closed")
            await self.wait_for_state_change(state)

    # -- lifecycle ---------------------------------------------------------------------------

    async def close(self, grace: float | None = None) -> None:
        """Close every pod channel (with grpc's *grace* for the calls in flight); the
        service stays open."""
        self._unsubscribe()
        self._close_grace = grace
        await self._registry.aclose()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._changed.set()

    async def __aenter__(self) -> AsyncHeadlessChannel:
        return self

    async def __aexit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        await self.close()

    def _watch(self, lease: Lease[_PodChannel], call: Any) -> None:
        """Settle *lease* when *call* is done (a task reads its final code)."""
        router = self._router

        async def settle(done: Any) -> None:
            code: grpc.StatusCode | None = grpc.StatusCode.CANCELLED
            if not done.cancelled():
                with contextlib.suppress(asyncio.CancelledError):
                    code = await done.code()
            _settle(router, lease, code)

        def on_done(done: Any) -> None:
            task = asyncio.get_running_loop().create_task(settle(done))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        call.add_done_callback(on_done)

    def __repr__(self) -> str:
        return f"<AsyncHeadlessChannel {self._registry!r}>"


class _AioBase(_OfKind["AsyncHeadlessChannel"]):
    def _start(
        self, attempts: Attempts, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Lease[_PodChannel], Any]:
        lease = self._channel._registry.lease_now(self._router.pick(attempts))
        try:
            call = self._on(lease.client)(*args, **kwargs)
        except BaseException:
            lease.neutral()
            raise
        self._channel._watch(lease, call)
        return lease, call


class _AioStreaming(_AioBase):
    """``unary_stream``, ``stream_unary`` and ``stream_stream``: the pod channel's own call."""

    def _invoke(self, request: Any, timeout: float | None, metadata: Any, credentials: Any,
                wait_for_ready: bool | None, compression: Any) -> Any:
        unary = self.kind == "unary_stream"
        routing, sent = self._router.request(self._method, request if unary else None, metadata)
        kwargs = {"timeout": timeout, "metadata": sent, "credentials": credentials,
                  "wait_for_ready": wait_for_ready, "compression": compression}
        args = (request,) if unary or request is not None else ()
        _, call = self._start(Attempts(routing, 1), args, kwargs)
        return call


class _AioUnaryStream(_AioStreaming, grpc.aio.UnaryStreamMultiCallable[Any, Any]):
    kind = "unary_stream"

    def __call__(self, request: Any, *, timeout: float | None = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: bool | None = None,
                 compression: Any = None) -> Any:
        return self._invoke(request, timeout, metadata, credentials, wait_for_ready, compression)


class _AioStreamsIn(_AioStreaming):
    """``stream_unary`` and ``stream_stream``: called with an iterator of requests."""

    def __call__(self, request_iterator: Any = None, timeout: float | None = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: bool | None = None,
                 compression: Any = None) -> Any:
        return self._invoke(request_iterator, timeout, metadata, credentials, wait_for_ready, compression)


class _AioStreamUnary(_AioStreamsIn, grpc.aio.StreamUnaryMultiCallable[Any, Any]):
    kind = "stream_unary"


class _AioStreamStream(_AioStreamsIn, grpc.aio.StreamStreamMultiCallable[Any, Any]):
    kind = "stream_stream"


class _AioUnaryUnary(_AioBase, grpc.aio.UnaryUnaryMultiCallable[Any, Any]):
    kind = "unary_unary"

    def __call__(self, request: Any, *, timeout: float | None = None, metadata: Any = None,
                 credentials: Any = None, wait_for_ready: bool | None = None,
                 compression: Any = None) -> grpc.aio.UnaryUnaryCall[Any, Any]:
        routing, sent = self._router.request(self._method, request, metadata)
        return _RetryingUnaryUnaryCall(self, request, routing, timeout, sent, credentials, wait_for_ready,
                                       compression)


class _RetryingUnaryUnaryCall(grpc.aio.UnaryUnaryCall[Any, Any]):
    """A unary call that moves to another pod after ``UNAVAILABLE`` when retryable. The
    first attempt starts at once (as grpc.aio's calls do); retries happen when awaited."""

    def __init__(self, owner: _AioUnaryUnary, request: Any, routing: Request, timeout: float | None,
                 metadata: Metadata | None, credentials: Any, wait_for_ready: bool | None,
                 compression: Any) -> None:
        self._owner = owner
        self._request = request
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._kwargs = {"metadata": metadata, "credentials": credentials, "wait_for_ready": wait_for_ready,
                        "compression": compression}
        self._attempts = owner._router.attempts(owner._method, routing)
        self._lease, self._call = self._attempt()

    def _attempt(self) -> tuple[Lease[_PodChannel], Any]:
        kwargs = dict(self._kwargs, timeout=_remaining(self._deadline))
        return self._owner._start(self._attempts, (self._request,), kwargs)

    async def _result(self) -> Any:
        failure_codes = self._owner._router.failure_codes
        while True:  # bounded: every failure retried spends one of the attempts
            try:
                return await self._call
            except grpc.aio.AioRpcError as exc:
                if not self._attempts.retry(self._lease.endpoint, exc, exc.code() in failure_codes):
                    raise
            self._lease, self._call = self._attempt()  # with no pod left: the last failure

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    # The current attempt answers for the call.
    def cancelled(self) -> bool:
        return bool(self._call.cancelled())

    def cancel(self) -> bool:
        return bool(self._call.cancel())

    def done(self) -> bool:
        return bool(self._call.done())

    def add_done_callback(self, callback: Any) -> None:
        self._call.add_done_callback(lambda _: callback(self))

    def time_remaining(self) -> float | None:
        return _remaining(self._deadline)

    async def initial_metadata(self) -> Any:
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> Any:
        return await self._call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        code: grpc.StatusCode = await self._call.code()
        return code

    async def details(self) -> str:
        details: str = await self._call.details()
        return details

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()

    def __repr__(self) -> str:
        return f"<headless call {self._owner._method} to {self._lease.endpoint}: {self._call!r}>"
