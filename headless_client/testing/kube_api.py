"""A fake Kubernetes API server on loopback, serving a :class:`~.model.ClusterModel`.

It speaks enough of the real protocol for client-go informers (CoreDNS's ``kubernetes``
plugin consumes it in the test suite) and for Python clients written against the API:

- **list** ``GET /api/v1/{namespaces,services,pods}``,
  ``GET /apis/discovery.k8s.io/v1/endpointslices``, cluster-wide or under
  ``/namespaces/<ns>/``, and **get** one object by name; JSON only
  (``application/json``, which client-go accepts even when it asks for protobuf);
- **watch** (``?watch=true``): newline-delimited ``{"type": ..., "object": ...}`` events
  over a chunked response, from ``resourceVersion`` (unset or ``0``: the current objects
  first, as ``ADDED``), ending after ``timeoutSeconds``;
- **resource versions** on every object and list; a watch from a version the model no
  longer keeps (see :meth:`ClusterModel.compact`) gets an ``ERROR`` event with a
  ``410 Gone`` Status, and the client lists again;
- **bookmarks** (``allowWatchBookmarks=true``) every ``bookmark_interval`` seconds of
  silence;
- **WatchList** (``sendInitialEvents=true``): the current objects as ``ADDED``, then a
  bookmark annotated ``k8s.io/initial-events-end: "true"``; with ``watch_list=False`` such
  requests are refused (HTTP 400), and client-go falls back to list then watch;
- **selectors**: ``labelSelector`` (``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``,
  ``k in (a,b)``, ``k notin (a,b)``) and ``fieldSelector`` (``=``, ``==``, ``!=`` on
  dotted paths such as ``metadata.name`` or ``status.phase``);
- **faults** for tests: :attr:`FakeKubeAPI.fault` (``"forbidden"``: RBAC's 403 on every
  request; ``"unavailable"``: 503), :meth:`FakeKubeAPI.down` (the port refuses
  connections and open watches end), :meth:`FakeKubeAPI.expire_watches` (every open
  watch gets 410 Gone).

Additions for the EndpointSlice source (unused by default, so CoreDNS sees no change):

- **nodes** (``GET /api/v1/nodes[/<name>]``, list and watch) from the model's nodes;
- **TLS** (``ssl_context=``: a server context, e.g. from ``trustme``; then :attr:`url` is
  ``https://...``; a context that requires client certificates checks them);
- **bearer tokens** (``token=``: every request must carry ``Authorization: Bearer
  <token>``, else 401; change :attr:`FakeKubeAPI.token` to rotate it).

Standard library only (``http.server``); one thread per connection; every wait is
bounded, and :meth:`FakeKubeAPI.close` ends every watch.

>>> model = ClusterModel()                                      # doctest: +SKIP
>>> model.add_statefulset("web", "prod", replicas=3)
>>> with FakeKubeAPI(model) as api:
...     print(api.url)          # http://127.0.0.1:PORT: CoreDNS's `endpoint`
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from typing_extensions import Self

from ..errors import InvalidName
from .model import JSON, ClusterModel, Kind, ModelEvent, TooOld

__all__ = ["APIFault", "FakeKubeAPI", "FieldSelector", "LabelSelector", "parse_label_selector"]

log = logging.getLogger("headless_client.testing.kube_api")

APIFault = Literal["forbidden", "unavailable"]

_GROUPS: dict[str, tuple[str, Kind]] = {
    # URL prefix + plural -> (apiVersion, kind plural)
    "/api/v1/namespaces": ("v1", "namespaces"),
    "/api/v1/services": ("v1", "services"),
    "/api/v1/pods": ("v1", "pods"),
    "/apis/discovery.k8s.io/v1/endpointslices": ("discovery.k8s.io/v1", "endpointslices"),
    "/api/v1/nodes": ("v1", "nodes"),
}
_LIST_KINDS: dict[Kind, str] = {
    "namespaces": "NamespaceList",
    "services": "ServiceList",
    "pods": "PodList",
    "endpointslices": "EndpointSliceList",
    "nodes": "NodeList",
}
_OBJECT_KINDS: dict[Kind, str] = {
    "namespaces": "Namespace",
    "services": "Service",
    "pods": "Pod",
    "endpointslices": "EndpointSlice",
    "nodes": "Node",
}
_NAMESPACED_PATH = re.compile(
    r"^/(?P<prefix>api/v1|apis/discovery\.k8s\.io/v1)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?$"
)
_POLL = 0.25  # seconds between checks of a watch's stop conditions
_MAX_WATCH_SECONDS = 1800.0
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


# -- selectors ---------------------------------------------------------------------------------


class LabelSelector:
    """A parsed ``labelSelector``: every requirement must hold.

    >>> selector = LabelSelector.parse("kubernetes.io/service-name=web,tier in (a, b)")
    >>> selector.matches({"kubernetes.io/service-name": "web", "tier": "a"})
    True
    """

    def __init__(self, requirements: list[tuple[str, str, frozenset[str]]]) -> None:
        self.requirements = requirements

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse the selector syntax of the Kubernetes API.

        Raises:
            InvalidName: the text is not a valid selector (the API answers 400).
        """
        return cls(parse_label_selector(text))

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when *labels* satisfy every requirement."""
        for key, op, values in self.requirements:
            present = key in labels
            value = labels.get(key)
            if op == "exists" and not present:
                return False
            if op == "!exists" and present:
                return False
            if op == "in" and value not in values:
                return False
            if op == "notin" and value in values:
                return False
        return True


def parse_label_selector(text: str) -> list[tuple[str, str, frozenset[str]]]:
    """``"a=b,c!=d,e in (f,g),!h"`` -> ``[(key, op, values)]`` with op one of ``in``,
    ``notin``, ``exists``, ``!exists`` (``=``/``==`` are ``in``, ``!=`` is ``notin``)."""
    requirements: list[tuple[str, str, frozenset[str]]] = []
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise InvalidName(f"label selector has an unbalanced ')': {text!r}")
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if depth:
        raise InvalidName(f"label selector has an unbalanced '(': {text!r}")
    parts.append(current)
    for raw in parts:
        part = raw.strip()
        if not part:
            continue
        match = re.fullmatch(r"([^\s!=()]+)\s+(in|notin)\s+\(([^)]*)\)", part)
        if match:
            values = frozenset(v.strip() for v in match.group(3).split(",") if v.strip())
            requirements.append((match.group(1), match.group(2), values))
            continue
        match = re.fullmatch(r"([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)", part)
        if match:
            op = "notin" if match.group(2) == "!=" else "in"
            requirements.append((match.group(1), op, frozenset([match.group(3)])))
            continue
        match = re.fullmatch(r"(!?)\s*([^\s!=(),]+)", part)
        if match:
            requirements.append((match.group(2), "!exists" if match.group(1) else "exists", frozenset()))
            continue
        raise InvalidName(f"cannot parse label selector {text!r} at {part!r}")
    return requirements


class FieldSelector:
    """A parsed ``fieldSelector``: ``path=value``, ``path==value``, ``path!=value``, comma
    separated, on dotted paths (``metadata.name``, ``status.phase``)."""

    def __init__(self, text: str) -> None:
        self.requirements: list[tuple[list[str], bool, str]] = []
        for raw in text.split(","):
            part = raw.strip()
            if not part:
                continue
            match = re.fullmatch(r"([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*)", part)
            if not match:
                raise InvalidName(f"cannot parse field selector {text!r} at {part!r}")
            self.requirements.append((match.group(1).split("."), match.group(2) != "!=", match.group(3)))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """True when every field requirement holds for *obj*."""
        for path, equal, value in self.requirements:
            node: Any = obj
            for step in path:
                node = node.get(step) if isinstance(node, Mapping) else None
            text = "" if node is None else str(node)
            if (text == value) != equal:
                return False
        return True


# -- the server ---------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    api: FakeKubeAPI
    ssl_context: ssl.SSLContext | None = None

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.ssl_context is None:
            return sock, address
        # The handshake happens in the handler's thread (setup), never in the accept loop.
        return self.ssl_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address


class FakeKubeAPI:
    """A Kubernetes API server on ``host`` and a free port (or *port*), serving *model*.

    Args:
        model: the cluster served (a new empty :class:`ClusterModel` by default).
        host: loopback address to bind.
        port: port to bind (0: a free one, kept across :meth:`down`/:meth:`up`).
        bookmark_interval: seconds of silence after which a watch that allows bookmarks
            gets one.
        watch_list: answer WatchList requests (``sendInitialEvents=true``); ``False``
            refuses them with 400, as an API server without the feature does.
        ssl_context: serve HTTPS with this server context.
        token: require this bearer token on every request (401 otherwise).

    Thread-safe. Use as a context manager, or :meth:`start` and :meth:`close`.
    """

    def __init__(
        self,
        model: ClusterModel | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bookmark_interval: float = 1.0,
        watch_list: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        token: str | None = None,
    ) -> None:
        if not bookmark_interval > 0:
            raise InvalidName(f"bookmark_interval must be > 0 seconds: {bookmark_interval!r}")
        self.model = model if model is not None else ClusterModel()
        self.host = host
        self._port = port
        self.bookmark_interval = float(bookmark_interval)
        self.watch_list = watch_list
        self.ssl_context = ssl_context
        self.token = token
        """The bearer token every request must carry (None: none needed); may be changed."""
        self.fault: APIFault | None = None
        """``"forbidden"`` (403, as without RBAC rights), ``"unavailable"`` (503), or None."""
        self.requests: collections.deque[tuple[str, str, int]] = collections.deque(maxlen=10_000)
        """``(method, path with query, status)`` of every request, oldest first."""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._epoch = 0  # bumped to end every open watch
        self._expire_epoch = 0  # bumped to send 410 to every open watch
        self._sockets: set[socket.socket] = set()
        self._open_watches = 0
        self._closed = False

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind and serve (no-op if serving)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this FakeKubeAPI is closed")
            if self._server is not None:
                return self
            server = _Server((self.host, self._port), _Handler)
            server.api = self
            server.ssl_context = self.ssl_context
            self._port = server.server_address[1]
            self._server = server
            self._thread = threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": _POLL}, name="fake-kube-api",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and end every connection; harmless twice."""
        self._stop()
        with self._lock:
            self._closed = True

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _stop(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
            self._epoch += 1
            sockets = list(self._sockets)
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5.0)

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """``with api.down(): ...``: the API refuses connections inside the block (open
        watches end), then serves again on the same port."""
        self._stop()
        try:
            yield
        finally:
            self.start()

    @property
    def port(self) -> int:
        """The bound port."""
        return self._port

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (``https`` with TLS): what a client (or CoreDNS's
        ``endpoint``) is given."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://{host}:{self._port}"

    @property
    def open_watches(self) -> int:
        """Watches being streamed now."""
        return self._open_watches

    def expire_watches(self) -> None:
        """Every open watch gets a ``410 Gone`` ERROR event and ends (clients list again)."""
        with self._lock:
            self._expire_epoch += 1

    def watches_of(self, kind: Kind) -> int:
        """How many watch requests of *kind* were received so far."""
        plural = f"/{kind}?"
        return sum(1 for _, path, _ in list(self.requests) if plural in path and "watch=" in path)

    def __repr__(self) -> str:
        state = self.url if self._server is not None else "stopped"
        return f"<FakeKubeAPI {state} rv={self.model.resource_version}>"


def _status(code: int, reason: str, message: str) -> JSON:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        log.debug(
            "%s %s", self.address_string(), format % args,
            extra={"service": None, "pod": None, "address": None, "reason": "fake_kube_api"},
        )

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10.0)
            self.request.do_handshake()  # a failed handshake ends this connection only
            self.request.settimeout(None)
        super().setup()
        api = self.server.api
        with api._lock:
            # A connection accepted just before down()/close() took its copy of the sockets
            # would otherwise keep being served (a watch streaming on) while the API is down.
            live = api._server is self.server
            if live:
                api._sockets.add(self.connection)
        if not live:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def finish(self) -> None:
        with self.server.api._lock:
            self.server.api._sockets.discard(self.connection)
        with contextlib.suppress(OSError):
            super().finish()

    # -- plumbing ----------------------------------------------------------------------------

    def _send_json(self, code: int, body: JSON) -> None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        self.server.api.requests.append((self.command, self.path, code))
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _error(self, code: int, reason: str, message: str) -> None:
        self._send_json(code, _status(code, reason, message))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= 1 << 20:
            self.rfile.read(length)
        self._error(405, "MethodNotAllowed", "the fake API server is read-only: change its ClusterModel")

    do_PUT = do_PATCH = do_DELETE = do_POST

    def do_GET(self) -> None:
        api = self.server.api
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        path = url.path.rstrip("/") or "/"
        if api.token is not None and self.headers.get("Authorization") != f"Bearer {api.token}":
            self._error(401, "Unauthorized", "Unauthorized")
            return
        if api.fault == "forbidden":
            self._error(403, "Forbidden", _forbidden_message(path, query))
            return
        if api.fault == "unavailable":
            self._error(503, "ServiceUnavailable", "the fake API server is unavailable (fault 'unavailable')")
            return
        if path in ("/healthz", "/readyz", "/livez"):
            self._send_text("ok")
            return
        if path == "/version":
            self._send_json(200, {"major": "1", "minor": "34", "gitVersion": "v1.34.0-fake"})
            return
        if path == "/api":
            self._send_json(200, {"kind": "APIVersions", "versions": ["v1"]})
            return
        if path == "/apis":
            self._send_json(200, {
                "kind": "APIGroupList", "apiVersion": "v1",
                "groups": [{"name": "discovery.k8s.io",
                            "versions": [{"groupVersion": "discovery.k8s.io/v1", "version": "v1"}],
                            "preferredVersion": {"groupVersion": "discovery.k8s.io/v1", "version": "v1"}}],
            })  # fmt: skip
            return
        namespace: str | None = None
        name: str | None = None
        target = _GROUPS.get(path)
        if target is None:
            match = _NAMESPACED_PATH.match(path)
            if match and match.group("prefix") == "api/v1" and match.group("plural") in ("services", "pods"):
                target = _GROUPS[f"/api/v1/{match.group('plural')}"]
            elif match and match.group("prefix") != "api/v1" and match.group("plural") == "endpointslices":
                target = _GROUPS["/apis/discovery.k8s.io/v1/endpointslices"]
            if match and target is not None:
                namespace, name = match.group("ns"), match.group("name")
            elif path.startswith("/api/v1/namespaces/") and path.count("/") == 4:
                target, name = _GROUPS["/api/v1/namespaces"], path.rsplit("/", 1)[1]
            elif path.startswith("/api/v1/nodes/") and path.count("/") == 4:
                target, name = _GROUPS["/api/v1/nodes"], path.rsplit("/", 1)[1]
        if target is None:
            self._error(404, "NotFound", f"the server could not find the requested resource: {path}")
            return
        api_version, kind = target
        try:
            labels = LabelSelector.parse(query.get("labelSelector", ""))
            fields = FieldSelector(query.get("fieldSelector", ""))
        except InvalidName as exc:
            self._error(400, "BadRequest", str(exc))
            return
        if name is not None:
            self._get_one(kind, namespace, name)
        elif query.get("watch", "") in ("true", "1"):
            self._watch(kind, namespace, labels, fields, query)
        else:
            self._list(kind, api_version, namespace, labels, fields, query)

    def _send_text(self, text: str) -> None:
        payload = text.encode()
        self.server.api.requests.append((self.command, self.path, 200))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    # -- verbs --------------------------------------------------------------------------------

    def _get_one(self, kind: Kind, namespace: str | None, name: str) -> None:
        items, _ = self.server.api.model.snapshot(kind)
        for obj in items:
            meta = obj["metadata"]
            if meta["name"] == name and meta.get("namespace") == namespace:
                self._send_json(200, obj)
                return
        self._error(404, "NotFound", f'{kind} "{name}" not found')

    def _list(
        self, kind: Kind, api_version: str, namespace: str | None, labels: LabelSelector,
        fields: FieldSelector, query: Mapping[str, str],
    ) -> None:
        model = self.server.api.model
        items, rv = model.snapshot(kind)
        asked = query.get("resourceVersion", "")
        if asked not in ("", "0") and query.get("resourceVersionMatch") == "Exact" and asked != str(rv):
            self._error(410, "Expired", f"too old resource version: {asked} ({rv})")
            return
        kept = [o for o in items if _selected(o, namespace, labels, fields)]
        self._send_json(200, {
            "kind": _LIST_KINDS[kind],
            "apiVersion": api_version,
            "metadata": {"resourceVersion": str(rv)},
            "items": kept,
        })  # fmt: skip

    def _watch(
        self, kind: Kind, namespace: str | None, labels: LabelSelector, fields: FieldSelector,
        query: Mapping[str, str],
    ) -> None:
        api = self.server.api
        initial = query.get("sendInitialEvents") in ("true", "1")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        if initial and not api.watch_list:
            self._error(400, "BadRequest", "sendInitialEvents is not supported here (watch_list=False)")
            return
        if initial and not bookmarks:
            self._error(400, "Invalid", "sendInitialEvents requires allowWatchBookmarks=true")
            return
        try:
            timeout = float(query.get("timeoutSeconds") or _MAX_WATCH_SECONDS)
        except ValueError:
            self._error(400, "BadRequest", f"timeoutSeconds is not a number: {query.get('timeoutSeconds')!r}")
            return
        asked = query.get("resourceVersion", "")
        with api._lock:  # before the headers: a client that saw them is already counted
            epoch, expire = api._epoch, api._expire_epoch
            api._open_watches += 1
        api.requests.append((self.command, self.path, 200))
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache, private")
            self.end_headers()
            self._stream(kind, namespace, labels, fields, asked, initial, bookmarks, timeout, epoch, expire)
        except OSError:
            pass  # the client went away
        finally:
            with api._lock:
                api._open_watches -= 1
            self.close_connection = True

    def _stream(
        self, kind: Kind, namespace: str | None, labels: LabelSelector, fields: FieldSelector,
        asked: str, initial: bool, bookmarks: bool, timeout: float, epoch: int, expire: int,
    ) -> None:
        api = self.server.api
        model = api.model
        deadline = time.monotonic() + max(0.0, min(timeout, _MAX_WATCH_SECONDS))
        visible: set[tuple[str, str]] = set()
        items, rv = model.snapshot(kind)
        for obj in items:
            if _selected(obj, namespace, labels, fields):
                visible.add(_key(obj))
        if asked in ("", "0") or initial:
            for obj in items:
                if _key(obj) in visible:
                    self._event("ADDED", obj)
            if initial:
                self._event("BOOKMARK", _bookmark(kind, rv, initial_end=True))
        else:
            try:
                rv = int(asked)
            except ValueError:
                self._event("ERROR", _status(400, "BadRequest", f"invalid resourceVersion {asked!r}"))
                self._end()
                return
        self._flush()
        last_sent = time.monotonic()
        while True:  # bounded by the deadline, and ends on close/down/expire
            if api._epoch != epoch or api.fault is not None:
                break
            if api._expire_epoch != expire:
                self._event("ERROR", _status(410, "Expired", f"too old resource version: {rv}"))
                break
            # Read the version first: every event up to it is then in events_since, so
            # moving rv there (past other kinds' events) loses nothing.
            current = model.resource_version
            try:
                events = model.events_since(rv, kind)
            except TooOld as exc:
                self._event("ERROR", _status(410, "Expired", str(exc)))
                break
            sent = False
            for event in events:
                kind_of_event = self._visible_change(event, visible, namespace, labels, fields)
                if kind_of_event is not None:
                    self._event(kind_of_event, event.object)
                    sent = True
            rv = max([current, rv] + [e.resource_version for e in events[-1:]])
            now = time.monotonic()
            if sent:
                self._flush()
                last_sent = now
            elif bookmarks and now - last_sent >= api.bookmark_interval:
                self._event("BOOKMARK", _bookmark(kind, rv))
                self._flush()
                last_sent = now
            if now >= deadline:
                break
            model.wait_for_change(rv, min(_POLL, deadline - now, api.bookmark_interval))
        self._end()

    def _visible_change(
        self, event: ModelEvent, visible: set[tuple[str, str]], namespace: str | None,
        labels: LabelSelector, fields: FieldSelector,
    ) -> str | None:
        key = _key(event.object)
        was = key in visible
        if event.type == "DELETED":
            visible.discard(key)
            return "DELETED" if was else None
        now = _selected(event.object, namespace, labels, fields)
        if now:
            visible.add(key)
            return "MODIFIED" if was and event.type != "ADDED" else "ADDED"
        visible.discard(key)
        return "DELETED" if was else None  # left the selection: gone for this watch

    def _event(self, kind: str, obj: JSON) -> None:
        line = json.dumps({"type": kind, "object": obj}, separators=(",", ":")).encode() + b"\n"
        self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")

    def _flush(self) -> None:
        self.wfile.flush()

    def _end(self) -> None:
        with contextlib.suppress(OSError):
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()


def _forbidden_message(path: str, query: Mapping[str, str]) -> str:
    """RBAC's message for *path*, as the API server words it."""
    match = _NAMESPACED_PATH.match(path)
    namespace = match.group("ns") if match else None
    plural = match.group("plural") if match else path.rsplit("/", 1)[-1]
    if match and match.group("name"):
        verb = "get"
    else:
        verb = "watch" if query.get("watch") in ("true", "1") else "list"
    group = "discovery.k8s.io" if "/apis/discovery.k8s.io/" in path else ""
    resource = f"{plural}.{group}" if group else plural
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return (
        f'{resource} is forbidden: User "system:serviceaccount:{namespace or "default"}:default" '
        f'cannot {verb} resource "{plural}" in API group "{group}" {scope}'
    )


def _key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


def _selected(
    obj: Mapping[str, Any], namespace: str | None, labels: LabelSelector, fields: FieldSelector
) -> bool:
    meta = obj["metadata"]
    if namespace is not None and meta.get("namespace") != namespace:
        return False
    return labels.matches(meta.get("labels") or {}) and fields.matches(obj)


def _bookmark(kind: Kind, rv: int, *, initial_end: bool = False) -> JSON:
    api_version = "discovery.k8s.io/v1" if kind == "endpointslices" else "v1"
    meta: JSON = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {"kind": _OBJECT_KINDS[kind], "apiVersion": api_version, "metadata": meta}


#: Re-exported for users who want a callback per model change.
Listener = Callable[[ModelEvent], None]
