"""The BIND9 test ground: a real ``named`` shaped like CoreDNS, plus loopback pods.

Everything here talks to loopback only and every wait is bounded. Importable from
benchmarks as ``from tests.integration.dnsground import BindServer``.

Pieces:

- :data:`GROUND`: the static zone contents (services in ``cluster.local``), as data the
  tests compare against. Tests must never mutate these names; use :meth:`BindServer.new_service`
  (fixtures ``new_service`` / ``fresh_service``) for a private service instead.
- :class:`BindServer`: writes the config and zone files, runs ``named -g`` on 127.0.0.1 and a
  free port (UDP and TCP), ``stop()``/``start()`` on the same port (dynamic updates survive in
  the zone journal).
- :class:`ZoneEditor`: dynamic updates (``dns.update`` over TCP) that keep the CoreDNS shape.
- :class:`PodServers` / :class:`PodServer`: TCP servers on loopback pod addresses that greet
  with their name and echo; modes ``serve``, ``refuse``, ``hang``, ``black_hole``.
- :class:`BlackHole`: a listener whose accept queue is full, so a connect never completes.

BIND 9.18.49 behaviour the tests can rely on (checked in test_ground.py):

- Glue for SRV targets only while the SRV RRset has at most 13 records; from 14 on, BIND adds
  no glue at all, even over TCP (its CVE-2024-11187 limit). No TC is set for dropped glue.
- UDP without EDNS (512 bytes): 7 SRV answers carry 3 glue records, 8 carry none, 10 or more
  set TC (with 8 SRV in the answer). ``big`` A (1000 records) sets TC; over TCP all 1000 arrive.
- The ``ext`` CNAME is returned alone (NOERROR), its out-of-zone target is not chased;
  ``alias`` is chased inside the zone. Off-zone names get NXDOMAIN from the empty root zone.
- Empty non-terminals (``_tcp.web.prod.svc``, ``prod.svc``) are NODATA.

SRV weights: :meth:`ZoneEditor.create_service` and :meth:`ZoneEditor.scale` write
``floor(100/N)`` like CoreDNS; ``add_pod``/``remove_pod``/``reip_pod`` leave the other records
alone, so weights drift after them (the library ignores weights anyway).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import ipaddress
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, TracebackType

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.update

__all__ = [
    "GROUND",
    "NAMED_MISSING",
    "TTL",
    "ZONE",
    "AddressPool",
    "BindServer",
    "BlackHole",
    "FreshService",
    "GroundError",
    "Pod",
    "PodServer",
    "PodServers",
    "Service",
    "ZoneEditor",
    "ZoneMirror",
    "ZoneUpdateError",
    "dashed",
    "find_named",
    "free_port",
    "statefulset",
]

ZONE = "cluster.local"
"""The cluster domain served by the ground."""

TTL = 1
"""TTL of every record (and the SOA minimum, so negative answers also live 1 s)."""

HOST = "127.0.0.1"

NAMED_MISSING = (
    "BIND9 `named` not found: install it with `apt-get install -y bind9 bind9-dnsutils` "
    "(scripts/test does this)"
)

_ORIGIN = dns.name.from_text(ZONE)


class GroundError(RuntimeError):
    """The test ground could not do what was asked (named failed, a port was busy, ...)."""


class ZoneUpdateError(GroundError):
    """The server answered a dynamic update (or its lookup) with a non-NOERROR rcode."""

    def __init__(self, message: str, rcode: dns.rcode.Rcode | None = None) -> None:
        super().__init__(message)
        self.rcode = rcode


# --------------------------------------------------------------------------------------------
# Zone contents as data
# --------------------------------------------------------------------------------------------


def dashed(address: str) -> str:
    """CoreDNS's generated endpoint hostname: ``10-244-1-20``, ``fd00-10-244-1--a``."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return str(ip).replace(".", "-")
    label = ip.compressed.replace(":", "-")
    if label.endswith("-"):
        label += "0"
    return label


@dataclass(frozen=True)
class Pod:
    """One ready endpoint: a hostname label under the service and its addresses."""

    hostname: str
    addresses: tuple[str, ...]
    ordinal: int | None = None

    @property
    def ipv4(self) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ipaddress.ip_address(a).version == 4)

    @property
    def ipv6(self) -> tuple[str, ...]:
        return tuple(a for a in self.addresses if ipaddress.ip_address(a).version == 6)


@dataclass(frozen=True)
class Service:
    """A headless Service as the ground serves it (CoreDNS shape, see k8s-dns.md section 3).

    ``statefulset`` is the StatefulSet name when the pods have ordinal hostnames
    (``<statefulset>-<ordinal>``); ``None`` for dashed-IP endpoint names. ``port_name=None``
    means no named port, hence no SRV. ``cname`` makes it an ExternalName-like alias (only the
    CNAME record). ``foreign_srv_targets`` are extra ``(target FQDN, port)`` SRV records, e.g. an
    out-of-domain target planted by an attacker.
    """

    name: str
    namespace: str = "prod"
    pods: tuple[Pod, ...] = ()
    statefulset: str | None = None
    port_name: str | None = "http"
    protocol: str = "tcp"
    port: int = 8080
    cname: str | None = None
    foreign_srv_targets: tuple[tuple[str, int], ...] = ()

    @property
    def short(self) -> str:
        """``web.prod``: the name relative to ``svc.<zone>``."""
        return f"{self.name}.{self.namespace}"

    @property
    def fqdn(self) -> str:
        """``web.prod.svc.cluster.local.`` (absolute, trailing dot)."""
        return f"{self.name}.{self.namespace}.svc.{ZONE}."

    @property
    def srv_fqdn(self) -> str | None:
        """``_http._tcp.web.prod.svc.cluster.local.``, or ``None`` without a named port."""
        if self.port_name is None:
            return None
        return f"_{self.port_name}._{self.protocol}.{self.fqdn}"

    def pod_fqdn(self, pod: Pod | str | int) -> str:
        """Absolute per-pod name; ``pod`` is a :class:`Pod`, a hostname or an ordinal."""
        if isinstance(pod, Pod):
            hostname = pod.hostname
        elif isinstance(pod, int):
            hostname = f"{self.statefulset or self.name}-{pod}"
        else:
            hostname = pod
        return f"{hostname}.{self.fqdn}"

    def pod(self, key: str | int) -> Pod:
        """The pod with that hostname or ordinal (``KeyError`` if absent)."""
        for pod in self.pods:
            if key in (pod.hostname, pod.ordinal):
                return pod
        raise KeyError(f"{self.short} has no pod {key!r}")

    @property
    def ordinals(self) -> tuple[int, ...]:
        return tuple(p.ordinal for p in self.pods if p.ordinal is not None)

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(a for p in self.pods for a in p.addresses)

    @property
    def ipv4(self) -> tuple[str, ...]:
        return tuple(a for p in self.pods for a in p.ipv4)

    @property
    def ipv6(self) -> tuple[str, ...]:
        return tuple(a for p in self.pods for a in p.ipv6)

    @property
    def srv_targets(self) -> tuple[tuple[str, int], ...]:
        """``(target FQDN, port)`` of every SRV record, foreign ones included."""
        if self.port_name is None:
            return ()
        own = tuple((self.pod_fqdn(p), self.port) for p in self.pods)
        return own + self.foreign_srv_targets

    @property
    def srv_weight(self) -> int:
        """CoreDNS's ``floor(100/N)``, N = endpoint x named port entries before dedup."""
        entries = len(self.addresses) + len(self.foreign_srv_targets)
        return 100 // entries if entries else 0

    def records(self) -> list[tuple[str, str, str]]:
        """``(owner FQDN, rdtype, rdata text)`` of every record of this service."""
        if self.cname is not None:
            return [(self.fqdn, "CNAME", self.cname)]
        out: list[tuple[str, str, str]] = []
        for pod in self.pods:
            for address in pod.addresses:
                rdtype = "A" if ipaddress.ip_address(address).version == 4 else "AAAA"
                out.append((self.fqdn, rdtype, address))
                out.append((self.pod_fqdn(pod), rdtype, address))
        if self.srv_fqdn is not None:
            for target, port in self.srv_targets:
                out.append((self.srv_fqdn, "SRV", f"0 {self.srv_weight} {port} {target}"))
        return out


def statefulset(
    name: str,
    addresses: Mapping[int, str | Sequence[str]],
    *,
    namespace: str = "prod",
    service: str | None = None,
    port_name: str | None = "http",
    protocol: str = "tcp",
    port: int = 8080,
) -> Service:
    """A StatefulSet's governing headless Service: ``{ordinal: address(es)}`` of ready pods."""
    pods = tuple(
        Pod(f"{name}-{ordinal}", (addr,) if isinstance(addr, str) else tuple(addr), ordinal)
        for ordinal, addr in sorted(addresses.items())
    )
    return Service(
        name=service or name,
        namespace=namespace,
        pods=pods,
        statefulset=name,
        port_name=port_name,
        protocol=protocol,
        port=port,
    )


def _deployment(name: str, addresses: Sequence[str], *, namespace: str = "prod") -> Service:
    pods = tuple(Pod(dashed(a), (a,)) for a in addresses)
    return Service(name=name, namespace=namespace, pods=pods)


def _build_ground() -> Mapping[str, Service]:
    services = [
        statefulset("web", {0: "127.10.0.1", 1: "127.10.0.2", 2: "127.10.0.3"}),
        _deployment("web-peers", ["127.10.1.1", "127.10.1.2", "fd00:10:244:1::a"]),
        statefulset(
            "dual",
            {0: ("127.10.2.1", "fd00:10:244:2::1"), 1: ("127.10.2.2", "fd00:10:244:2::2")},
        ),
        statefulset("v6only", {0: "fd00:10:244:3::1"}),
        statefulset("big", {i: f"127.11.{i // 250}.{i % 250 + 1}" for i in range(1000)}),
        Service("empty"),
        statefulset("shifted", {5: "127.10.3.5", 6: "127.10.3.6", 7: "127.10.3.7"}),
        statefulset(
            "nameless", {0: "127.10.4.1", 2: "127.10.4.3", 3: "127.10.4.4"}, port_name=None
        ),
        Service("alias", port_name=None, cname=f"web.prod.svc.{ZONE}."),
        Service("ext", port_name=None, cname="db.example.com."),
        replace(
            statefulset("evil", {0: "127.10.5.1"}),
            foreign_srv_targets=(("attacker.example.net.", 8080),),
        ),
        statefulset(
            "kafka",
            {0: "127.10.6.1", 1: "127.10.6.2", 2: "127.10.6.3"},
            namespace="data",
            service="kafka-headless",
            port_name="kafka",
            port=9092,
        ),
    ]
    by_name = {s.name: s for s in services}
    assert len(by_name) == len(services), "service names in GROUND must be unique"
    return MappingProxyType(by_name)


GROUND: Mapping[str, Service] = _build_ground()
"""Static services keyed by service name (unique across namespaces): ``GROUND["web"]``,
``GROUND["kafka-headless"]`` (namespace ``data``). Read-only; tests must not mutate them."""


def zone_file_text(services: Iterable[Service]) -> str:
    """The ``cluster.local`` zone file: SOA/NS like CoreDNS, dns-version TXT, the services."""
    lines = [
        f"$ORIGIN {ZONE}.",
        f"$TTL {TTL}",
        f"@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 {TTL}",
        f"@ IN NS ns.dns.{ZONE}.",
        f"ns.dns IN A {HOST}",
        'dns-version 28800 IN TXT "1.1.0"',
    ]
    for service in services:
        lines.extend(f"{owner} IN {rdtype} {rdata}" for owner, rdtype, rdata in service.records())
    return "\n".join(lines) + "\n"


ROOT_ZONE_TEXT = f"""$ORIGIN .
$TTL {TTL}
. IN SOA ns. hostmaster. 1 7200 1800 86400 {TTL}
. IN NS ns.
ns. IN A {HOST}
"""


# --------------------------------------------------------------------------------------------
# Ports and named
# --------------------------------------------------------------------------------------------


def free_port(host: str = HOST, *, udp: bool = True, attempts: int = 20) -> int:
    """A port free for TCP (and, by default, UDP too) on ``host``; the probes are closed."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port: int = tcp.getsockname()[1]
            if not udp:
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind((host, port))
                except OSError:
                    continue
                return port
    raise GroundError(f"no port free for both UDP and TCP on {host} after {attempts} attempts")


def find_named() -> str | None:
    """Path of ``named``: PATH first, then /usr/sbin and /usr/local/sbin."""
    found = shutil.which("named")
    if found:
        return found
    for candidate in ("/usr/sbin/named", "/usr/local/sbin/named"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


_CONF_TEMPLATE = """\
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    lock-file "{dir}/named.lock";
    session-keyfile "{dir}/session.key";
    managed-keys-directory "{dir}";
    dump-file "{dir}/named_dump.db";
    statistics-file "{dir}/named.stats";
    listen-on {{ {host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    notify no;
    empty-zones-enable no;
    minimal-responses no-auth;
{limits}}};

controls {{ }};

zone "{zone}" {{
    type primary;
    file "{zone}.db";
    allow-update {{ {host}; }};
    allow-transfer {{ {host}; }};
    notify no;
}};

zone "." {{
    type primary;
    file "root.db";
    allow-transfer {{ {host}; }};
    notify no;
}};
"""

_LIMITS = "    max-records-per-type 0;\n    max-types-per-name 0;\n"


def _checkconf_accepts(named: str, conf: Path) -> bool:
    checkconf = shutil.which("named-checkconf") or str(Path(named).with_name("named-checkconf"))
    if not os.access(checkconf, os.X_OK):
        return True  # cannot check; named itself will complain if it disagrees
    try:
        result = subprocess.run(
            [checkconf, str(conf)], capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return True
    return result.returncode == 0


class BindServer:
    """A ``named`` authoritative for ``cluster.local`` (plus an empty root) on loopback.

    >>> server = BindServer(tmp_dir); server.start()
    >>> server.nameserver   # '127.0.0.1:PORT'
    >>> server.zone.add_pod("web", "prod", 3, "127.10.0.4")
    >>> server.stop(); server.start()   # same port, journal kept
    >>> server.close()
    """

    host: str = HOST

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        named: str | None = None,
        port: int | None = None,
        services: Iterable[Service] | None = None,
        workers: int = 2,
        start_timeout: float = 10.0,
        stop_timeout: float = 10.0,
    ) -> None:
        found = named or find_named()
        if found is None:
            raise GroundError(NAMED_MISSING)
        self.named: str = found
        self.directory = Path(directory).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.workers = workers
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._fixed_port = port is not None
        self.port: int = port if port is not None else 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._started_once = False
        self._editor: ZoneEditor | None = None
        self._spawner: ThreadPoolExecutor | None = None
        self._counter = 0
        self._pool = AddressPool("127.20.0.0/15")
        self._pool6 = AddressPool("fd00:20::/64")
        self.startup_seconds: float | None = None
        """Wall time of the last successful :meth:`start` (spawn until it answers)."""
        self.conf_path = self.directory / "named.conf"
        self.log_path = self.directory / "named.log"
        self._write_files(GROUND.values() if services is None else services)

    # -- files -------------------------------------------------------------------------------

    def _write_files(self, services: Iterable[Service]) -> None:
        (self.directory / f"{ZONE}.db").write_text(zone_file_text(services))
        (self.directory / "root.db").write_text(ROOT_ZONE_TEXT)
        fmt = {"dir": self.directory, "host": self.host, "zone": ZONE}
        self.conf_path.write_text(_CONF_TEMPLATE.format(limits=_LIMITS, **fmt))
        self.limits_enabled = _checkconf_accepts(self.named, self.conf_path)
        if not self.limits_enabled:  # older BIND without these options
            self.conf_path.write_text(_CONF_TEMPLATE.format(limits="", **fmt))

    def log(self, last_lines: int = 40) -> str:
        """The tail of named's stderr log (all runs append to one file)."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-last_lines:])

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def nameserver(self) -> str:
        """``127.0.0.1:PORT``, as ``hc.Resolver(nameservers=[...])`` takes it."""
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self) -> None:
        """Start named (no-op if running) and wait until it answers on UDP and TCP.

        The first start picks a free port (retrying if named cannot bind it); later starts
        reuse that port and keep the zone journal, so dynamic updates survive a restart.
        """
        if self.running:
            return
        retry_port = not self._fixed_port and not self._started_once
        attempts = 5 if retry_port else 1
        for attempt in range(attempts):
            if retry_port:
                self.port = free_port(self.host)
            try:
                self._spawn_and_wait()
            except _BindFailed as exc:
                if attempt + 1 < attempts:
                    continue
                raise GroundError(
                    f"named could not listen on {self.nameserver}: {exc}\n{self.log()}"
                ) from None
            self._started_once = True
            return

    def _spawn_and_wait(self) -> None:
        began = time.monotonic()
        mark = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [
            self.named, "-g", "-4", "-n", str(self.workers),
            "-c", str(self.conf_path), "-p", str(self.port),
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            log.write(f"\n=== {' '.join(argv)}\n".encode())
            log.flush()
            # Spawned from one long-lived thread, because the parent-death signal fires when
            # the *thread* that forked named exits (a test may restart named from a thread).
            if self._spawner is None:
                self._spawner = ThreadPoolExecutor(1, thread_name_prefix="named-spawner")
            self._proc = self._spawner.submit(
                subprocess.Popen,
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.directory,
                start_new_session=True,  # a Ctrl-C in the terminal does not hit named first
                preexec_fn=_die_with_parent(),
            ).result(timeout=self.start_timeout)
        deadline = began + self.start_timeout
        probe = dns.message.make_query(_ORIGIN, "SOA")
        udp_ok = False
        while True:
            proc = self._proc
            assert proc is not None
            if proc.poll() is not None:
                self._proc = None
                proc.wait()
                text = self._log_since(mark)
                if "unable to listen" in text or "address in use" in text.lower():
                    raise _BindFailed(text.strip().splitlines()[-1] if text.strip() else "")
                raise GroundError(
                    f"named exited with status {proc.returncode} while starting on "
                    f"{self.nameserver}:\n{text[-4000:]}"
                )
            if "not loaded due to errors" in self._log_since(mark):
                self._kill()
                raise GroundError(
                    f"named could not load a zone:\n{self._log_since(mark)[-4000:]}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self._kill()
                raise GroundError(
                    f"named did not answer on {self.nameserver} within {self.start_timeout} s:\n"
                    f"{self._log_since(mark)[-4000:]}"
                )
            timeout = min(0.25, remaining)
            try:
                if not udp_ok:
                    reply = dns.query.udp(probe, self.host, timeout=timeout, port=self.port)
                    udp_ok = _is_our_soa(reply)
                    if udp_ok:
                        continue  # on to the TCP probe at once
                else:
                    reply = dns.query.tcp(probe, self.host, timeout=timeout, port=self.port)
                    if _is_our_soa(reply):
                        self.startup_seconds = time.monotonic() - began
                        return
            except (OSError, dns.exception.DNSException):
                pass
            # Polling under the deadline above: a refused connect fails at once, so pace it.
            time.sleep(min(0.02, max(0.0, deadline - time.monotonic())))

    def _log_since(self, mark: int) -> str:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(mark)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float | None = None) -> None:
        """Stop named: SIGTERM, wait (bounded), then SIGKILL. No-op if stopped."""
        proc = self._proc
        if proc is None:
            return
        self._proc = None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        else:
            proc.wait()

    def _kill(self) -> None:
        proc = self._proc
        self._proc = None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop named and the spawner thread (start() may still be called again)."""
        self.stop()
        if self._spawner is not None:
            self._spawner.shutdown(wait=True)
            self._spawner = None

    def __enter__(self) -> BindServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """``with server.down(): ...``: named is stopped inside the block, restarted after."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    # -- queries and edits -------------------------------------------------------------------

    @property
    def zone(self) -> ZoneEditor:
        """Dynamic updates of ``cluster.local`` on this server."""
        if self._editor is None or self._editor.port != self.port:
            self._editor = ZoneEditor(self.host, self.port)
        return self._editor

    def query(
        self,
        name: str | dns.name.Name,
        rdtype: str | dns.rdatatype.RdataType,
        *,
        tcp: bool = False,
        timeout: float = 2.0,
        payload: int | None = None,
    ) -> dns.message.Message:
        """One raw query: UDP with TCP fallback on TC (``tcp=True``: TCP only).

        ``payload`` sets an EDNS buffer size; ``None`` sends no EDNS (512-byte UDP limit).
        """
        q = dns.message.make_query(name, rdtype, use_edns=payload is not None, payload=payload or 0)
        if tcp:
            return dns.query.tcp(q, self.host, timeout=timeout, port=self.port)
        reply, _ = dns.query.udp_with_fallback(q, self.host, timeout=timeout, port=self.port)
        return reply

    def new_service(
        self,
        replicas: int = 3,
        *,
        prefix: str = "svc",
        namespace: str = "prod",
        port: int = 8080,
        port_name: str | None = "http",
        start: int = 0,
        ipv6: bool = False,
    ) -> FreshService:
        """Create a uniquely named StatefulSet service ``<prefix>-<n>`` on fresh 127.20/15
        addresses (plus fd00:20::/64 AAAA if ``ipv6``); the caller deletes it."""
        self._counter += 1
        name = f"{prefix}-{self._counter}"
        fresh = FreshService(
            self.zone,
            name=name,
            namespace=namespace,
            port=port,
            port_name=port_name,
            pool=self._pool,
            pool6=self._pool6 if ipv6 else None,
        )
        fresh.scale(replicas, start=start)
        return fresh


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` so named gets SIGTERM if pytest dies without its teardown (Linux
    ``PR_SET_PDEATHSIG``); ``None`` where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


class _BindFailed(Exception):
    """named exited because it could not listen (port taken): retry with another port."""


def _is_our_soa(reply: dns.message.Message) -> bool:
    if reply.rcode() != dns.rcode.NOERROR or not reply.flags & dns.flags.AA:
        return False
    return any(rrset.rdtype == dns.rdatatype.SOA for rrset in reply.answer)


# --------------------------------------------------------------------------------------------
# Dynamic updates
# --------------------------------------------------------------------------------------------


def _as_tuple(address: str | Sequence[str]) -> tuple[str, ...]:
    return (address,) if isinstance(address, str) else tuple(address)


def _family(address: str) -> str:
    return "A" if ipaddress.ip_address(address).version == 4 else "AAAA"


def _service_fqdn(service: str, namespace: str) -> str:
    return f"{service}.{namespace}.svc.{ZONE}."


def _hostname(service: str, pod: int | str, statefulset_name: str | None) -> str:
    return f"{statefulset_name or service}-{pod}" if isinstance(pod, int) else pod


class ZoneEditor:
    """Dynamic updates of ``cluster.local`` (``dns.update`` over TCP from 127.0.0.1).

    Every method sends one update message (applied atomically by BIND) and raises
    :class:`ZoneUpdateError` unless the server answers NOERROR.
    """

    def __init__(self, host: str, port: int, *, timeout: float = 5.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    # -- plumbing ----------------------------------------------------------------------------

    def _update(self) -> dns.update.UpdateMessage:
        return dns.update.UpdateMessage(_ORIGIN)

    def send(self, update: dns.update.UpdateMessage, what: str = "update") -> None:
        """Send an update; raise :class:`ZoneUpdateError` on a non-NOERROR answer."""
        try:
            reply = dns.query.tcp(update, self.host, timeout=self.timeout, port=self.port)
        except (OSError, dns.exception.DNSException) as exc:
            raise ZoneUpdateError(f"{what}: no answer from {self.host}:{self.port}: {exc}") from exc
        rcode = reply.rcode()
        if rcode != dns.rcode.NOERROR:
            raise ZoneUpdateError(f"{what}: server answered {dns.rcode.to_text(rcode)}", rcode)

    def lookup(self, name: str, rdtype: str) -> list[str]:
        """Rdata texts at ``name`` (empty for NXDOMAIN/NODATA), over TCP."""
        q = dns.message.make_query(name, rdtype)
        try:
            reply = dns.query.tcp(q, self.host, timeout=self.timeout, port=self.port)
        except (OSError, dns.exception.DNSException) as exc:
            raise ZoneUpdateError(f"lookup {name} {rdtype}: {exc}") from exc
        if reply.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            raise ZoneUpdateError(
                f"lookup {name} {rdtype}: server answered {dns.rcode.to_text(reply.rcode())}",
                reply.rcode(),
            )
        qname = dns.name.from_text(name)
        want = dns.rdatatype.from_text(rdtype)
        return [
            rdata.to_text()
            for rrset in reply.answer
            if rrset.name == qname and rrset.rdtype == want
            for rdata in rrset
        ]

    def records_under(self, fqdn: str) -> dict[str, list[tuple[str, str]]]:
        """Every owner at or under ``fqdn`` -> ``[(rdtype, rdata text)]``, read by AXFR."""
        top = dns.name.from_text(fqdn)
        found: dict[str, list[tuple[str, str]]] = {}
        try:
            for message in dns.query.xfr(
                self.host, _ORIGIN, port=self.port, timeout=self.timeout,
                lifetime=self.timeout * 4, relativize=False,
            ):  # fmt: skip
                for rrset in message.answer:
                    if rrset.rdtype == dns.rdatatype.SOA or not rrset.name.is_subdomain(top):
                        continue
                    bucket = found.setdefault(rrset.name.to_text(), [])
                    rdtype = dns.rdatatype.to_text(rrset.rdtype)
                    bucket.extend((rdtype, rdata.to_text()) for rdata in rrset)
        except (OSError, dns.exception.DNSException) as exc:
            raise ZoneUpdateError(f"AXFR of {ZONE} for {fqdn}: {exc}") from exc
        return found

    # -- pods --------------------------------------------------------------------------------

    def add_pod(
        self,
        service: str,
        namespace: str,
        pod: int | str,
        address: str | Sequence[str],
        *,
        port_name: str | None = "http",
        protocol: str = "tcp",
        port: int = 8080,
        statefulset: str | None = None,
        weight: int = 0,
    ) -> str:
        """A pod becomes ready: service A/AAAA, per-pod A/AAAA, SRV (if ``port_name``).

        ``pod`` is an ordinal (hostname ``<statefulset or service>-<ordinal>``) or a hostname.
        Other pods' SRV weights are not recomputed. Returns the pod FQDN.
        """
        svc = _service_fqdn(service, namespace)
        pod_name = f"{_hostname(service, pod, statefulset)}.{svc}"
        update = self._update()
        for addr in _as_tuple(address):
            update.add(svc, TTL, _family(addr), addr)
            update.add(pod_name, TTL, _family(addr), addr)
        if port_name is not None:
            update.add(f"_{port_name}._{protocol}.{svc}", TTL, "SRV", f"0 {weight} {port} {pod_name}")
        self.send(update, f"add_pod {pod_name}")
        return pod_name

    def remove_pod(
        self,
        service: str,
        namespace: str,
        pod: int | str,
        *,
        port_name: str | None = "http",
        protocol: str = "tcp",
        statefulset: str | None = None,
    ) -> None:
        """A pod becomes unready: remove its per-pod name, its addresses from the service
        name, and its SRV records at ``_<port_name>._<protocol>``. Nothing else is recomputed.
        Raises if the pod name does not exist."""
        svc = _service_fqdn(service, namespace)
        pod_name = f"{_hostname(service, pod, statefulset)}.{svc}"
        update = self._update()
        update.present(pod_name)
        for rdtype in ("A", "AAAA"):
            for addr in self.lookup(pod_name, rdtype):
                update.delete(svc, rdtype, addr)
        update.delete(pod_name)
        if port_name is not None:
            srv = f"_{port_name}._{protocol}.{svc}"
            target = dns.name.from_text(pod_name)
            for text in self.lookup(srv, "SRV"):
                if dns.name.from_text(text.split()[3]) == target:
                    update.delete(srv, "SRV", text)
        self.send(update, f"remove_pod {pod_name}")

    def reip_pod(
        self,
        service: str,
        namespace: str,
        pod: int | str,
        address: str | Sequence[str],
        *,
        statefulset: str | None = None,
    ) -> None:
        """A pod restarted with new address(es): replace them in the service and pod names.
        (For dashed-IP hostnames the name changes too: use remove_pod + add_pod instead.)"""
        svc = _service_fqdn(service, namespace)
        pod_name = f"{_hostname(service, pod, statefulset)}.{svc}"
        update = self._update()
        update.present(pod_name)
        for rdtype in ("A", "AAAA"):
            for old in self.lookup(pod_name, rdtype):
                update.delete(svc, rdtype, old)
                update.delete(pod_name, rdtype, old)
        for addr in _as_tuple(address):
            update.add(svc, TTL, _family(addr), addr)
            update.add(pod_name, TTL, _family(addr), addr)
        self.send(update, f"reip_pod {pod_name}")

    # -- services ----------------------------------------------------------------------------

    def delete_service(
        self,
        service: str,
        namespace: str,
        *,
        missing_ok: bool = False,
        names: Iterable[str] | None = None,
    ) -> int:
        """Zero ready pods: delete every name at and under the service, so A/AAAA/SRV all
        give NXDOMAIN (a leftover child would give NODATA in BIND). Returns the number of
        names deleted; raises if there were none unless ``missing_ok``.

        ``names`` (the owners the caller knows of) skips the AXFR that finds them; if the
        service still exists afterwards, the AXFR path runs anyway.
        """
        svc = _service_fqdn(service, namespace)
        if names is not None:
            known = sorted(set(names))
            if known:
                update = self._update()
                for owner in known:
                    update.delete(owner)
                self.send(update, f"delete_service {svc}")
            if not self.exists(svc):
                return len(known)
        found = self.records_under(svc)
        if not found:
            if missing_ok or names is not None:
                return 0
            raise ZoneUpdateError(f"delete_service: {svc} does not exist", dns.rcode.NXDOMAIN)
        update = self._update()
        for owner in found:
            update.delete(owner)
        self.send(update, f"delete_service {svc}")
        return len(found)

    def exists(self, name: str) -> bool:
        """Whether ``name`` exists (has records or children): not NXDOMAIN."""
        q = dns.message.make_query(name, "A")
        try:
            reply = dns.query.tcp(q, self.host, timeout=self.timeout, port=self.port)
        except (OSError, dns.exception.DNSException) as exc:
            raise ZoneUpdateError(f"lookup {name}: {exc}") from exc
        return reply.rcode() != dns.rcode.NXDOMAIN

    def create_service(self, service: Service) -> Service:
        """Add every record of ``service`` (SRV weights floor(100/N)); the service name must
        not exist yet (else YXDOMAIN)."""
        update = self._update()
        update.absent(service.fqdn)
        for owner, rdtype, rdata in service.records():
            update.add(owner, TTL, rdtype, rdata)
        self.send(update, f"create_service {service.fqdn}")
        return service

    def replace_service(self, service: Service, *, previous: Service | None = None) -> Service:
        """Atomically make the service exactly ``service``: delete all names at and under it,
        then add its records. An empty ``service`` leaves NXDOMAIN.

        ``previous`` (what the caller knows is there) skips the AXFR that finds the names.
        """
        if previous is not None:
            owners = {owner for owner, _, _ in previous.records()}
        else:
            owners = set(self.records_under(service.fqdn))
        return self._replace(service, owners)

    def _replace(self, service: Service, owners: Iterable[str]) -> Service:
        update = self._update()
        for owner in sorted(owners):
            update.delete(owner)
        for owner, rdtype, rdata in service.records():
            update.add(owner, TTL, rdtype, rdata)
        self.send(update, f"replace_service {service.fqdn}")
        return service

    def read_service(
        self,
        service: str,
        namespace: str,
        *,
        statefulset: str | None = None,
        port_name: str | None = "http",
        protocol: str = "tcp",
        port: int = 8080,
    ) -> Service:
        """Read a service back from the zone (AXFR). Pods are the per-pod names; a hostname
        ``<statefulset>-<n>`` gets ordinal n."""
        svc = _service_fqdn(service, namespace)
        return self._parse_service(
            self.records_under(svc), service, namespace, statefulset=statefulset,
            port_name=port_name, protocol=protocol, port=port,
        )  # fmt: skip

    @staticmethod
    def _parse_service(
        names: Mapping[str, list[tuple[str, str]]],
        service: str,
        namespace: str,
        *,
        statefulset: str | None,
        port_name: str | None,
        protocol: str,
        port: int,
    ) -> Service:
        svc = _service_fqdn(service, namespace)
        sts = statefulset or service
        pods: list[Pod] = []
        for owner, records in names.items():
            label = dns.name.from_text(owner).relativize(dns.name.from_text(svc)).to_text()
            if "." in label or label.startswith("_") or label == "@":
                continue
            addrs = tuple(rdata for rdtype, rdata in records if rdtype in ("A", "AAAA"))
            if not addrs:
                continue
            ordinal: int | None = None
            prefix = f"{sts}-"
            if label.startswith(prefix) and label[len(prefix) :].isdigit():
                ordinal = int(label[len(prefix) :])
            pods.append(Pod(label, addrs, ordinal))
        pods.sort(key=lambda p: (p.ordinal is None, p.ordinal or 0, p.hostname))
        return Service(
            name=service,
            namespace=namespace,
            pods=tuple(pods),
            statefulset=statefulset,
            port_name=port_name,
            protocol=protocol,
            port=port,
        )

    def scale(
        self,
        statefulset_name: str,
        namespace: str,
        replicas: int,
        base_address: str,
        *,
        service: str | None = None,
        start: int = 0,
        port_name: str | None = "http",
        protocol: str = "tcp",
        port: int = 8080,
    ) -> Service:
        """Scale a StatefulSet to ordinals ``start .. start+replicas-1``, atomically.

        Pods that stay keep their current addresses; new ordinal ``i`` gets
        ``base_address + (i - start)``; higher ordinals go away; SRV weights are recomputed.
        ``replicas=0`` leaves NXDOMAIN. Returns the new service description.
        """
        svc_name = service or statefulset_name
        names = self.records_under(_service_fqdn(svc_name, namespace))
        current = self._parse_service(
            names, svc_name, namespace, statefulset=statefulset_name,
            port_name=port_name, protocol=protocol, port=port,
        )  # fmt: skip
        have = {p.ordinal: p.addresses for p in current.pods if p.ordinal is not None}
        base = ipaddress.ip_address(base_address)
        wanted = {
            i: have.get(i) or (str(base + (i - start)),) for i in range(start, start + replicas)
        }
        desired = statefulset(
            statefulset_name, wanted, namespace=namespace, service=svc_name,
            port_name=port_name, protocol=protocol, port=port,
        )  # fmt: skip
        return self._replace(desired, names)


class ZoneMirror:
    """Keeps BIND's ``cluster.local`` equal to a fake cluster's zone, by dynamic updates.

    :meth:`push` takes a :class:`headless_client.testing._zone.Zone` (what
    ``FakeClusterDNS`` serves, built from a ``ClusterModel``) and sends only the RRsets
    that changed since the last push (replaced, or deleted when gone), in update messages
    of bounded size. So one model drives BIND as well as the fake and CoreDNS; BIND keeps
    its own behaviour (glue limit, compression, NODATA for empty non-terminals).
    """

    # Records per update message: 1000 SRV records of a big service are ~55 KB uncompressed
    # (dnspython does not compress SRV targets), so an RRset that size travels alone.
    _RDATAS_PER_UPDATE = 1000

    def __init__(self, editor: Callable[[], ZoneEditor]) -> None:
        self._editor = editor
        self._pushed: dict[tuple[str, int], tuple[int, frozenset[str]]] = {}

    def push(self, zone: object) -> int:
        """Write *zone*'s RRsets under ``cluster.local``; returns how many RRsets changed."""
        wanted: dict[tuple[str, int], tuple[int, frozenset[str]]] = {}
        for owner, rdtype, rdatas in zone.rrsets():  # type: ignore[attr-defined]
            if owner == _ORIGIN or not owner.is_subdomain(_ORIGIN):
                continue  # the apex (SOA, NS) is BIND's own
            ttl = 28800 if rdtype == dns.rdatatype.TXT else zone.ttl  # type: ignore[attr-defined]
            wanted[(owner.to_text(), int(rdtype))] = (ttl, frozenset(rd.to_text() for rd in rdatas))
        editor = self._editor()
        update = editor._update()
        pending = 0
        changed = 0
        for key in sorted(set(self._pushed) | set(wanted)):
            if self._pushed.get(key) == wanted.get(key):
                continue
            owner, rdtype = key
            changed += 1
            size = len(wanted[key][1]) if key in wanted else 1
            if pending and pending + size > self._RDATAS_PER_UPDATE:
                editor.send(update, "mirror")
                update, pending = editor._update(), 0
            if key not in wanted:
                update.delete(owner, dns.rdatatype.RdataType.make(rdtype))
                pending += 1
            else:
                ttl, texts = wanted[key]
                update.replace(owner, ttl, dns.rdatatype.to_text(rdtype), *sorted(texts))
                pending += len(texts)
        if pending:
            editor.send(update, "mirror")
        self._pushed = wanted
        return changed


# --------------------------------------------------------------------------------------------
# Fresh private services
# --------------------------------------------------------------------------------------------


class AddressPool:
    """Hands out unique host addresses of a network, in order (thread-safe)."""

    def __init__(self, network: str) -> None:
        self.network = ipaddress.ip_network(network)
        self._hosts = self.network.hosts()
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            for host in self._hosts:
                if self.network.version == 4 and str(host).endswith((".0", ".255")):
                    continue
                return str(host)
        raise GroundError(f"address pool {self.network} exhausted")


@dataclass
class FreshService:
    """A private StatefulSet service (``svc-<n>.prod``) owned by one test.

    Keeps its own view of the pods (``addresses``: ordinal -> address) in step with the zone.
    """

    zone: ZoneEditor
    name: str
    namespace: str
    port: int
    port_name: str | None
    pool: AddressPool
    pool6: AddressPool | None = None
    protocol: str = "tcp"
    addresses: dict[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def statefulset(self) -> str:
        return self.name

    @property
    def short(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def fqdn(self) -> str:
        return _service_fqdn(self.name, self.namespace)

    @property
    def srv_fqdn(self) -> str | None:
        return self.service.srv_fqdn

    def pod_fqdn(self, ordinal: int) -> str:
        return f"{self.name}-{ordinal}.{self.fqdn}"

    @property
    def service(self) -> Service:
        """The current contents as a :class:`Service` (same shape as GROUND entries)."""
        return statefulset(
            self.name, self.addresses, namespace=self.namespace,
            port_name=self.port_name, protocol=self.protocol, port=self.port,
        )  # fmt: skip

    @property
    def ordinals(self) -> tuple[int, ...]:
        return tuple(sorted(self.addresses))

    @property
    def ipv4(self) -> tuple[str, ...]:
        return self.service.ipv4

    def _new_addresses(self) -> tuple[str, ...]:
        v4 = self.pool.take()
        return (v4, self.pool6.take()) if self.pool6 is not None else (v4,)

    def scale(self, replicas: int, *, start: int | None = None) -> None:
        """Ordinals ``start .. start+replicas-1`` (start defaults to the lowest ordinal or 0);
        survivors keep their addresses, new pods get fresh ones; weights recomputed."""
        if start is None:
            start = min(self.addresses, default=0)
        wanted = {
            i: self.addresses.get(i) or self._new_addresses() for i in range(start, start + replicas)
        }
        previous = self.service
        self.addresses = wanted
        self.zone.replace_service(self.service, previous=previous)

    def add(self, ordinal: int | None = None, address: str | Sequence[str] | None = None) -> int:
        """Add one ready pod (default: next ordinal, fresh address). Returns its ordinal."""
        if ordinal is None:
            ordinal = max(self.addresses, default=-1) + 1
        addrs = _as_tuple(address) if address is not None else self._new_addresses()
        self.zone.add_pod(
            self.name, self.namespace, ordinal, addrs,
            port_name=self.port_name, protocol=self.protocol, port=self.port,
        )  # fmt: skip
        self.addresses[ordinal] = addrs
        return ordinal

    def remove(self, ordinal: int) -> None:
        """The pod goes unready (its records vanish; removing the last one leaves NXDOMAIN)."""
        self.zone.remove_pod(
            self.name, self.namespace, ordinal, port_name=self.port_name, protocol=self.protocol
        )
        del self.addresses[ordinal]

    def reip(self, ordinal: int, address: str | Sequence[str] | None = None) -> tuple[str, ...]:
        """The pod restarts with new address(es) (fresh ones by default). Returns them."""
        addrs = _as_tuple(address) if address is not None else self._new_addresses()
        self.zone.reip_pod(self.name, self.namespace, ordinal, addrs)
        self.addresses[ordinal] = addrs
        return addrs

    def delete(self, *, missing_ok: bool = True) -> None:
        """Zero ready pods: everything at and under the name goes (NXDOMAIN)."""
        names = [owner for owner, _, _ in self.service.records()]
        self.zone.delete_service(self.name, self.namespace, missing_ok=missing_ok, names=names)
        self.addresses = {}


# --------------------------------------------------------------------------------------------
# Pods: loopback TCP servers
# --------------------------------------------------------------------------------------------


def _listener(address: str, port: int, backlog: int) -> socket.socket:
    family = socket.AF_INET6 if ipaddress.ip_address(address).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


class BlackHole:
    """A listener whose accept queue is full: a further connect's handshake never completes.

    Linux drops the SYN while the accept queue is full (backlog 0 still queues one
    connection), so the client retransmits until its own timeout. The queue is filled
    with client sockets held here until :meth:`close`.
    """

    def __init__(
        self,
        address: str = HOST,
        port: int = 0,
        *,
        probe_timeout: float = 0.2,
        max_fillers: int = 8,
    ) -> None:
        self.address = address
        self._listener = _listener(address, port, 0)
        self.port: int = self._listener.getsockname()[1]
        self._fillers: list[socket.socket] = []
        try:
            self._fill(probe_timeout, max_fillers)
        except BaseException:
            self.close()
            raise

    def _fill(self, probe_timeout: float, max_fillers: int) -> None:
        for _ in range(max_fillers):
            client = socket.socket(self._listener.family, socket.SOCK_STREAM)
            client.setblocking(False)
            code = client.connect_ex((self.address, self.port))
            if code == 0:
                self._fillers.append(client)
                continue
            if code not in (errno.EINPROGRESS, errno.EAGAIN):
                client.close()
                raise GroundError(f"black hole {self.address}:{self.port}: connect errno {code}")
            with selectors.DefaultSelector() as sel:
                sel.register(client, selectors.EVENT_WRITE)
                ready = sel.select(probe_timeout)
            if ready and client.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                self._fillers.append(client)
                continue
            client.close()  # this one hung: the queue is full
            if not self._fillers:
                raise GroundError("black hole: the first connect did not complete")
            return
        raise GroundError(f"black hole: accept queue not full after {max_fillers} connects")

    @property
    def fillers(self) -> int:
        """How many connections it took to fill the accept queue."""
        return len(self._fillers)

    def close(self) -> None:
        for client in self._fillers:
            client.close()
        self._fillers.clear()
        self._listener.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Conn:
    __slots__ = ("out", "server", "sock")

    def __init__(self, sock: socket.socket, server: PodServer) -> None:
        self.sock = sock
        self.server = server
        self.out = bytearray()


class PodServer:
    """One pod: a TCP listener on ``address:port`` run by its :class:`PodServers` loop.

    Modes: ``serve`` (greet with ``<name>\\n``, then echo), ``refuse`` (listener closed:
    connect gets ECONNREFUSED; open connections are closed), ``hang`` (accept, never answer),
    ``black_hole`` (connect never completes).
    """

    def __init__(self, owner: PodServers, name: str, address: str, port: int) -> None:
        self.owner = owner
        self.name = name
        self.address = address
        self.port = port
        self.mode = "refuse"
        self.accepted = 0
        """Connections accepted so far (in serve or hang mode)."""
        self._listener: socket.socket | None = None
        self._black_hole: BlackHole | None = None
        self._conns: set[_Conn] = set()

    @property
    def endpoint(self) -> tuple[str, int]:
        return (self.address, self.port)

    @property
    def open_connections(self) -> int:
        return len(self._conns)

    def serve(self) -> None:
        """Listen and answer: greeting line, then echo."""
        self.owner._call(lambda: self._set_mode("serve"))

    def refuse(self) -> None:
        """Close the listener and every open connection (the pod is down)."""
        self.owner._call(lambda: self._set_mode("refuse"))

    def hang(self) -> None:
        """Keep listening but never send anything (a stuck process)."""
        self.owner._call(lambda: self._set_mode("hang"))

    def black_hole(self) -> None:
        """Connects to this pod never complete (the handshake is never answered)."""
        self.owner._call(lambda: self._set_mode("black_hole"))

    # -- loop-thread side --------------------------------------------------------------------

    def _set_mode(self, mode: str) -> None:
        if mode == self.mode:
            return
        if mode in ("refuse", "black_hole"):
            self._close_listener()
            for conn in list(self._conns):
                self.owner._drop(conn)
        if mode != "black_hole" and self._black_hole is not None:
            self._black_hole.close()
            self._black_hole = None
        if mode in ("serve", "hang") and self._listener is None:
            self._listener = _listener(self.address, self.port, 128)
            self._listener.setblocking(False)
            self.owner._sel.register(self._listener, selectors.EVENT_READ, self)
        if mode == "black_hole":
            self._black_hole = BlackHole(self.address, self.port)
        self.mode = mode

    def _close_listener(self) -> None:
        if self._listener is not None:
            self.owner._sel.unregister(self._listener)
            self._listener.close()
            self._listener = None

    def _close(self) -> None:
        self._set_mode("refuse")


class PodServers:
    """Loopback pod servers on one shared port, served by one selector thread.

    >>> with PodServers(port) as pods:
    ...     pods.add("web-0", "127.10.0.1")
    ...     pods.serve_service(GROUND["web"])
    """

    def __init__(self, port: int | None = None, *, max_connections: int = 4096) -> None:
        self.port: int = port if port is not None else free_port(HOST, udp=False)
        self.max_connections = max_connections
        self.servers: dict[str, PodServer] = {}
        self._sel = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, None)
        self._calls: list[tuple[Callable[[], object], threading.Event, list[BaseException]]] = []
        self._lock = threading.Lock()
        self._conn_count = 0
        self._stopping = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="pod-servers", daemon=True)
        self._thread.start()

    # -- public ------------------------------------------------------------------------------

    def add(self, name: str, address: str, *, mode: str = "serve") -> PodServer:
        """Start a pod server called ``name`` on ``address:self.port``."""
        if name in self.servers:
            raise GroundError(f"pod server {name!r} exists")
        server = PodServer(self, name, address, self.port)
        setter = {
            "serve": server.serve, "refuse": server.refuse,
            "hang": server.hang, "black_hole": server.black_hole,
        }[mode]  # fmt: skip
        setter()
        self.servers[name] = server
        return server

    def serve_service(self, service: Service | FreshService) -> list[PodServer]:
        """One pod server per IPv4 pod address of ``service``, named by pod hostname."""
        svc = service.service if isinstance(service, FreshService) else service
        return [self.add(pod.hostname, addr) for pod in svc.pods for addr in pod.ipv4]

    def __getitem__(self, name: str) -> PodServer:
        return self.servers[name]

    def close(self, timeout: float = 5.0) -> None:
        """Close every listener and connection and stop the thread (bounded)."""
        if self._closed:
            return
        with contextlib.suppress(GroundError):
            self._call(self._close_all, timeout=timeout)
        self._stopping = True
        self._wake()
        self._thread.join(timeout)
        self._closed = True
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        if self._thread.is_alive():
            raise GroundError("pod server thread did not stop")

    def __enter__(self) -> PodServers:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- loop --------------------------------------------------------------------------------

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def _call(self, fn: Callable[[], object], timeout: float = 5.0) -> None:
        if self._closed or self._stopping:
            raise GroundError("pod servers are closed")
        done = threading.Event()
        errors: list[BaseException] = []
        with self._lock:
            self._calls.append((fn, done, errors))
        self._wake()
        if not done.wait(timeout):
            raise GroundError(f"pod server loop did not run a call within {timeout} s")
        if errors:
            raise errors[0]

    def _close_all(self) -> None:
        for server in self.servers.values():
            server._close()

    def _run(self) -> None:
        while not self._stopping:
            for key, mask in self._sel.select(timeout=0.5):
                if key.data is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                elif isinstance(key.data, PodServer):
                    self._accept(key.data)
                else:
                    self._io(key.data, mask)
            with self._lock:
                calls, self._calls = self._calls, []
            for fn, done, errors in calls:
                try:
                    fn()
                except BaseException as exc:
                    errors.append(exc)
                done.set()

    def _accept(self, server: PodServer) -> None:
        listener = server._listener
        if listener is None:
            return
        for _ in range(64):  # bounded burst per wakeup
            try:
                sock, _ = listener.accept()
            except OSError:  # BlockingIOError: nothing more to accept
                return
            if self._conn_count >= self.max_connections:
                sock.close()
                continue
            sock.setblocking(False)
            conn = _Conn(sock, server)
            server.accepted += 1
            server._conns.add(conn)
            self._conn_count += 1
            if server.mode == "serve":
                conn.out += f"{server.name}\n".encode()
                self._sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
            else:
                self._sel.register(sock, selectors.EVENT_READ, conn)

    def _io(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._drop(conn)
                return
            if data == b"":
                self._drop(conn)
                return
            if data and conn.server.mode == "serve" and len(conn.out) < 1 << 20:
                conn.out += data
        if conn.out:
            try:
                sent = conn.sock.send(conn.out)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._drop(conn)
                return
            del conn.out[:sent]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if conn.out else 0)
        if self._sel.get_key(conn.sock).events != events:
            self._sel.modify(conn.sock, events, conn)

    def _drop(self, conn: _Conn) -> None:
        if conn in conn.server._conns:
            conn.server._conns.discard(conn)
            self._conn_count -= 1
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(conn.sock)
        conn.sock.close()
