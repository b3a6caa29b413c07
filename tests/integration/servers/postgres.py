"""A real PostgreSQL primary and two streaming standbys on loopback addresses.

Pod ``i`` is ``pg-<i>`` (per-pod name ``pg-<i>.pg.prod.svc.cluster.local``) on
``127.0.40.<i+1>``; all pods listen on one port, like a StatefulSet's container port. ``pg-0``
starts as the primary (``initdb``); ``pg-1`` and ``pg-2`` are made with
``pg_basebackup -R -X stream -C -S <slot>`` and stream from it through physical replication
slots, addressed by IP (the servers need no DNS).

PostgreSQL refuses to run as root, so when the tests run as root the servers run as the
``postgres`` user of Debian's package, in a private directory under the system temp dir
(pytest's own temp dirs are closed to other users).

Every pod has TLS on (``sslmode`` is the client's choice) with a certificate for its per-pod name
from a trustme CA (:attr:`PostgresCluster.ca_path`), so ``sslmode=verify-full`` with
``host=<per-pod name> hostaddr=<address>`` can be tested.

Failover: :meth:`PostgresCluster.promote` stops the current primary (it is "retired": starting it
again would make a second primary, so :meth:`PostgresCluster.start` refuses), promotes the
standby with ``pg_ctl promote``, and by default repoints every other running standby at the new
primary (a slot there, ``ALTER SYSTEM SET primary_conninfo``, reload; the standby follows the new
timeline). :meth:`PostgresCluster.reset` rebuilds the normal shape: ``pg-0`` primary, two
standbys.
"""

from __future__ import annotations

import enum
import functools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.integration.servers.process import (
    RunAs,
    ServerError,
    ServerMissing,
    ServerProcess,
    address_in_use,
    chown_tree,
    common_free_port,
    port_free_on,
    remove_at_exit,
    wait_until,
)

__all__ = [
    "POSTGRES_MISSING",
    "PgPod",
    "PgRole",
    "PostgresCluster",
    "find_postgres_bin",
]

POSTGRES_MISSING = (
    "PostgreSQL server binaries not found (initdb, pg_ctl, pg_basebackup, postgres under "
    "/usr/lib/postgresql/<major>/bin): install them with scripts/install/postgres.sh "
    "(Debian's postgresql; scripts/test runs it)"
)

CLUSTER_DOMAIN = "cluster.local"
_TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "postgres", "psql")


def find_postgres_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding every tool the ground uses
    (or ``$HEADLESS_CLIENT_PG_BIN``)."""
    configured = os.environ.get("HEADLESS_CLIENT_PG_BIN")
    candidates = [Path(configured)] if configured else []
    root = Path("/usr/lib/postgresql")
    if root.is_dir():
        majors = sorted(
            (p for p in root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name), reverse=True
        )
        candidates += [p / "bin" for p in majors]
    for directory in candidates:
        if all(os.access(directory / tool, os.X_OK) for tool in _TOOLS):
            return directory
    return None


class PgRole(str, enum.Enum):
    """What a pod is in the replication topology."""

    PRIMARY = "primary"
    STANDBY = "standby"
    RETIRED = "retired"
    """A primary stopped by a failover: it must not start again as it is (split brain)."""


@dataclass(frozen=True, slots=True)
class PgPod:
    """A snapshot of one pod: names, where it listens, its role, whether it runs."""

    ordinal: int
    name: str
    fqdn: str
    address: str
    port: int
    role: PgRole
    running: bool


@dataclass(slots=True)
class _Node:
    ordinal: int
    name: str
    fqdn: str
    address: str
    data: Path
    socket_dir: Path
    role: PgRole
    server: ServerProcess | None = None

    @property
    def slot(self) -> str:
        return self.name.replace("-", "_")


class PostgresCluster:
    """A primary and ``standbys`` streaming standbys (PostgreSQL from Debian's packages).

    >>> cluster = PostgresCluster(); cluster.start()
    >>> cluster.primary.address, cluster.port
    >>> cluster.conninfo("pg-1")  # 'host=pg-1.pg.prod.svc.cluster.local hostaddr=... dbname=app ...'
    >>> cluster.promote("pg-1"); cluster.reset(); cluster.close()
    """

    service = "pg"
    namespace = "prod"
    dbname = "app"
    user = "app"
    password = "app-test-password"
    superuser = "postgres"
    superuser_password = "postgres-test-password"
    replication_user = "replicator"
    replication_password = "replicator-test-password"

    def __init__(
        self,
        *,
        standbys: int = 2,
        network: str = "127.0.40.0/24",
        bin_dir: Path | None = None,
        tls: bool = True,
        start_timeout: float = 60.0,
    ) -> None:
        found = bin_dir or find_postgres_bin()
        if found is None:
            raise ServerMissing(POSTGRES_MISSING)
        self.bin_dir = found
        self.run_as = _server_user()
        self.tls = tls
        self.start_timeout = start_timeout
        prefix = network.rsplit(".", 1)[0]
        self._addresses = [f"{prefix}.{i + 1}" for i in range(standbys + 1)]
        self.base = Path(tempfile.mkdtemp(prefix="hc-pg-"))
        os.chmod(self.base, 0o700)
        remove_at_exit(self.base)
        self.port = 0
        self.ca_path = self.base / "ca.pem"
        """PEM of the CA that signed every pod's certificate (libpq's ``sslrootcert``)."""
        self._nodes: list[_Node] = []
        self.startup_seconds: float | None = None
        """Wall time of the last :meth:`start` or rebuilding :meth:`reset`."""
        self._make_tls()

    # ---------------------------------------------------------------------------- views
    @property
    def pods(self) -> tuple[PgPod, ...]:
        return tuple(self._snapshot(node) for node in self._nodes)

    def pod(self, name: str | int) -> PgPod:
        return self._snapshot(self._node(name))

    @property
    def primary(self) -> PgPod:
        """The pod whose role is primary now (after a promotion, not ``pg-0``)."""
        for node in self._nodes:
            if node.role is PgRole.PRIMARY:
                return self._snapshot(node)
        raise ServerError("the cluster has no primary")

    @property
    def standbys(self) -> tuple[PgPod, ...]:
        return tuple(self._snapshot(n) for n in self._nodes if n.role is PgRole.STANDBY)

    def addresses_by_name(self) -> dict[str, str]:
        """``{per-pod name: address}``, what a cluster DNS would answer."""
        return {node.fqdn: node.address for node in self._nodes}

    def conninfo(
        self,
        name: str | int,
        *,
        dbname: str | None = None,
        user: str | None = None,
        password: str | None = None,
        **options: str,
    ) -> str:
        """A libpq conninfo for one pod: ``host=<per-pod name> hostaddr=<address>`` (libpq
        dials the address and keeps the name for TLS), the test database and user by default.
        ``options`` are extra keywords (``sslmode="verify-full"``, ``sslrootcert=...``)."""
        node = self._node(name)
        words = {
            "host": node.fqdn,
            "hostaddr": node.address,
            "port": str(self.port),
            "dbname": dbname or self.dbname,
            "user": user or self.user,
            "password": password if password is not None else self._password_of(user or self.user),
            "connect_timeout": "5",
            **options,
        }
        return " ".join(f"{key}={_quote(value)}" for key, value in words.items())

    # ---------------------------------------------------------------------------- lifecycle
    def start(self, *, attempts: int = 3) -> None:
        """Build and start the primary and its standbys (a busy port is retried)."""
        began = time.monotonic()
        for attempt in range(1, attempts + 1):
            try:
                self._build()
            except ServerError as exc:
                busy = any(n.server is not None and address_in_use(n.server.log_tail(50)) for n in self._nodes)
                self._stop_all()
                if busy and attempt < attempts:
                    continue
                raise ServerError(f"PostgreSQL cluster did not start: {exc}") from exc
            break
        self.startup_seconds = time.monotonic() - began

    def stop(self, name: str | int, *, mode: str = "fast") -> None:
        """Stop one pod: ``fast`` (SIGINT: clean shutdown), ``immediate`` (SIGQUIT: a crash,
        recovery on next start) or ``kill`` (SIGKILL)."""
        node = self._node(name)
        if node.server is None:
            return
        if mode == "kill":
            node.server.kill()
        else:
            sig = {"fast": signal.SIGINT, "immediate": signal.SIGQUIT}.get(mode)
            if sig is None:
                raise ValueError(f"stop mode must be 'fast', 'immediate' or 'kill', got {mode!r}")
            node.server.stop(timeout=30.0, sig=sig)

    def start_pod(self, name: str | int) -> PgPod:
        """Start a stopped pod again (a standby resumes streaming); a retired primary refuses."""
        node = self._node(name)
        if node.role is PgRole.RETIRED:
            raise ServerError(
                f"{node.name} was the primary before a failover; starting it would make a second "
                "primary: use reset() to rebuild the cluster"
            )
        if node.server is not None and node.server.running:
            return self._snapshot(node)
        self._spawn(node)
        self._wait_ready(node)
        if node.role is PgRole.STANDBY:
            self._wait_streaming(node)
        return self._snapshot(node)

    def promote(self, name: str | int, *, stop_primary: bool = True, repoint: bool = True) -> PgPod:
        """Fail over to standby ``name``; returns the new primary.

        ``stop_primary`` first stops the current primary cleanly (its last WAL reaches the
        standbys, so the others can follow the new timeline); it is then ``RETIRED``.
        ``repoint`` makes every other running standby stream from the new primary; with
        ``repoint=False`` they keep following the old one (stopped: they wait, read-only).
        """
        node = self._node(name)
        if node.role is not PgRole.STANDBY or node.server is None or not node.server.running:
            raise ServerError(f"{node.name} is not a running standby (role {node.role.value})")
        old = next(n for n in self._nodes if n.role is PgRole.PRIMARY)
        if stop_primary:
            self.stop(old.name)
            old.role = PgRole.RETIRED
        self._run(
            [str(self.bin_dir / "pg_ctl"), "promote", "-D", str(node.data), "-w", "-t", "60"],
            what=f"pg_ctl promote {node.name}",
        )
        wait_until(
            f"{node.name} out of recovery",
            lambda: self.sql(node.name, "SELECT NOT pg_is_in_recovery()") == "t",
            timeout=self.start_timeout,
        )
        if not stop_primary:
            old.role = PgRole.RETIRED
        node.role = PgRole.PRIMARY
        if repoint:
            for other in self._nodes:
                if other.role is PgRole.STANDBY and other.server is not None and other.server.running:
                    self._follow(other, node)
        return self._snapshot(node)

    def reset(self) -> None:
        """Back to the normal shape: ``pg-0`` primary, the others its streaming standbys.

        Cheap when only pods were stopped (they start again, data kept); after a promotion the
        cluster is rebuilt from ``initdb`` (a few seconds).
        """
        normal = self._nodes and all(
            n.role is (PgRole.PRIMARY if n.ordinal == 0 else PgRole.STANDBY) for n in self._nodes
        )
        if normal:
            for node in self._nodes:
                if node.server is None or not node.server.running:
                    self._spawn(node)
                    self._wait_ready(node)
            for node in self._nodes[1:]:
                self._wait_streaming(node)
            return
        self._stop_all()
        for node in self._nodes:
            shutil.rmtree(node.data, ignore_errors=True)
        self.start()

    def restore(self) -> None:
        """Between tests: :meth:`reset` (a no-op when nothing changed)."""
        self.reset()

    def sql(self, name: str | int, query: str, *, dbname: str = "postgres") -> str:
        """Run SQL as the superuser over the pod's Unix socket (psql); its unaligned output."""
        node = self._node(name)
        result = self._run(
            [
                str(self.bin_dir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                "-h", str(node.socket_dir), "-p", str(self.port), "-U", self.superuser,
                "-d", dbname, "-c", query,
            ],
            what=f"psql on {node.name}",
            as_server_user=False,
            timeout=30.0,
        )
        return result.strip()

    def wait_replicated(self, *, timeout: float = 30.0) -> None:
        """Wait until every running standby has replayed all the primary's WAL written so far."""
        primary = self.primary
        target = self.sql(primary.name, "SELECT pg_current_wal_lsn()")
        query = f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"

        def replayed(name: str) -> bool:
            return self.sql(name, query) == "t"

        for node in self._nodes:
            if node.role is PgRole.STANDBY and node.server is not None and node.server.running:
                wait_until(
                    f"{node.name} replaying up to {target}",
                    functools.partial(replayed, node.name),
                    timeout=timeout,
                )

    def close(self) -> None:
        """Stop every pod and remove the data."""
        self._stop_all()
        shutil.rmtree(self.base, ignore_errors=True)
        remove_at_exit(self.base, cancel=True)

    # ---------------------------------------------------------------------------- building
    def _build(self) -> None:
        # A rebuild keeps the port when it is still free (tests may hold on to it).
        if not (self.port and all(port_free_on(a, self.port) for a in self._addresses)):
            self.port = common_free_port(self._addresses)
        self._nodes = [
            _Node(
                ordinal=i,
                name=f"pg-{i}",
                fqdn=f"pg-{i}.{self.service}.{self.namespace}.svc.{CLUSTER_DOMAIN}",
                address=address,
                data=self.base / f"pg-{i}",
                socket_dir=self.base / "run" / f"pg-{i}",
                role=PgRole.PRIMARY if i == 0 else PgRole.STANDBY,
            )
            for i, address in enumerate(self._addresses)
        ]
        for node in self._nodes:
            shutil.rmtree(node.data, ignore_errors=True)
            node.socket_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(node.socket_dir, 0o755)
        chown_tree(self.base, self.run_as)

        primary, standbys = self._nodes[0], self._nodes[1:]
        pwfile = self.base / "superuser.pw"
        pwfile.write_text(self.superuser_password + "\n")
        chown_tree(pwfile, self.run_as)
        try:
            self._run(
                [
                    str(self.bin_dir / "initdb"), "-D", str(primary.data), "-U", self.superuser,
                    f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                    "--no-sync", "-E", "UTF8", "--locale=C",
                ],
                what="initdb",
            )
        finally:
            pwfile.unlink()
        with open(primary.data / "postgresql.conf", "a") as conf:
            conf.write(_COMMON_CONF)
        (primary.data / "pg_hba.conf").write_text(_HBA)
        self._write_node_conf(primary)
        self._spawn(primary)
        self._wait_ready(primary)
        self.sql(
            primary.name,
            f"CREATE ROLE {self.replication_user} WITH REPLICATION LOGIN PASSWORD "
            f"'{self.replication_password}'; "
            f"CREATE ROLE {self.user} WITH LOGIN PASSWORD '{self.password}'",
        )
        self.sql(primary.name, f"CREATE DATABASE {self.dbname} OWNER {self.user}")
        with ThreadPoolExecutor(max_workers=len(standbys) or 1) as pool:
            list(pool.map(lambda node: self._clone(node, primary), standbys))
        for node in standbys:  # spawned from this thread: see process._die_with_parent
            self._spawn(node)
        with ThreadPoolExecutor(max_workers=len(standbys) or 1) as pool:
            list(pool.map(self._wait_ready, standbys))
            list(pool.map(self._wait_streaming, standbys))

    def _clone(self, node: _Node, primary: _Node) -> None:
        self._run(
            [
                str(self.bin_dir / "pg_basebackup"), "-h", primary.address, "-p", str(self.port),
                "-U", self.replication_user, "-D", str(node.data), "-R", "-X", "stream",
                "-C", "-S", node.slot, "--checkpoint=fast", "--no-sync",
                "-d", f"application_name={node.name}",
            ],
            what=f"pg_basebackup for {node.name}",
            env={"PGPASSWORD": self.replication_password, "PGSSLMODE": "disable"},
        )
        self._write_node_conf(node)

    def _write_node_conf(self, node: _Node) -> None:
        """The per-pod settings (address, socket, name, certificate), included by
        postgresql.conf; rewritten after a base backup copied the primary's."""
        lines = [
            f"listen_addresses = '{node.address}'",
            f"port = {self.port}",
            f"unix_socket_directories = '{node.socket_dir}'",
            f"cluster_name = '{node.name}'",
        ]
        if self.tls:
            shutil.copyfile(self.base / "tls" / f"{node.name}.crt", node.data / "server.crt")
            shutil.copyfile(self.base / "tls" / f"{node.name}.key", node.data / "server.key")
            os.chmod(node.data / "server.key", 0o600)
            lines += ["ssl = on", "ssl_cert_file = 'server.crt'", "ssl_key_file = 'server.key'"]
        else:
            lines.append("ssl = off")
        (node.data / "node.conf").write_text("\n".join(lines) + "\n")
        chown_tree(node.data, self.run_as)

    def _make_tls(self) -> None:
        if not self.tls:
            return
        import trustme  # a test dependency; only needed for TLS

        ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
        ca.cert_pem.write_to_path(str(self.ca_path))
        tls_dir = self.base / "tls"
        tls_dir.mkdir()
        for i in range(len(self._addresses)):
            name = f"pg-{i}"
            cert = ca.issue_cert(f"{name}.{self.service}.{self.namespace}.svc.{CLUSTER_DOMAIN}")
            cert.cert_chain_pems[0].write_to_path(str(tls_dir / f"{name}.crt"))
            for extra in cert.cert_chain_pems[1:]:
                extra.write_to_path(str(tls_dir / f"{name}.crt"), append=True)
            cert.private_key_pem.write_to_path(str(tls_dir / f"{name}.key"))

    # ---------------------------------------------------------------------------- running
    def _spawn(self, node: _Node) -> None:
        node.server = ServerProcess(
            node.name,
            [str(self.bin_dir / "postgres"), "-D", str(node.data)],
            log_path=self.base / f"{node.name}.log",
            run_as=self.run_as,
            stop_signal=signal.SIGINT,
            env={"LANG": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        )
        node.server.start()

    def _wait_ready(self, node: _Node) -> None:
        assert node.server is not None
        wait_until(
            f"{node.name} on {node.address}:{self.port} accepting connections",
            lambda: self.sql(node.name, "SELECT 1") == "1",
            timeout=self.start_timeout,
            interval=0.1,
            alive=node.server.exit_reason,
        )

    def _wait_streaming(self, node: _Node) -> None:
        primary = next(n for n in self._nodes if n.role is PgRole.PRIMARY)
        wait_until(
            f"{node.name} streaming from {primary.name}",
            lambda: self.sql(
                primary.name,
                f"SELECT count(*) FROM pg_stat_replication WHERE application_name = '{node.name}' "
                "AND state = 'streaming'",
            )
            == "1",
            timeout=self.start_timeout,
            interval=0.1,
            alive=node.server.exit_reason if node.server is not None else None,
        )

    def _follow(self, standby: _Node, primary: _Node) -> None:
        self.sql(
            primary.name,
            f"SELECT pg_create_physical_replication_slot('{standby.slot}') "
            f"WHERE NOT EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = '{standby.slot}')",
        )
        conninfo = (
            f"host={primary.address} port={self.port} user={self.replication_user} "
            f"password={self.replication_password} application_name={standby.name} sslmode=disable"
        )
        self.sql(
            standby.name,
            f"ALTER SYSTEM SET primary_conninfo = '{conninfo}'",
        )
        self.sql(standby.name, f"ALTER SYSTEM SET primary_slot_name = '{standby.slot}'")
        self.sql(standby.name, "SELECT pg_reload_conf()")
        self._wait_streaming(standby)

    def _stop_all(self) -> None:
        for node in self._nodes:
            if node.server is not None:
                node.server.stop(timeout=30.0)

    def _run(
        self,
        argv: Sequence[str],
        *,
        what: str,
        env: Mapping[str, str] | None = None,
        as_server_user: bool = True,
        timeout: float = 120.0,
    ) -> str:
        run_as = self.run_as if as_server_user and self.run_as and os.geteuid() != self.run_as.uid else None
        full_env = {"LANG": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **(env or {})}
        try:
            result = subprocess.run(
                list(argv),
                capture_output=True,
                text=True,
                env=full_env,
                cwd=self.base,
                timeout=timeout,
                check=False,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                extra_groups=[] if run_as else None,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServerError(f"{what}: no answer after {timeout:.0f} s") from exc
        if result.returncode != 0:
            raise ServerError(f"{what} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
        return str(result.stdout)

    # ---------------------------------------------------------------------------- lookups
    def _node(self, name: str | int) -> _Node:
        for node in self._nodes:
            if name in (node.name, node.ordinal, node.fqdn):
                return node
        raise KeyError(f"no PostgreSQL pod {name!r} (pods: {', '.join(n.name for n in self._nodes)})")

    def _snapshot(self, node: _Node) -> PgPod:
        return PgPod(
            ordinal=node.ordinal,
            name=node.name,
            fqdn=node.fqdn,
            address=node.address,
            port=self.port,
            role=node.role,
            running=node.server is not None and node.server.running,
        )

    def _password_of(self, user: str) -> str:
        return {
            self.user: self.password,
            self.superuser: self.superuser_password,
            self.replication_user: self.replication_password,
        }.get(user, "")


def _server_user() -> RunAs | None:
    """Root runs the servers as ``postgres`` (PostgreSQL refuses root); others as themselves."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServerMissing(
            "running as root, but there is no `postgres` user to run PostgreSQL as: "
            "scripts/install/postgres.sh installs Debian's package, which creates it"
        ) from exc
    return RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _quote(value: str) -> str:
    if value and not any(c in value for c in " '\\"):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


_COMMON_CONF = """
# --- headless-client test ground ---
wal_level = replica
max_wal_senders = 10
max_replication_slots = 10
wal_keep_size = 64MB
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 1s
max_connections = 60
shared_buffers = 16MB
fsync = off
full_page_writes = off
password_encryption = scram-sha-256
log_min_messages = warning
include_if_exists = 'node.conf'
"""

_HBA = """\
# headless-client test ground: trust on the Unix socket (the fixture's own psql), passwords on TCP.
local   all          all                     trust
host    all          all          127.0.0.0/8  scram-sha-256
host    replication  all          127.0.0.0/8  scram-sha-256
"""
