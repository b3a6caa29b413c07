"""The watch loop of one Service's EndpointSlices (asyncio), and the API requests it makes.

:class:`SliceWatch` keeps the slices of one Service current, as a client-go reflector
does:

1. **list** ``/apis/discovery.k8s.io/v1/namespaces/<ns>/endpointslices`` with
   ``labelSelector=kubernetes.io/service-name=<svc>`` (paged with ``continue``); the list's
   ``resourceVersion`` is where the watch starts;
2. **watch** from that version with ``allowWatchBookmarks=true`` and a jittered
   ``timeoutSeconds``: ``ADDED``/``MODIFIED``/``DELETED`` update the slice map, every event
   and ``BOOKMARK`` moves the version; when the server ends the watch, watch again from
   the last version (no list);
3. **410 Gone** (the version was compacted away: an HTTP 410 or an ``ERROR`` event with
   code 410): list again, replacing the whole map, so slices deleted meanwhile go too;
4. **failures** (refused, reset, timeout, 5xx, 403): the last slices are kept and served,
   and the loop tries again after an exponential, jittered back-off (``backoff_min`` to
   ``backoff_max``), then resumes from the last version (or lists, if that is gone).

The loop runs until its task is cancelled. Its state (:attr:`SliceWatch.view`,
:attr:`SliceWatch.error`) is replaced by single assignments, so other threads read it
without a lock.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from ...errors import KubeConfigError, KubernetesAPIError, KubernetesForbidden
from . import _http
from .config import KubernetesConfig
from .slices import SERVICE_NAME_LABEL, Slice, parse_slice

__all__ = ["KubeAPI", "SliceWatch"]

log = logging.getLogger("headless_client.contrib.kubernetes")

RBAC_EXAMPLE: Final = "examples/kubernetes/rbac-endpointslices.yaml"
_MAX_PAGES: Final = 1000
_FAST_END: Final = 1.0  # a watch that ends sooner than this without events counts as a failure


class Gone(Exception):
    """HTTP 410: the resource version asked for is no longer kept; list again."""


class KubeAPI:
    """The API server of one :class:`KubernetesConfig`: GET requests with JSON answers and
    errors translated to :mod:`headless_client.errors`.

    Args:
        config: where and how.
        timeout: seconds for one request (connect, TLS, headers, and a list's body).
    """

    def __init__(self, config: KubernetesConfig, timeout: float) -> None:
        self.config = config
        self.timeout = timeout
        self._ssl: ssl.SSLContext | None = config.ssl_context()  # once: loading a CA costs

    async def open(
        self, path: str, query: Mapping[str, str], timeout: float | None = None
    ) -> _http.HTTPResponse:
        """Send a GET; returns the response once its status is 200.

        Raises:
            Gone: HTTP 410.
            KubernetesForbidden: HTTP 401 or 403.
            KubernetesAPIError: any other status, or no answer (refused, timeout, TLS).
            KubeConfigError: the token file cannot be read.
        """
        try:
            response = await _http.get(
                self.config, path, query, timeout=timeout or self.timeout, ssl_context=self._ssl
            )
        except KubeConfigError:
            raise
        except (OSError, asyncio.TimeoutError, _http.ProtocolError) as exc:
            raise self._unreachable(exc) from exc
        if response.status == 200:
            return response
        try:
            status = await response.json(self.timeout)
        except (OSError, asyncio.TimeoutError, _http.ProtocolError):
            status = {}
        finally:
            response.close()
        raise self.error(response.status, status if isinstance(status, dict) else {}, path, query)

    async def get_json(self, path: str, query: Mapping[str, str]) -> dict[str, Any]:
        """GET and parse a JSON object (errors as :meth:`open`)."""
        response = await self.open(path, query)
        try:
            body = await response.json(self.timeout)
        except (OSError, asyncio.TimeoutError, _http.ProtocolError) as exc:
            raise self._unreachable(exc) from exc
        finally:
            response.close()
        if not isinstance(body, dict):
            raise KubernetesAPIError(
                f"{self.config.server}{path} answered {type(body).__name__}, not an object"
            )
        return body

    def _unreachable(self, exc: BaseException) -> KubernetesAPIError:
        what = (
            "timed out" if isinstance(exc, asyncio.TimeoutError) else f"failed: {exc or type(exc).__name__}"
        )
        if isinstance(exc, ssl.SSLError):
            what = f"failed TLS: {exc}"
        return KubernetesAPIError(f"the Kubernetes API at {self.config.server} {what}")

    def error(self, code: int, status: Mapping[str, Any], path: str, query: Mapping[str, str]) -> Exception:
        """The exception for an HTTP error *code* with the API's ``Status`` *status*."""
        message = str(status.get("message") or "")
        reason = str(status.get("reason") or "")
        if code == 410:
            return Gone(message or "410 Gone")
        resource, namespace, one = _resource_of(path)
        verb = "watch" if query.get("watch") else ("get" if one else "list")
        where = f"in namespace {namespace!r}" if namespace else "at the cluster scope"
        if code == 403:
            return KubernetesForbidden(
                f"the Kubernetes API refused to {verb} {resource} {where} (403 Forbidden: {message}). "
                f"The service account needs RBAC: a Role with get, list and watch on {resource} "
                f"(apiGroups: [{_group_of(path)!r}]) {where}, and a RoleBinding to it; see {RBAC_EXAMPLE}",
                code,
                reason or "Forbidden",
            )
        if code == 401:
            return KubernetesForbidden(
                f"the Kubernetes API at {self.config.server} did not accept this client's credentials "
                f"(401 Unauthorized) to {verb} {resource} {where}: check the token or client certificate",
                code,
                reason or "Unauthorized",
            )
        return KubernetesAPIError(
            f"the Kubernetes API answered {code} {reason} to {verb} {resource} {where}: {message}".rstrip(
                ": "
            ),
            code,
            reason,
        )


def _resource_of(path: str) -> tuple[str, str | None, bool]:
    """``(plural.group, namespace, names one object)`` of an API path."""
    parts = path.strip("/").split("/")
    rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    plural = rest[0] if rest else ""
    group = _group_of(path)
    return (f"{plural}.{group}" if group else plural), namespace, len(rest) > 1


def _group_of(path: str) -> str:
    return path.split("/")[2] if path.startswith("/apis/") else ""


def slices_path(namespace: str) -> str:
    """The URL path of the EndpointSlices of *namespace*."""
    return f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices"


class SliceWatch:
    """Keeps the EndpointSlices of one Service current (see the module's docstring).

    Args:
        api: the API server.
        service: the Service's name.
        namespace: its namespace.
        listener: called (on the loop, must not block) with ``True`` after the slices
            changed and ``False`` after a failure.
        watch_timeout: mean ``timeoutSeconds`` of a watch (each gets 0.75-1.25 times it).
        backoff_min: the first back-off after a failure, in seconds (then doubling).
        backoff_max: the longest back-off, in seconds.
        rng: the jitter's random source.
    """

    def __init__(
        self,
        api: KubeAPI,
        service: str,
        namespace: str,
        listener: Callable[[bool], None],
        *,
        watch_timeout: float = 300.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        self.api = api
        self.service = service
        self.namespace = namespace
        self._listener = listener
        self.watch_timeout = watch_timeout
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self._rng = rng or random.Random()
        self._slices: dict[str, Slice] = {}
        self._rv: str | None = None
        #: The slices last seen (None before the first list succeeded): kept through failures.
        self.view: tuple[Slice, ...] | None = None
        #: The last failure (None once the API answered again).
        self.error: BaseException | None = None
        #: Lists and watches started (a test and the benchmark read them).
        self.lists = 0
        self.watches = 0
        self._selector = {"labelSelector": f"{SERVICE_NAME_LABEL}={service}"}

    @property
    def name(self) -> str:
        """``<service>.<namespace>``."""
        return f"{self.service}.{self.namespace}"

    async def run(self) -> None:
        """List and watch until cancelled."""
        failures = 0
        gones = 0
        while True:
            try:
                if self._rv is None:
                    await self._list()
                started = time.monotonic()
                events = await self._watch()
                gones = 0
                if events or time.monotonic() - started >= _FAST_END:
                    failures = 0
                    continue
                # Ended at once with nothing: a proxy or a dying server; do not spin.
                failures += 1
            except Gone as exc:
                self._rv = None
                gones += 1
                log.info("%s: %s; listing again", self.name, exc,
                         extra={"service": None, "pod": None, "address": None, "reason": "watch_relist"})
                if gones < 2:
                    continue
                failures += 1
            except (KubernetesAPIError, KubeConfigError) as exc:
                failures += 1
                self._failed(exc, failures)
            except Exception as exc:  # a bug must not end the watch: log it, go on
                failures += 1
                log.exception("%s: the EndpointSlice watch failed unexpectedly", self.name,
                              extra={"service": None, "pod": None, "address": None, "reason": "unexpected"})
                self._failed(
                    KubernetesAPIError(f"{self.name}: unexpected {type(exc).__name__}: {exc}"), failures
                )
            await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        base: float = min(self.backoff_max, self.backoff_min * 2.0 ** min(failures - 1, 30))
        return base * self._rng.uniform(0.8, 1.2)

    def _failed(self, exc: BaseException, failures: int) -> None:
        first = self.error is None
        self.error = exc
        keeping = f"keeping the last {len(self.view)} slices" if self.view is not None else "no slices yet"
        level = logging.WARNING if first or isinstance(exc, KubernetesForbidden) else logging.DEBUG
        log.log(level, "%s: %s (%s; attempt %d)", self.name, exc, keeping, failures,
                extra={"service": None, "pod": None, "address": None, "reason": "kube_api_failed"})
        self._listener(False)

    def _publish(self) -> None:
        self.view = tuple(self._slices.values())
        if self.error is not None:
            log.info("%s: the Kubernetes API answers again", self.name,
                     extra={"service": None, "pod": None, "address": None, "reason": "kube_api_recovered"})
        self.error = None
        self._listener(True)

    async def _list(self) -> None:
        self.lists += 1
        slices: dict[str, Slice] = {}
        query = dict(self._selector)
        rv = ""
        for _ in range(_MAX_PAGES):
            body = await self.api.get_json(slices_path(self.namespace), query)
            for item in body.get("items") or ():
                self._store(slices, item)
            meta = body.get("metadata") or {}
            rv = str(meta.get("resourceVersion") or rv)
            token = meta.get("continue")
            if not token:
                break
            query = {**self._selector, "continue": str(token)}
        self._slices = slices
        self._rv = rv or None
        self._publish()

    def _store(self, slices: dict[str, Slice], obj: Any) -> str | None:
        """Parse *obj* into *slices*; returns its name (None when unusable)."""
        if not isinstance(obj, dict):
            return None
        name = (obj.get("metadata") or {}).get("name")
        try:
            piece = parse_slice(obj)
        except ValueError as exc:
            log.warning("%s: ignoring a malformed EndpointSlice: %s", self.name, exc,
                        extra={"service": None, "pod": None, "address": None, "reason": "malformed_slice"})
            if isinstance(name, str):
                slices.pop(name, None)
            return None
        if piece is None:
            return None
        slices[piece.name] = piece
        return piece.name

    async def _watch(self) -> int:
        """One watch request; returns how many events changed the slices."""
        self.watches += 1
        timeout = max(1, round(self.watch_timeout * self._rng.uniform(0.75, 1.25)))
        query = {
            **self._selector,
            "watch": "true",
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout),
        }
        if self._rv is not None:
            query["resourceVersion"] = self._rv
        response = await self.api.open(slices_path(self.namespace), query)
        changes = 0
        try:
            async for line in response.lines(timeout + 30.0):
                changes += self._event(line, query)
        except (OSError, asyncio.TimeoutError, _http.ProtocolError) as exc:
            if changes == 0:
                raise self.api._unreachable(exc) from exc
            log.debug("%s: the watch broke after %d changes: %s", self.name, changes, exc,
                      extra={"service": None, "pod": None, "address": None, "reason": "watch_broken"})
        finally:
            response.close()
        return changes

    def _event(self, line: bytes, query: Mapping[str, str]) -> int:
        try:
            event = json.loads(line)
            kind, obj = event["type"], event["object"]
        except (ValueError, KeyError, TypeError):
            raise _http.ProtocolError(f"not a watch event: {line[:80]!r}") from None
        if kind == "ERROR":
            status = obj if isinstance(obj, dict) else {}
            raise self.api.error(int(status.get("code") or 500), status, slices_path(self.namespace), query)
        rv = ((obj or {}).get("metadata") or {}).get("resourceVersion") if isinstance(obj, dict) else None
        if kind == "BOOKMARK":
            if rv:
                self._rv = str(rv)
            return 0
        if kind in ("ADDED", "MODIFIED"):
            self._store(self._slices, obj)
        elif kind == "DELETED":
            name = ((obj or {}).get("metadata") or {}).get("name")
            self._slices.pop(str(name), None)
        else:
            log.debug("%s: ignoring a %r watch event", self.name, kind,
                      extra={"service": None, "pod": None, "address": None, "reason": "watch_event_ignored"})
            return 0
        if rv:
            self._rv = str(rv)
        self._publish()
        return 1
