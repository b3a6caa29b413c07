"""The EndpointSlice resolvers: a service's resolver protocol, answered from API watches.

:class:`EndpointSliceResolver` (blocking, for :class:`~headless_client.HeadlessService`)
and :class:`AsyncEndpointSliceResolver` (awaited, for
:class:`~headless_client.AsyncHeadlessService`) implement the same protocol as the DNS
resolvers (``qualify``, ``resolve``, ``resolve_host``, ``timeout``) plus
``watch_service``, so a started service is told of every change at once and resolves
then, instead of at its next refresh.

The first ``resolve`` of a Service starts one :class:`~.watch.SliceWatch` for it (list,
then watch) and waits, at most ``timeout`` seconds, for its first list; later calls answer
from the watched slices without any request. The watch lives until the resolver is
closed. While the API is unreachable, ``resolve`` keeps answering from the last slices
seen (the service's view stays as it was) and the watch retries with back-off.

The blocking resolver runs its watches on one event loop in a daemon thread
(``headless-client-kube``), started with the first watch; the asyncio resolver runs them as
tasks of the running loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import os
import random
import threading
import urllib.parse
from collections.abc import Callable, Coroutine, Mapping
from pathlib import Path
from typing import Any, Final, TypedDict

from typing_extensions import Self, Unpack

from ... import _forksafe
from ..._validate import seconds
from ...endpoints import EndpointSet
from ...errors import (
    InvalidName,
    KubeConfigError,
    KubernetesAPIError,
    ResolutionError,
    ServiceNotFound,
)
from ...names import DEFAULT_CLUSTER_DOMAIN, service_fqdn
from .config import KubernetesConfig, auto_config
from .slices import build_endpoints
from .watch import KubeAPI, SliceWatch

__all__ = ["AsyncEndpointSliceResolver", "EndpointSliceResolver", "ZoneSources"]

log = logging.getLogger("headless_client.contrib.kubernetes")

LOOP_THREAD: Final = "headless-client-kube"
ZONE_LABELS: Final = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
ZONE_ENV: Final = "POD_ZONE"
NODE_ENV: Final = "NODE_NAME"


class ZoneSources(TypedDict, total=False):
    """Where ``own_zone()`` looks for this pod's zone, in this order: the variable
    ``zone_env`` of ``environ``, the file ``zone_file``, then the node named by the
    variable ``node_env`` (read through the API)."""

    environ: Mapping[str, str] | None
    zone_env: str
    zone_file: str | os.PathLike[str] | None
    node_env: str


class _Entry:
    """One watched Service: its watch, the task or future running it, its subscribers."""

    __slots__ = ("callbacks", "runner", "watch")

    def __init__(self, watch: SliceWatch) -> None:
        self.watch = watch
        self.runner: asyncio.Task[None] | concurrent.futures.Future[None] | None = None
        self.callbacks: tuple[Callable[[], None], ...] = ()

    @property
    def settled(self) -> bool:
        """True once the first list succeeded or an attempt failed."""
        return self.watch.view is not None or self.watch.error is not None


class _SliceSource:
    """What both resolvers share: arguments, names, the watches' table, building answers."""

    #: An empty answer from the API is the truth (no negative caches, no rollout blips as
    #: with DNS): services using this source apply no empty grace unless asked to.
    empty_is_final = True

    def __init__(
        self,
        config: KubernetesConfig | None = None,
        *,
        namespace: str | None = None,
        cluster_domain: str | None = None,
        timeout: float = 5.0,
        terminating: bool = True,
        watch_timeout: float = 300.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if config is not None and not isinstance(config, KubernetesConfig):
            raise InvalidName(f"config must be a KubernetesConfig, not {type(config).__name__}: {config!r}")
        self.config: KubernetesConfig = config if config is not None else auto_config()
        self.timeout = float(seconds("timeout", timeout, maximum=3600.0))
        self.watch_timeout = float(seconds("watch_timeout", watch_timeout, maximum=86400.0))
        self.backoff_min = float(seconds("backoff_min", backoff_min, maximum=3600.0))
        self.backoff_max = float(seconds("backoff_max", backoff_max, maximum=3600.0))
        if self.backoff_max < self.backoff_min:
            raise InvalidName(f"backoff_max ({backoff_max!r}) must be >= backoff_min ({backoff_min!r})")
        self.namespace = namespace or self.config.namespace
        domain = (cluster_domain or DEFAULT_CLUSTER_DOMAIN).rstrip(".")
        service_fqdn("x.y", cluster_domain=domain)  # validates the domain
        self.cluster_domain = domain
        self.terminating = bool(terminating)
        self._api = KubeAPI(self.config, self.timeout)
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._prepare()

    def _prepare(self) -> None:
        """The twin's own state (how it waits and where its watches run), made last."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(server={self.config.server!r}, namespace={self.namespace!r}, "
            f"cluster_domain={self.cluster_domain!r}, watching={len(self._entries)})"
        )

    # -- names ------------------------------------------------------------------------------

    def qualify(self, service: str, namespace: str | None = None) -> str:
        """The FQDN (no trailing dot) of *service*, as DNS would name it.

        Raises:
            InvalidName: a bad name, or no namespace.
        """
        return service_fqdn(service, namespace or self.namespace, cluster_domain=self.cluster_domain)

    def _key(self, service: str, namespace: str | None) -> tuple[str, str]:
        fqdn = self.qualify(service, namespace)
        name, ns = fqdn.split(".")[:2]
        return ns, name

    # -- the watches (under the lock) --------------------------------------------------------

    def _entry(self, key: tuple[str, str]) -> tuple[_Entry, bool]:
        """The entry of *key*, created if new; True when its watch must be started."""
        if self._closed:
            raise ResolutionError(f"{type(self).__name__} is closed")
        entry = self._entries.get(key)
        if entry is None:
            namespace, service = key
            watch = SliceWatch(
                self._api,
                service,
                namespace,
                functools.partial(self._on_event, key),
                watch_timeout=self.watch_timeout,
                backoff_min=self.backoff_min,
                backoff_max=self.backoff_max,
                rng=random.Random(),
            )
            entry = self._entries[key] = _Entry(watch)
        return entry, entry.runner is None

    def _on_event(self, key: tuple[str, str], changed: bool) -> None:
        """On the loop: the watch of *key* changed (*changed*) or failed."""
        entry = self._entries.get(key)
        self._wake()
        if entry is None or not changed:
            return
        for callback in entry.callbacks:
            try:
                callback()
            except Exception:  # a subscriber's bug must not stop the watch
                log.exception("a watch_service callback of %s.%s failed", key[1], key[0],
                              extra={"service": self.qualify(key[1], key[0]), "pod": None,
                                     "address": None, "reason": "subscriber_error"})

    def _wake(self) -> None:
        raise NotImplementedError

    def _subscribe(self, entry: _Entry, callback: Callable[[], None]) -> Callable[[], None]:
        if not callable(callback):
            raise InvalidName(f"callback must be callable: {callback!r}")
        with self._lock:
            entry.callbacks = (*entry.callbacks, callback)

        def stop() -> None:
            with self._lock:
                entry.callbacks = tuple(c for c in entry.callbacks if c is not callback)

        return stop

    # -- answers ------------------------------------------------------------------------------

    def _answer(self, entry: _Entry, port: int | str, protocol: str) -> EndpointSet:
        watch = entry.watch
        view = watch.view
        if view is None:
            raise _unsettled(watch, self.timeout)
        return build_endpoints(
            view,
            service=watch.service,
            namespace=watch.namespace,
            cluster_domain=self.cluster_domain,
            port=port,
            protocol=protocol,
            terminating=self.terminating,
        )

    def _host_key(self, hostname: str) -> tuple[str, str, str]:
        name = hostname.lower().rstrip(".")
        labels = name.split(".")
        if len(labels) < 5 or labels[3] != "svc" or ".".join(labels[4:]) != self.cluster_domain:
            raise InvalidName(
                f"{hostname!r} is not a pod name <host>.<service>.<namespace>.svc.{self.cluster_domain}"
            )
        return name, labels[2], labels[1]

    @staticmethod
    def _host_answer(answer: EndpointSet, name: str) -> EndpointSet:
        found = [ep for ep in answer if ep.hostname == name]
        if not found:
            raise ServiceNotFound(f"{name} is not an endpoint of its Service (EndpointSlices)")
        return EndpointSet(found, name=name)

    @staticmethod
    def _zone_of(node: Mapping[str, Any], name: str) -> str | None:
        labels = (node.get("metadata") or {}).get("labels") or {}
        for label in ZONE_LABELS:
            if labels.get(label):
                return str(labels[label])
        log.warning("node %r has no %s label", name, ZONE_LABELS[0],
                    extra={"service": None, "pod": None, "address": None, "reason": "node_zone_missing"})
        return None

    @classmethod
    def _zone_or_node(
        cls,
        *,
        environ: Mapping[str, str] | None = None,
        zone_env: str = ZONE_ENV,
        zone_file: str | os.PathLike[str] | None = None,
        node_env: str = NODE_ENV,
    ) -> tuple[str | None, str | None]:
        """``own_zone()`` without I/O to the API: the zone when the environment gives it,
        else the node whose zone label must be read (None when there is none)."""
        zone = cls._zone_from_environment(environ, zone_env, zone_file)
        if zone is not None:
            return zone, None
        return None, (os.environ if environ is None else environ).get(node_env) or None

    @staticmethod
    def _zone_from_environment(
        environ: Mapping[str, str] | None, zone_env: str, zone_file: str | os.PathLike[str] | None
    ) -> str | None:
        env = os.environ if environ is None else environ
        if env.get(zone_env):
            return env[zone_env].strip()
        if zone_file is not None:
            try:
                text = Path(zone_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                log.warning("cannot read the zone file %s: %s", zone_file, exc,
                            extra={"service": None, "pod": None, "address": None, "reason": "zone_file"})
            else:
                if text:
                    return text
        return None


def _node_path(node: str) -> str:
    if not isinstance(node, str) or not node:
        raise InvalidName(f"node must be a node name: {node!r}")
    return "/api/v1/nodes/" + urllib.parse.quote(node, safe="")


def _unsettled(watch: SliceWatch, timeout: float) -> ResolutionError:
    """The error for a Service whose slices were never listed: its watch's last failure
    (a fresh exception of the same type), else a timeout."""
    error = watch.error
    if isinstance(error, KubernetesAPIError):
        return type(error)(str(error), error.status, error.reason)
    if isinstance(error, KubeConfigError):
        return ResolutionError(str(error))
    return KubernetesAPIError(
        f"no EndpointSlices of {watch.name} from the Kubernetes API at {watch.api.config.server} "
        f"within {timeout:g} s"
    )


# -- blocking ---------------------------------------------------------------------------------


class _LoopThread:
    """One event loop in a daemon thread, started on first use, for the blocking resolver."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def ensure(self) -> asyncio.AbstractEventLoop:
        if self.loop is not None and self.thread is not None and self.thread.is_alive():
            return self.loop
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.close()

        thread = threading.Thread(target=run, name=LOOP_THREAD, daemon=True)
        thread.start()
        ready.wait(5.0)
        self.loop, self.thread = loop, thread
        return loop

    def stop(self, timeout: float) -> None:
        loop, thread = self.loop, self.thread
        self.loop = self.thread = None
        if loop is None or thread is None or not thread.is_alive():
            return

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(cancel_all(), loop)
        if thread is not threading.current_thread():
            thread.join(timeout)


class EndpointSliceResolver(_SliceSource):
    """Resolve headless Services from the Kubernetes API's EndpointSlices (blocking).

    Use it wherever a :class:`~headless_client.Resolver` goes::

        with EndpointSliceResolver() as resolver:           # in a pod: its service account
            with hc.HeadlessService("web.prod", port="http", resolver=resolver) as svc:
                ...

    Args:
        config: the API server and credentials; default :func:`~.config.auto_config`
            (in-cluster, else kubeconfig).
        namespace: the namespace of one-label service names (default: the config's).
        cluster_domain: the cluster's DNS domain, to name pods (default ``cluster.local``).
        timeout: seconds one API request may take, and the most the first ``resolve`` of a
            Service waits for its first list.
        terminating: list terminating pods that still serve, marked ``terminating=True``
            (services send them no new work, calls in flight finish); ``False`` drops them
            as DNS does.
        watch_timeout: mean seconds before the API ends a watch (it is then renewed).
        backoff_min: the first back-off after a failed API attempt, in seconds (doubling).
        backoff_max: the longest back-off between failed API attempts, in seconds.

    Raises:
        KubeConfigError: no usable configuration.
        InvalidName: a bad argument.

    Thread-safe. Needs RBAC ``get``, ``list`` and ``watch`` on ``endpointslices``
    (``discovery.k8s.io``) in the Services' namespaces.
    """

    def _prepare(self) -> None:
        self._cond = threading.Condition(self._lock)
        self._loop = _LoopThread()
        self._fork_order = 1
        _forksafe.register(self)

    def _after_fork_in_child(self) -> None:
        # The parent's loop thread does not exist here (and its loop shares the parent's
        # selector): forget it; the watches restart on the next resolve, from their last view.
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._loop = _LoopThread()
        for entry in self._entries.values():
            entry.runner = None

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _started(self, service: str, namespace: str | None) -> _Entry:
        key = self._key(service, namespace)
        with self._lock:
            entry, start = self._entry(key)
            if start:
                loop = self._loop.ensure()
                entry.runner = asyncio.run_coroutine_threadsafe(entry.watch.run(), loop)
        return entry

    def _settle(self, entry: _Entry) -> None:
        with self._cond:
            self._cond.wait_for(lambda: entry.settled, timeout=self.timeout)

    def resolve(
        self, service: str, port: int | str, *, protocol: str = "tcp", namespace: str | None = None
    ) -> EndpointSet:
        """Every ready (and, with *terminating*, every terminating but serving) endpoint of
        *service*, merged from all its EndpointSlices.

        A ``str`` port is a port name (its number read from each slice), an ``int`` one is
        used as given. Hostnames, ordinals, zones, nodes and pod names come from the slices
        whatever the port.

        Raises:
            InvalidName: a bad service name or namespace.
            ServiceNotFound: no slices (no such Service), or no such port name.
            KubernetesForbidden: RBAC refused the first list (the message says what to grant).
            KubernetesAPIError: the first list failed or timed out (later failures keep
                the last answer).
        """
        entry = self._started(service, namespace)
        if entry.watch.view is None:
            self._settle(entry)
        return self._answer(entry, port, protocol)

    def resolve_host(self, hostname: str, port: int = 0) -> EndpointSet:
        """The endpoints of one pod FQDN (``web-0.web.prod.svc.cluster.local``), from its
        Service's slices.

        Raises:
            InvalidName: not a pod FQDN of this cluster domain.
            ServiceNotFound: no such pod among the Service's endpoints.
        """
        name, namespace, service = self._host_key(hostname)
        return self._host_answer(self.resolve(service, port, namespace=namespace), name)

    def watch_service(
        self, service: str, namespace: str | None, callback: Callable[[], None]
    ) -> Callable[[], None]:
        """Call *callback* (from the watch thread; it must not block) after each change of
        *service*'s slices; returns a function that stops the calls. Starts the watch."""
        return self._subscribe(self._started(service, namespace), callback)

    def node_zone(self, node: str) -> str | None:
        """The zone of *node* (its ``topology.kubernetes.io/zone`` label), read from the API.

        Needs RBAC ``get`` on ``nodes`` (a ClusterRole).

        Raises:
            KubernetesForbidden: RBAC refused it.
            KubernetesAPIError: the API failed or the node does not exist.
        """
        body = self._run(self._api.get_json(_node_path(node), {}))
        return self._zone_of(body, node)

    def own_zone(self, **sources: Unpack[ZoneSources]) -> str | None:
        """This pod's zone: ``$POD_ZONE`` (the downward API), else the content of
        *zone_file* (a downward API volume), else the zone label of the node named by
        ``$NODE_NAME`` (read through the API); None when none of them is there.

        Args:
            **sources: where to look (:class:`ZoneSources`): ``environ`` (default
                ``os.environ``), ``zone_env`` (``POD_ZONE``), ``zone_file`` (none) and
                ``node_env`` (``NODE_NAME``).

        Raises:
            KubernetesForbidden: reading the node was refused (RBAC ``get nodes``).
        """
        zone, node = self._zone_or_node(**sources)
        return self.node_zone(node) if node else zone

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        with self._lock:
            loop = self._loop.ensure()
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(self.timeout + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise KubernetesAPIError(f"the Kubernetes API at {self.config.server} timed out") from None

    def close(self) -> None:
        """Stop every watch and the watch thread; harmless twice."""
        with self._lock:
            self._closed = True
            for entry in self._entries.values():
                if entry.runner is not None:
                    entry.runner.cancel()
        self._loop.stop(5.0)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- asyncio ----------------------------------------------------------------------------------


class AsyncEndpointSliceResolver(_SliceSource):
    """:class:`EndpointSliceResolver` for asyncio: ``resolve``, ``resolve_host``,
    ``node_zone`` and ``own_zone`` are awaited; the watches are tasks of the running loop
    (use the resolver on one loop). ``async with`` it, or ``await aclose()``. Same
    arguments and errors."""

    def _prepare(self) -> None:
        self._event: asyncio.Event | None = None

    def _wake(self) -> None:
        if self._event is not None:
            self._event.set()

    def _started(self, service: str, namespace: str | None) -> _Entry:
        key = self._key(service, namespace)
        entry, start = self._entry(key)
        if start:
            entry.runner = asyncio.get_running_loop().create_task(
                entry.watch.run(), name=f"{LOOP_THREAD}[{entry.watch.name}]"
            )
        return entry

    async def _settle(self, entry: _Entry) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        if self._event is None:
            self._event = asyncio.Event()
        event = self._event
        while not entry.settled:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except asyncio.TimeoutError:
                return

    async def resolve(
        self, service: str, port: int | str, *, protocol: str = "tcp", namespace: str | None = None
    ) -> EndpointSet:
        """As :meth:`EndpointSliceResolver.resolve`, awaited."""
        entry = self._started(service, namespace)
        if entry.watch.view is None:
            await self._settle(entry)
        return self._answer(entry, port, protocol)

    async def resolve_host(self, hostname: str, port: int = 0) -> EndpointSet:
        """As :meth:`EndpointSliceResolver.resolve_host`, awaited."""
        name, namespace, service = self._host_key(hostname)
        return self._host_answer(await self.resolve(service, port, namespace=namespace), name)

    def watch_service(
        self, service: str, namespace: str | None, callback: Callable[[], None]
    ) -> Callable[[], None]:
        """As :meth:`EndpointSliceResolver.watch_service` (called on the loop; *callback*
        runs on it)."""
        return self._subscribe(self._started(service, namespace), callback)

    async def node_zone(self, node: str) -> str | None:
        """As :meth:`EndpointSliceResolver.node_zone`, awaited."""
        return self._zone_of(await self._api.get_json(_node_path(node), {}), node)

    async def own_zone(self, **sources: Unpack[ZoneSources]) -> str | None:
        """As :meth:`EndpointSliceResolver.own_zone`, awaited."""
        zone, node = self._zone_or_node(**sources)
        return await self.node_zone(node) if node else zone

    async def aclose(self) -> None:
        """Cancel every watch and wait for them to end; harmless twice."""
        self._closed = True
        tasks = [e.runner for e in self._entries.values() if isinstance(e.runner, asyncio.Task)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
