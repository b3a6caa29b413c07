"""The ``headless-client`` command: see what a headless service resolves to right now.

Exit codes: 0 success, 1 DNS or connection failure, 2 bad input (one line on stderr,
no traceback), 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from .endpoints import Endpoint, EndpointSet
from .errors import HeadlessClientError, InvalidName
from .resolver import Resolver

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
    p.add_argument("--namespace", "-n", default=None, help="namespace for one-label names")
    p.add_argument(
        "--nameserver", action="append", default=None, metavar="HOST:PORT",
        help="DNS server to ask (repeatable); default: /etc/resolv.conf",
    )
    p.add_argument("--cluster-domain", default=None, help="cluster DNS zone (default: detected)")
    p.add_argument("--timeout", type=float, default=2.0, help="seconds per resolution (default: 2)")
    p.add_argument("--json", action="store_true", help="print JSON")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = _Parser(prog=PROG, description="Talk to every pod behind a Kubernetes headless Service.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    p = sub.add_parser("resolve", help="resolve a service once and print its endpoints")
    _add_common(p)
    p.set_defaults(func=cmd_resolve)
    return parser


def make_resolver(args: argparse.Namespace) -> Resolver:
    """A :class:`Resolver` from the common options."""
    return Resolver(
        args.nameserver,
        timeout=args.timeout,
        cluster_domain=args.cluster_domain,
        namespace=args.namespace,
    )


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
