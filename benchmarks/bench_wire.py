"""Reading DNS answers: fastwire next to dnspython's parser and records.py, 1000 records.

Each case is one DNS response, read by both paths, which give equal results (checked):

    fast  fastwire.read_srv / read_addresses (headless_client/fastwire.py)
    slow  dns.message.from_wire + records.srv_targets + glue_from_message
          (or records.addresses_from_answer)

Cases: 1000 SRV records with 1000 glue A records, compressed as BIND compresses (owners
point at the question, targets and glue owners compressed) and uncompressed as CoreDNS
writes answers; 1000 A records both ways, read alone and through the lookup
(``match_response`` then ``lookup._addresses``, screen included); the A path end to end (A answer and AAAA
NODATA -> records.address_endpoints -> EndpointSet); 1000 answers of one A record (a
target asked after an SRV answer without glue); and, when ``named`` is installed, the
test ground's own BIND answers for the 1000-pod ``big`` service (SRV over TCP: 54 KB,
no glue; A; AAAA NODATA).

Printed per case: CPU milliseconds per read (median and min..max over --runs batches),
the slow/fast ratio, then instruction counts (Ir, ``valgrind --tool=callgrind``: the
difference between a run reading once and one reading twice, hash seed fixed, so it
repeats exactly) for both paths and their ratio. Targets (issue 14): SRV at most 8 ms
per 1000 records, the A path end to end at most 2.5 ms per 1000 addresses.

    python benchmarks/bench_wire.py [--runs 7] [--no-callgrind]
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import dns.message
import dns.name

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from headless_client import fastwire, records
from headless_client.endpoints import EndpointSet
from headless_client.lookup import LookupOptions, _addresses
from headless_client.wire import Pending, build_queries, match_response

DOMAIN = "web.prod.svc.cluster.local"
SRV_NAME = "_http._tcp." + DOMAIN
BIG = "big.prod.svc.cluster.local"
A, AAAA, SRV, OPT, SOA = 1, 28, 33, 41, 6
N = 1000


# --------------------------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------------------------


class _Wire:
    """A response written record by record; names compressed (BIND) or not (CoreDNS)."""

    def __init__(self, qname: str, rdtype: int, *, compress: bool) -> None:
        self.out = io.BytesIO()
        self.out.write(struct.pack("!HHHHHH", 0x1234, 0x8580, 1, 0, 0, 0))
        self.compress: dict[dns.name.Name, int] | None = {} if compress else None
        self.counts = [1, 0, 0, 0]
        dns.name.from_text(qname).to_wire(self.out, self.compress)
        self.out.write(struct.pack("!HH", rdtype, 1))

    def record(
        self, section: int, owner: dns.name.Name | bytes, rdtype: int, ttl: int, rdata: bytes | Callable[[], None]
    ) -> None:
        if isinstance(owner, bytes):
            self.out.write(owner)
        else:
            owner.to_wire(self.out, self.compress)
        at = self.out.tell()
        self.out.write(bytes(10))
        if isinstance(rdata, bytes):
            self.out.write(rdata)
        else:
            rdata()
        end = self.out.tell()
        self.out.seek(at)
        self.out.write(struct.pack("!HHIH", rdtype, 1 if rdtype != OPT else 1232, ttl, end - at - 10))
        self.out.seek(end)
        self.counts[section] += 1

    def wire(self) -> bytes:
        self.record(3, b"\x00", OPT, 0, b"")
        data = bytearray(self.out.getvalue())
        struct.pack_into("!HHHH", data, 4, *self.counts)
        return bytes(data)


def srv_answer(*, compress: bool) -> bytes:
    w = _Wire(SRV_NAME, SRV, compress=compress)
    owner = dns.name.from_text(SRV_NAME)
    targets = [dns.name.from_text(f"web-{i}.{DOMAIN}") for i in range(N)]
    for target in targets:

        def rdata(target: dns.name.Name = target) -> None:
            w.out.write(struct.pack("!HHH", 0, 10, 8080))
            target.to_wire(w.out, w.compress)

        w.record(1, b"\xc0\x0c" if compress else owner, SRV, 30, rdata)
    for i, target in enumerate(targets):
        w.record(3, target, A, 30, bytes((10, 1, i // 256, i % 256)))
    return w.wire()


def a_answer(*, compress: bool) -> bytes:
    w = _Wire(DOMAIN, A, compress=compress)
    owner = dns.name.from_text(DOMAIN)
    for i in range(N):
        w.record(1, b"\xc0\x0c" if compress else owner, A, 30, bytes((10, 1, i // 256, i % 256)))
    return w.wire()


def one_address_answers() -> list[tuple[str, bytes]]:
    """1000 answers of one A record each: what a resolver reads when the SRV answer
    carries no glue (BIND sends none for 1000 targets) and it asks every target."""
    answers = []
    for i in range(N):
        qname = f"web-{i}.{DOMAIN}"
        w = _Wire(qname, A, compress=True)
        w.record(1, b"\xc0\x0c", A, 30, bytes((10, 1, i // 256, i % 256)))
        answers.append((qname, w.wire()))
    return answers


def nodata(qname: str) -> bytes:
    w = _Wire(qname, AAAA, compress=True)
    soa = dns.name.from_text("ns.dns.cluster.local").to_wire() + dns.name.from_text("hostmaster.cluster.local").to_wire()
    w.record(2, dns.name.from_text("cluster.local"), SOA, 30, soa + struct.pack("!IIIII", 1, 2, 3, 4, 5))
    return w.wire()


def bind_answers() -> dict[str, bytes]:
    """The test ground's BIND answers for the 1000-pod service (TCP, loopback only)."""
    try:
        from tests.integration.dnsground import BindServer, find_named
    except ImportError:
        return {}
    if find_named() is None:
        return {}
    found = {}
    with tempfile.TemporaryDirectory() as tmp, BindServer(Path(tmp)) as server:
        for label, qname, rdtype in (("srv", f"_http._tcp.{BIG}.", SRV), ("a", f"{BIG}.", A), ("aaaa", f"{BIG}.", AAAA)):
            query = build_queries([(qname, rdtype)]).wires[0]
            with socket.create_connection((server.host, server.port), timeout=10) as sock:
                sock.sendall(len(query).to_bytes(2, "big") + query)
                reply = b""
                while len(reply) < 2 or len(reply) < 2 + int.from_bytes(reply[:2], "big"):
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
            found[label] = reply[2:]
    return found


Reads = tuple[Callable[[], object], Callable[[], object]]


def _srv_case(wire: bytes, qname: str, domain: str) -> Reads:
    def fast() -> object:
        got = fastwire.read_srv(wire, qname, allowed_domain=domain)
        assert got is not None
        return (list(got.kept), list(got.dropped)), dict(got.glue)

    def slow() -> object:
        message = dns.message.from_wire(wire)
        return records.srv_targets(message, qname, allowed_domain=domain), records.glue_from_message(message)

    return fast, slow


def _a_case(wire: bytes, qname: str) -> Reads:
    return (
        lambda: fastwire.read_addresses(wire, qname, A),
        lambda: records.addresses_from_answer(dns.message.from_wire(wire), qname, A),
    )


def _a_lookup(*, compress: bool) -> Reads:
    """The answer as the lookup reads it: matched to its query, then ``_addresses``."""
    pending = build_queries([(DOMAIN + ".", A)])
    wire = pending.wires[0][:2] + a_answer(compress=compress)[2:]
    options = LookupOptions(cname_domain="cluster.local")

    def fast(pending: Pending = pending) -> object:
        matched = match_response(pending, wire)
        assert matched is not None
        pending.replies[0] = None
        return _addresses(matched[1], DOMAIN, A, options)  # type: ignore[arg-type]

    return fast, lambda: records.addresses_from_answer(dns.message.from_wire(wire), DOMAIN, A)


def _a_path(wire_a: bytes, wire_aaaa: bytes, qname: str) -> Reads:
    """Both families read, then the endpoints built as lookup.plan_addresses builds them."""

    def fast() -> EndpointSet:
        found = [fastwire.read_addresses(wire_a, qname, A), fastwire.read_addresses(wire_aaaa, qname, AAAA)]
        assert None not in found
        return records.address_endpoints(found, 8080, name=qname)  # type: ignore[arg-type]

    def slow() -> EndpointSet:
        found = [
            records.addresses_from_answer(dns.message.from_wire(wire_a), qname, A),
            records.addresses_from_answer(dns.message.from_wire(wire_aaaa), qname, AAAA),
        ]
        return records.address_endpoints(found, 8080, name=qname)

    return fast, slow


def _singles() -> Reads:
    singles = one_address_answers()
    return (
        lambda: [fastwire.read_addresses(wire, qname, A) for qname, wire in singles],
        lambda: [records.addresses_from_answer(dns.message.from_wire(wire), qname, A) for qname, wire in singles],
    )


def cases(bind: dict[str, bytes]) -> dict[str, Callable[[], Reads]]:
    """Name -> a maker of (fast read, slow read), for every case."""
    made: dict[str, Callable[[], Reads]] = {
        "SRV+glue, compressed (BIND-like)": lambda: _srv_case(srv_answer(compress=True), SRV_NAME, DOMAIN),
        "SRV+glue, uncompressed (CoreDNS-like)": lambda: _srv_case(srv_answer(compress=False), SRV_NAME, DOMAIN),
        "A, compressed": lambda: _a_case(a_answer(compress=True), DOMAIN),
        "A, uncompressed": lambda: _a_case(a_answer(compress=False), DOMAIN),
        "A via lookup, compressed": lambda: _a_lookup(compress=True),
        "A via lookup, uncompressed": lambda: _a_lookup(compress=False),
        "A path -> EndpointSet": lambda: _a_path(a_answer(compress=True), nodata(DOMAIN), DOMAIN),
        "A, 1000 answers of one record": _singles,
    }
    if bind:
        made["BIND 9 big: SRV (TCP, no glue)"] = lambda: _srv_case(bind["srv"], f"_http._tcp.{BIG}", BIG)
        made["BIND 9 big: A path -> EndpointSet"] = lambda: _a_path(bind["a"], bind["aaaa"], BIG)
    return made


# --------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------


def cpu_ms(read: Callable[[], object], runs: int) -> list[float]:
    """CPU milliseconds per read, one figure per batch (batches of about 50 ms)."""
    read()
    start = time.process_time()
    read()
    once = max(time.process_time() - start, 1e-5)
    loops = max(1, int(0.05 / once))
    figures = []
    for _ in range(runs):
        start = time.process_time()
        for _ in range(loops):
            read()
        figures.append((time.process_time() - start) / loops * 1e3)
    return figures


def instructions(script: Path, bind_file: Path, case: str, path: str) -> int | None:
    """Ir of one read: callgrind of two reads minus callgrind of one."""
    counts = []
    for reads in (1, 2):
        with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
            done = subprocess.run(
                ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}", sys.executable, str(script),
                 "--one", case, path, str(reads), "--bind-file", str(bind_file)],
                capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "0"}, check=False,
            )  # fmt: skip
        line = next((x for x in done.stderr.splitlines() if "Collected" in x), None)
        if done.returncode or line is None:
            print(f"  callgrind failed for {case} {path}: {done.stderr[-300:]}", file=sys.stderr)
            return None
        counts.append(int(line.split()[-1]))
    return counts[1] - counts[0]


def spread(figures: list[float]) -> str:
    return f"{statistics.median(figures):7.2f} ({min(figures):.2f}..{max(figures):.2f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-callgrind", action="store_true")
    parser.add_argument("--no-bind", action="store_true", help="skip the answers of a real BIND")
    parser.add_argument("--one", nargs=3, metavar=("CASE", "PATH", "READS"), help=argparse.SUPPRESS)
    parser.add_argument("--bind-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:
        bind = pickle.loads(args.bind_file.read_bytes()) if args.bind_file else {}
        case, path, reads = args.one
        read = cases(bind)[case]()[0 if path == "fast" else 1]
        for _ in range(int(reads)):
            read()
        return 0

    bind = {} if args.no_bind else bind_answers()
    made = {name: make() for name, make in cases(bind).items()}
    for name, (fast, slow) in made.items():
        assert fast() == slow(), name
    print(f"{'case (1000 records)':40} {'fastwire ms':>24} {'dnspython ms':>26} {'ratio':>6}")
    rows = {}
    for name, (fast, slow) in made.items():
        fast_ms = cpu_ms(fast, args.runs)
        slow_ms = cpu_ms(slow, max(3, args.runs // 2))
        rows[name] = statistics.median(fast_ms)
        ratio = statistics.median(slow_ms) / statistics.median(fast_ms)
        print(f"{name:40} {spread(fast_ms):>24} {spread(slow_ms):>26} {ratio:6.1f}")
    targets = [(n, 8.0) for n in rows if "SRV" in n] + [(n, 2.5) for n in rows if "A path" in n]
    ok = all(rows[n] <= limit for n, limit in targets)
    print("targets (SRV <= 8 ms, A path <= 2.5 ms):", "met" if ok else "MISSED")

    if not args.no_callgrind and shutil.which("valgrind"):
        with tempfile.NamedTemporaryFile(suffix=".pickle") as bind_file:
            bind_file.write(pickle.dumps(bind))
            bind_file.flush()
            print(f"\n{'case (1000 records), Ir per read':40} {'fastwire':>14} {'dnspython':>14} {'ratio':>6}")
            for name in made:
                fast_ir = instructions(Path(__file__).resolve(), Path(bind_file.name), name, "fast")
                slow_ir = instructions(Path(__file__).resolve(), Path(bind_file.name), name, "slow")
                ratio = f"{slow_ir / fast_ir:6.1f}" if fast_ir and slow_ir else "     -"
                print(f"{name:40} {fast_ir or 0:14,} {slow_ir or 0:14,} {ratio}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
