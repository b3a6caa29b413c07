"""The ``headless-client`` command: see what a headless service resolves to right now.

Exit codes: 0 success, 1 DNS or connection failure (``doctor``: a finding to act on), 2
bad input (one line on stderr, no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any, NoReturn, TextIO

from .endpoints import Endpoint, EndpointSet
from .errors import HeadlessClientError, InvalidName, ServiceNotFound
from .events import ServiceEvent
from .resolver import Resolver
from .service import HeadlessService
from .strategies import LeastLoaded, Random, RoundRobin, Sticky, Strategy

__all__ = ["main"]

PROG = "headless-client"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # One line, not argparse's usage block: scripts read stderr.
        raise _UsageError(message)


def parse_port(text: str) -> int | str:
    """``"8080"`` -> 8080 (A/AAAA); ``"http"`` -> ``"http"`` (SRV)."""
    if text.isdigit():
        port = int(text)
        if not 0 <= port <= 65535:
            raise InvalidName(f"port {text!r} is out of range 0..65535")
        return port
    return text


def endpoint_row(ep: Endpoint) -> dict[str, object]:
    """The JSON/table shape of one endpoint."""
    return {
        "ordinal": ep.ordinal,
        "hostname": ep.hostname,
        "address": ep.address,
        "port": ep.port,
        "ttl": ep.ttl,
    }


def format_table(endpoints: EndpointSet) -> str:
    """A readable table: ordinal, hostname, address, port, ttl."""
    header = ("ORDINAL", "HOSTNAME", "ADDRESS", "PORT", "TTL")
    rows = [
        (
            "-" if ep.ordinal is None else str(ep.ordinal),
            ep.hostname or "-",
            ep.address,
            str(ep.port) if ep.port else "-",
            "-" if ep.ttl is None else str(ep.ttl),
        )
        for ep in endpoints
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in [header, *rows]
    ]
    lines.append(f"{len(rows)} endpoint{'s' if len(rows) != 1 else ''}")
    return "\n".join(lines)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("service", help="service name: web, web.prod, web.prod.svc.cluster.local")
    p.add_argument("--port", "-p", default=None, help="a number (A/AAAA) or a named port (SRV)")
    p.add_argument("--protocol", default="tcp", help="SRV protocol (default: tcp)")
    # -n is --namespace in every command (as in kubectl).
    p.add_argument("--namespace", "-n", default=None, help="namespace for one-label names")
    p.add_argument(
        "--nameserver", action="append", default=None, metavar="HOST:PORT",
        help="DNS server to ask (repeatable); default: /etc/resolv.conf",
    )
    p.add_argument("--cluster-domain", default=None, help="cluster DNS zone (default: detected)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per resolution (default: 2)")
    p.add_argument("--json", action="store_true", help="print JSON")


def _service_command(
    sub: argparse._SubParsersAction[_Parser], name: str, func: Callable[[argparse.Namespace, TextIO], int],
    help: str, description: str | None = None,
) -> argparse.ArgumentParser:
    """The subcommand *name* about one service (its name and how to resolve it:
    :func:`_add_common`), run by *func*."""
    p = sub.add_parser(name, help=help, description=description)
    _add_common(p)
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = _Parser(prog=PROG, description="Talk to every pod behind a Kubernetes headless Service.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _service_command(sub, "resolve", cmd_resolve, "resolve a service once and print its endpoints")

    p = _service_command(
        sub, "watch", cmd_watch,
        help="a live table of the pods (on a terminal), or every endpoint added or removed",
        description="On a terminal: a table of the pods redrawn in place (state, picks, failures, "
        "ejections, last change) with the latest events. Otherwise (or with --plain): the current "
        "endpoints, then one timestamped line per endpoint added (+) or removed (-). Until Ctrl-C "
        "or --duration.",
    )
    p.add_argument(
        "--min-refresh",
        type=float,
        default=1.0,
        metavar="S",
        help="shortest seconds between resolutions (default: 1)",
    )
    p.add_argument(
        "--max-refresh",
        type=float,
        default=30.0,
        metavar="S",
        help="longest seconds between resolutions (default: 30)",
    )
    p.add_argument(
        "--empty-grace",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds an empty answer must persist to empty the view (default: 5)",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        metavar="S",
        help="stop after this many seconds (default: run until Ctrl-C)",
    )
    p.add_argument(
        "--plain", action="store_true",
        help="timestamped lines even on a terminal (the default when stdout is not one)",
    )
    p.add_argument(
        "--probe", type=float, default=None, metavar="S",
        help="connect to a picked pod every S seconds (TCP), so picks, failures and ejections "
        "show live health (default: no connections)",
    )

    p = _service_command(
        sub, "pick", cmd_pick,
        help="resolve once and print the endpoints a strategy picks",
        description="Resolve once, then print N picks of the strategy (one per line).",
    )
    p.add_argument(
        "--strategy",
        "-s",
        choices=sorted(STRATEGIES),
        default="round-robin",
        help="pick strategy (default: round-robin)",
    )
    p.add_argument("--key", "-k", default=None, help="routing key (sticky needs one; others ignore it)")
    p.add_argument(
        "--count",
        "-c",
        type=int,
        default=1,
        metavar="N",
        help=f"number of picks, 1..{MAX_PICKS} (default: 1)",
    )

    p = _service_command(
        sub, "doctor", cmd_doctor,
        help="check a service and say what to do about each finding",
        description="Check a headless service: headless or ClusterIP, named port (SRV), per-pod "
        "names, TTL, zero pods or missing, addresses dropped, TCP fallback, answer size, and the "
        "namespace and cluster domain detected. One line per finding. Exit 0 when healthy, 1 on a "
        "finding.",
    )
    p.add_argument(
        "--allowed-network", action="append", default=None, metavar="CIDR",
        help="screen pod addresses as your application does (repeatable)",
    )
    p.add_argument(
        "--resolv-conf", default=None, metavar="PATH",
        help="the resolv.conf to detect namespace and cluster domain from (default: /etc/resolv.conf)",
    )
    p.add_argument(
        "--kafka", default=None, metavar="HOST:PORT",
        help="also check that the Kafka brokers behind this bootstrap advertise per-pod names",
    )
    p.add_argument(
        "--redis", action="store_true",
        help="also check that the service's Redis nodes announce per-pod names (ROLE, CLUSTER NODES)",
    )

    p = sub.add_parser(
        "demo", help="the library at work on a fake cluster on this machine (no Kubernetes needed)"
    )
    p.add_argument("--fast", action="store_true", help="shorter refresh periods")
    p.set_defaults(func=cmd_demo)
    return parser


def cmd_demo(args: argparse.Namespace, out: TextIO) -> int:
    """``demo``: a narrated tour against an in-process fake cluster DNS and loopback pods."""
    # Imported here: the demo's fake cluster is not needed by the other commands.
    from .demo import main as demo_main

    return demo_main(out, fast=args.fast)


def make_resolver(args: argparse.Namespace, **options: Any) -> Resolver:
    """A :class:`Resolver` from the common options."""
    return Resolver(
        args.nameserver,
        timeout=args.timeout,
        cluster_domain=args.cluster_domain,
        namespace=args.namespace,
        **options,
    )


def cmd_doctor(args: argparse.Namespace, out: TextIO) -> int:
    """``doctor``: check a service; exit 0 when healthy, 1 on a finding."""
    from . import doctor  # the doctor's DNS probing is not needed by the other commands
    from .environment import RESOLV_CONF, kubernetes_context

    port = parse_port(args.port) if args.port is not None else None
    resolv_conf = args.resolv_conf or RESOLV_CONF
    options: dict[str, Any] = {}
    if args.allowed_network is not None:
        options["allowed_networks"] = args.allowed_network
    # Namespace and cluster domain as detected there (--nameserver still picks the server).
    options["context"] = kubernetes_context(resolv_conf)
    resolver = make_resolver(args, **options)
    if not resolver.nameservers:
        raise InvalidName(f"no nameserver in {resolv_conf}: pass --nameserver HOST:PORT")
    environment = doctor.detect_environment(resolv_conf)
    facts = doctor.gather(
        args.service, port, resolver=resolver, protocol=args.protocol, namespace=args.namespace,
        environment=environment,
    )
    extra: list[doctor.Finding] = []
    if args.kafka is not None:
        from .doctor_stores import check_kafka

        extra += check_kafka(args.kafka, facts, timeout=args.timeout, resolver=resolver)
    if args.redis:
        from .doctor_stores import check_redis

        extra += check_redis(facts, timeout=args.timeout)
    findings = [*doctor.check_all(facts), *extra]
    if args.json:
        out.write(json.dumps(doctor.as_json(facts, findings)) + "\n")
    else:
        out.write(doctor.format_report(facts, findings) + "\n")
    return 0 if doctor.healthy(findings) else 1


def cmd_resolve(args: argparse.Namespace, out: TextIO) -> int:
    """``resolve``: one resolution, printed."""
    resolver = make_resolver(args)
    port = parse_port(args.port) if args.port is not None else 0
    endpoints = resolver.resolve(args.service, port, protocol=args.protocol, namespace=args.namespace)
    if args.json:
        out.write(json.dumps([endpoint_row(ep) for ep in endpoints]) + "\n")
    else:
        out.write(f"{endpoints.name}\n{format_table(endpoints)}\n")
    return 0


def timestamp() -> str:
    """Now, UTC, ISO 8601 with milliseconds: ``2024-05-01T12:00:00.123Z``."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(option: str, value: float | None, *, zero_ok: bool = False) -> None:
    if value is None:
        return
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero_ok):
        raise InvalidName(f"{option} must be a number of seconds {'>= 0' if zero_ok else '> 0'}: {value!r}")


def cmd_watch(args: argparse.Namespace, out: TextIO) -> int:
    """``watch``: the endpoints now, then one line per endpoint added or removed.

    Runs until Ctrl-C (exit 0) or ``--duration`` seconds. A first resolution that fails
    (timeout, refused) exits 1; NXDOMAIN is an empty view and the watch goes on (in
    Kubernetes it also means "no ready pods yet"). Later failures are logged on stderr
    and the last good set is kept, as :class:`HeadlessService` does.
    """
    _seconds("--min-refresh", args.min_refresh)
    _seconds("--max-refresh", args.max_refresh)
    _seconds("--empty-grace", args.empty_grace, zero_ok=True)
    _seconds("--duration", args.duration)
    _seconds("--probe", args.probe)
    if args.max_refresh < args.min_refresh:
        raise InvalidName(
            f"--max-refresh ({args.max_refresh:g}) must be >= --min-refresh ({args.min_refresh:g})"
        )
    port = parse_port(args.port) if args.port is not None else 0
    resolver = make_resolver(args)
    deadline = None if args.duration is None else time.monotonic() + args.duration
    changes: queue.SimpleQueue[tuple[str, EndpointSet]] = queue.SimpleQueue()
    svc = HeadlessService(
        args.service,
        port,
        resolver=resolver,
        protocol=args.protocol,
        namespace=args.namespace,
        min_refresh=args.min_refresh,
        max_refresh=args.max_refresh,
        empty_grace=args.empty_grace,
    )
    if not args.plain and not args.json and out.isatty():
        return _watch_live(svc, out, deadline, args.probe)
    # Callbacks run on the refresher thread; only this thread writes to *out*.
    svc.subscribe(lambda old, new: changes.put((timestamp(), new)))
    try:
        svc.start()
        error = svc.last_error
        if error is not None and not isinstance(error, ServiceNotFound):
            raise error
        shown = svc.endpoints
        _write_snapshot(out, args.json, timestamp(), svc.name, shown)
        while True:
            wait = 0.2  # short, so a Ctrl-C is seen promptly on every platform
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return 0
                wait = min(wait, left)
            try:
                when, new = changes.get(timeout=wait)
            except queue.Empty:
                continue
            # Against what was printed, not the event's old set: the first resolution's
            # event (empty -> the snapshot above) prints nothing.
            _write_changes(out, args.json, when, svc.name, shown, new)
            shown = new
    except KeyboardInterrupt:
        return 0
    finally:
        svc.close()


def _watch_live(svc: HeadlessService, out: TextIO, deadline: float | None, probe: float | None) -> int:
    """The terminal view: the pod table redrawn in place every half second and on every
    event, until Ctrl-C or the deadline; with *probe*, a connection every *probe* seconds."""
    import shutil

    from .watch_view import PodLog, Screen, render

    events: queue.SimpleQueue[tuple[str, ServiceEvent]] = queue.SimpleQueue()
    svc.subscribe(lambda event: events.put((timestamp(), event)), events=True)
    log = PodLog(time.monotonic())
    screen = Screen(out)
    next_probe = time.monotonic()
    try:
        svc.start()
        error = svc.last_error
        if error is not None and not isinstance(error, ServiceNotFound):
            raise error
        log.seen(list(svc.endpoints), time.monotonic())
        while True:
            now = time.monotonic()
            if probe is not None and now >= next_probe:
                next_probe = now + probe
                _probe(svc, min(probe, 2.0))
            failure = svc.last_error
            shown = None if failure is None or isinstance(failure, ServiceNotFound) else str(failure)
            width = shutil.get_terminal_size((120, 40)).columns
            screen.draw(render(svc.stats(), log, time.monotonic(), timestamp(), error=shown), width)
            wait = 0.5
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return 0
                wait = min(wait, left)
            if probe is not None:
                wait = max(min(wait, next_probe - time.monotonic()), 0.0)
            try:
                when, event = events.get(timeout=wait)
            except queue.Empty:
                continue
            log.record(event, when)
            while True:  # take every event that queued meanwhile before drawing again
                try:
                    when, event = events.get_nowait()
                except queue.Empty:
                    break
                log.record(event, when)
    except KeyboardInterrupt:
        return 0
    finally:
        svc.close()


def _probe(svc: HeadlessService, timeout: float) -> None:
    """One connection to a picked pod; a failure ejects it (the library's own health)."""
    try:
        with svc.connection(timeout=timeout, attempts=1):
            pass
    except (HeadlessClientError, OSError):
        pass


def _write_snapshot(out: TextIO, as_json: bool, when: str, name: str, endpoints: EndpointSet) -> None:
    if as_json:
        rows = [endpoint_row(ep) for ep in endpoints]
        line = {"time": when, "event": "snapshot", "service": name, "endpoints": rows}
        out.write(json.dumps(line) + "\n")
    else:
        out.write(f"{when} {name}\n{format_table(endpoints)}\n")
    out.flush()


def _write_changes(
    out: TextIO, as_json: bool, when: str, name: str, old: EndpointSet, new: EndpointSet
) -> None:
    diff = old.diff(new)
    for sign, event, endpoints in (("-", "removed", diff.removed), ("+", "added", diff.added)):
        for ep in endpoints:
            if as_json:
                line = {"time": when, "event": event, "service": name, "endpoint": endpoint_row(ep)}
                out.write(json.dumps(line) + "\n")
            else:
                out.write(f"{when} {sign} {ep}\n")
    out.flush()


STRATEGIES: dict[str, Callable[[], Strategy]] = {
    "round-robin": RoundRobin,
    "sticky": Sticky,
    "least-loaded": LeastLoaded,
    "random": Random,
}
MAX_PICKS = 1_000_000


def cmd_pick(args: argparse.Namespace, out: TextIO) -> int:
    """``pick``: resolve once, print ``--count`` picks of the strategy, one per line."""
    if not 1 <= args.count <= MAX_PICKS:
        raise InvalidName(f"--count must be in 1..{MAX_PICKS}: {args.count}")
    if args.strategy == "sticky" and args.key is None:
        raise InvalidName("--strategy sticky needs --key")
    port = parse_port(args.port) if args.port is not None else 0
    resolver = make_resolver(args)
    strategy = STRATEGIES[args.strategy]()
    endpoints = resolver.resolve(args.service, port, protocol=args.protocol, namespace=args.namespace)
    lines = []
    for _ in range(args.count):
        ep = strategy.pick(endpoints, args.key)
        lines.append(json.dumps(endpoint_row(ep)) if args.json else str(ep))
    out.write("\n".join(lines) + "\n")
    return 0


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run the CLI; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace, TextIO], int] = args.func
        return func(args, out)
    except _UsageError as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return 2
    except InvalidName as exc:
        err.write(f"{PROG}: error: {exc}\n")
        return 2
    except HeadlessClientError as exc:
        err.write(f"{PROG}: {type(exc).__name__}: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # --help
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
