"""The CoreDNS test ground: real CoreDNS (built by ``scripts/install/coredns.sh``) whose
``kubernetes`` plugin reads a :class:`~headless_client.testing.kube_api.FakeKubeAPI`.

Everything binds loopback. Pieces:

- :func:`find_coredns`: the binary built for the pinned version (the ``VERSION=`` line of
  ``scripts/install/coredns.sh``) under ``$HEADLESS_CLIENT_CACHE/coredns/<version>/``, or
  ``$HEADLESS_CLIENT_COREDNS``; :data:`COREDNS_MISSING` is the message when absent.
- Corefiles: :func:`corefile_default` (the plugin's own defaults: ``ttl 5``, no cache),
  :func:`corefile_kubeadm` (kubeadm's ConfigMap: ``ttl 30``, ``cache 30`` with success and
  denial disabled for the cluster zone, ``loadbalance``, ``pods insecure``) and
  :func:`corefile_nodelocal` (NodeLocal DNSCache's: ``cache`` success 30 s and denial 5 s,
  ``forward`` to the cluster's CoreDNS with ``force_tcp``). Names outside the cluster get
  NXDOMAIN from a ``template`` block, never a forward off the machine.
- :class:`CoreDNSServer`: runs one ``coredns -conf`` on 127.0.0.1 and a free port, waits
  until it answers with its informers synced (before that CoreDNS answers SERVFAIL),
  :meth:`~CoreDNSServer.sync` waits until it has seen the model's latest change, and stops
  it (SIGTERM, then SIGKILL) on :meth:`~CoreDNSServer.close`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from headless_client import Resolver
from headless_client.testing import FakeClusterDNS
from headless_client.testing.kube_api import FakeKubeAPI
from headless_client.testing.model import ClusterModel
from tests.integration.dnsground import BindServer, ZoneMirror, _die_with_parent, free_port

__all__ = [
    "COREDNS_MISSING",
    "GROUND_NAMES",
    "INSTALL_SCRIPT",
    "SYNC_NAMESPACE",
    "CoreDNSError",
    "CoreDNSServer",
    "Grounds",
    "coredns_version",
    "corefile_default",
    "corefile_kubeadm",
    "corefile_nodelocal",
    "find_coredns",
]

HOST = "127.0.0.1"
ZONE = "cluster.local"
INSTALL_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install" / "coredns.sh"
SYNC_NAMESPACE = "hc-sync"
"""Namespace of the markers :meth:`CoreDNSServer.sync` moves to know CoreDNS caught up."""

COREDNS_MISSING = (
    "CoreDNS {version} is not built: run scripts/install/coredns.sh (it builds CoreDNS with "
    "`go install` into $HEADLESS_CLIENT_CACHE; scripts/test does this), or run "
    "scripts/test --python-only to skip the CoreDNS tests"
)


class CoreDNSError(RuntimeError):
    """CoreDNS did not start, did not sync, or did not catch up in time."""


def coredns_version() -> str:
    """The pinned CoreDNS release: ``$COREDNS_VERSION``, else the install script's default."""
    env = os.environ.get("COREDNS_VERSION")
    if env:
        return env
    text = INSTALL_SCRIPT.read_text()
    match = re.search(r"^VERSION=\$\{COREDNS_VERSION:-(v[0-9][^}]*)\}", text, re.MULTILINE)
    if match is None:  # pragma: no cover - the script is ours
        raise CoreDNSError(f"no VERSION=${{COREDNS_VERSION:-...}} line in {INSTALL_SCRIPT}")
    return match.group(1)


def find_coredns() -> str | None:
    """Path of the CoreDNS binary, or None when it has not been built."""
    explicit = os.environ.get("HEADLESS_CLIENT_COREDNS")
    if explicit:
        return explicit if os.access(explicit, os.X_OK) else None
    cache = Path(os.environ.get("HEADLESS_CLIENT_CACHE") or Path.home() / ".cache" / "headless-client")
    binary = cache / "coredns" / coredns_version() / "coredns"
    return str(binary) if os.access(binary, os.X_OK) else None


# -- Corefiles ------------------------------------------------------------------------------

_OUTSIDE = """\
.:{port} {{
    bind {host}
    template ANY ANY {{
        rcode NXDOMAIN
    }}
}}
"""


def corefile_default(api_url: str, port: int, *, ttl: int = 5, host: str = HOST, extra: str = "") -> str:
    """The ``kubernetes`` plugin with its defaults (``ttl 5``, no cache): CoreDNS's own."""
    return f"""\
{ZONE}:{port} {{
    bind {host}
    errors
    kubernetes {ZONE} {{
        endpoint {api_url}
        ttl {ttl}
    }}
{extra}}}
""" + _OUTSIDE.format(port=port, host=host)


def corefile_kubeadm(api_url: str, port: int, *, host: str = HOST) -> str:
    """kubeadm's ConfigMap (``ttl 30``, ``cache 30`` with success and denial disabled for
    the cluster zone, ``loadbalance``, ``pods insecure``); upstream is a ``template``."""
    return f"""\
{ZONE}:{port} {{
    bind {host}
    errors
    kubernetes {ZONE} in-addr.arpa ip6.arpa {{
        endpoint {api_url}
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    cache 30 {{
        disable success {ZONE}
        disable denial {ZONE}
    }}
    loadbalance
}}
""" + _OUTSIDE.format(port=port, host=host)


def corefile_nodelocal(upstream: str, port: int, *, host: str = HOST) -> str:
    """NodeLocal DNSCache's cluster-zone block: ``cache`` (success 9984 30, denial 9984 5)
    and ``forward`` to *upstream* (``127.0.0.1:PORT`` of the cluster's CoreDNS) over TCP."""
    return f"""\
{ZONE}:{port} {{
    bind {host}
    errors
    cache {{
        success 9984 30
        denial 9984 5
    }}
    forward . {upstream} {{
        force_tcp
    }}
}}
""" + _OUTSIDE.format(port=port, host=host)


# -- the server -----------------------------------------------------------------------------


class CoreDNSServer:
    """One CoreDNS process on loopback.

    Args:
        binary: the ``coredns`` executable.
        directory: where the Corefile and the log go.
        corefile: ``corefile(port) -> text`` (the port is chosen here).
        start_timeout: seconds to wait for the first synced answer.
    """

    host: str = HOST

    def __init__(
        self,
        binary: str,
        directory: str | os.PathLike[str],
        corefile: Callable[[int], str],
        *,
        start_timeout: float = 30.0,
    ) -> None:
        self.binary = binary
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.corefile = corefile
        self.start_timeout = start_timeout
        self.port = 0
        self.log_path = self.directory / "coredns.log"
        self.conf_path = self.directory / "Corefile"
        self._proc: subprocess.Popen[bytes] | None = None
        self._sync_counter = 0
        self._sync_lock = threading.Lock()
        self.startup_seconds: float | None = None

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self, last_lines: int = 40) -> str:
        """The tail of CoreDNS's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-last_lines:])
        except OSError:
            return ""

    def start(self, *, wait: bool = True, probe: str | None = None) -> None:
        """Start CoreDNS (no-op if running) and, with *wait*, block until it answers a
        question about *probe* (default: a name under the cluster zone) with anything but
        SERVFAIL, which is what it answers before its informers have synced."""
        if self.running:
            return
        began = time.monotonic()
        for attempt in range(5):  # a port taken between free_port and CoreDNS's bind
            if not self.port or attempt:
                self.port = free_port(self.host)
            self.conf_path.write_text(self.corefile(self.port))
            with open(self.log_path, "ab") as log:
                log.write(f"\n=== {self.binary} -conf {self.conf_path} (port {self.port})\n".encode())
                log.flush()
                self._proc = subprocess.Popen(
                    [self.binary, "-conf", str(self.conf_path)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=log,
                    cwd=self.directory,
                    start_new_session=True,
                    preexec_fn=_die_with_parent(),
                )
            if not wait:
                return
            try:
                self._wait_ready(began + self.start_timeout, probe or f"hc-probe.default.svc.{ZONE}.")
            except _PortTaken:
                self._kill()
                continue
            self.startup_seconds = time.monotonic() - began
            return
        raise CoreDNSError(f"CoreDNS could not bind a free port after 5 attempts:\n{self.log()}")

    def _wait_ready(self, deadline: float, probe: str) -> None:
        query = dns.message.make_query(probe, dns.rdatatype.A)
        last = "no answer"
        while True:
            proc = self._proc
            assert proc is not None
            if proc.poll() is not None:
                text = self.log()
                if "address already in use" in text.lower():
                    raise _PortTaken
                raise CoreDNSError(f"CoreDNS exited with status {proc.returncode}:\n{text}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise CoreDNSError(f"CoreDNS did not answer a synced reply within the deadline ({last}):\n{self.log()}")
            try:
                reply = dns.query.udp(query, self.host, port=self.port, timeout=min(0.5, remaining))
            except (OSError, dns.exception.DNSException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if reply.rcode() != dns.rcode.SERVFAIL:
                    return
                last = "SERVFAIL (informers not synced yet)"
            # Polling under the deadline: a refused datagram fails at once, so pace it.
            time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, wait (bounded), then SIGKILL. No-op if stopped."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    close = stop

    def __enter__(self) -> CoreDNSServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- catching up with the model -----------------------------------------------------------

    def sync(self, model: ClusterModel, timeout: float = 15.0) -> float:
        """Block until CoreDNS has applied every change made to *model* so far; returns the
        seconds it took.

        Moves two markers in :data:`SYNC_NAMESPACE` (a ClusterIP Service's VIP, read by the
        Service informer, and a headless Service's endpoint, read by the EndpointSlice
        informer) and waits until CoreDNS answers both new addresses. Each informer
        applies its watch events in order, so every earlier change is applied too.
        """
        with self._sync_lock:
            self._sync_counter += 1
            n = self._sync_counter
        vip, endpoint = _marker_addresses(n)
        began = time.monotonic()
        with model.batch():
            _place_markers(model, vip, endpoint)
        deadline = began + timeout
        wanted = {
            f"vip.{SYNC_NAMESPACE}.svc.{ZONE}.": vip,
            f"eps.{SYNC_NAMESPACE}.svc.{ZONE}.": endpoint,
        }
        while wanted:
            for name, address in list(wanted.items()):
                try:
                    reply = dns.query.udp(dns.message.make_query(name, "A"), self.host, port=self.port, timeout=0.5)
                except (OSError, dns.exception.DNSException):
                    continue
                if any(rd.to_text() == address for rrset in reply.answer for rd in rrset):
                    del wanted[name]
            if not wanted:
                break
            if time.monotonic() > deadline:
                raise CoreDNSError(f"CoreDNS did not catch up with the model within {timeout}s (waiting for "
                                   f"{sorted(wanted)}):\n{self.log()}")
            time.sleep(0.01)  # polling a remote process under the deadline above
        return time.monotonic() - began


class _PortTaken(Exception):
    pass


def _marker_addresses(n: int) -> tuple[str, str]:
    low = n % 65000 + 1
    return str(ipaddress.ip_address("127.253.0.0") + low), str(ipaddress.ip_address("127.254.0.0") + low)


def _place_markers(model: ClusterModel, vip: str, endpoint: str) -> None:
    try:
        model.service("vip", SYNC_NAMESPACE)
    except LookupError:
        model.add_service("vip", SYNC_NAMESPACE, type="ClusterIP", ports=[("dns", 53)], cluster_ips=[vip])
        model.add_service("eps", SYNC_NAMESPACE, ports=[("dns", 53)])
        model.add_pod("eps", SYNC_NAMESPACE, [endpoint], labels={"headless-client.test/service": "eps"})
        return
    model.update_service("vip", SYNC_NAMESPACE, cluster_ips=(vip,))
    model.update_pod("eps", SYNC_NAMESPACE, addresses=(endpoint,))


GROUND_NAMES = ("coredns", "bind", "fake")
"""The three grounds of the conformance suite; CoreDNS is the truth."""


class Grounds:
    """One :class:`ClusterModel` served three ways: real CoreDNS (through a
    :class:`FakeKubeAPI`), a BIND ``named`` (through a :class:`ZoneMirror`) and
    :class:`FakeClusterDNS`, all with the same TTL.

    Change :attr:`model`, then call :meth:`sync`: it returns once all three answer the
    change. :meth:`resolver` gives a library resolver asking one of them.
    """

    def __init__(self, binary: str, directory: Path, *, ttl: int = 5, named: str | None = None) -> None:
        self.ttl = ttl
        self.model = ClusterModel(address_base="127.31.0.1")
        self.api = FakeKubeAPI(self.model).start()
        self.fake = FakeClusterDNS(model=self.model, ttl=ttl)
        self.coredns = CoreDNSServer(
            binary, directory / "coredns", lambda port: corefile_default(self.api.url, port, ttl=ttl)
        )
        self.bind = BindServer(directory / "bind", named=named, services=[])
        self.mirror = ZoneMirror(lambda: self.bind.zone)
        try:
            self.fake.start()
            self.coredns.start()
            self.bind.start()
        except BaseException:
            self.close()
            raise

    def nameserver(self, ground: str) -> str:
        """``127.0.0.1:PORT`` of *ground* (one of :data:`GROUND_NAMES`)."""
        servers = {"coredns": self.coredns.nameserver, "bind": self.bind.nameserver, "fake": self.fake.nameserver}
        return servers[ground]

    def resolver(self, ground: str, **kwargs: object) -> Resolver:
        """A :class:`Resolver` asking *ground* (timeout 5 s, namespace ``default``)."""
        kwargs.setdefault("timeout", 5.0)
        kwargs.setdefault("namespace", "default")
        return Resolver([self.nameserver(ground)], **kwargs)  # type: ignore[arg-type]

    def sync(self, timeout: float = 20.0) -> None:
        """Block until CoreDNS and BIND serve the model's current state (the fake always does)."""
        self.coredns.sync(self.model, timeout)
        self.mirror.push(self.fake.zone)

    def close(self) -> None:
        """Stop all three servers and the API."""
        for stop in (self.coredns.close, self.bind.close, self.fake.close, self.api.close):
            with contextlib.suppress(Exception):
                stop()


@contextlib.contextmanager
def running_coredns(
    binary: str, directory: Path, model: ClusterModel, corefile: Callable[[str, int], str] = corefile_default,
) -> object:
    """A fake API for *model* and a CoreDNS reading it, both stopped afterwards."""
    with FakeKubeAPI(model) as api:
        server = CoreDNSServer(binary, directory, lambda port: corefile(api.url, port))
        try:
            server.start()
            yield server
        finally:
            server.close()
