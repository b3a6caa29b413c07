"""The A/AAAA wire fast path on both owner shapes servers send, next to dnspython's parser.

BIND and dnspython compress each record's owner to a pointer to the question; CoreDNS
writes answers that fit uncompressed, the owner spelled out in full. The fast path reads
both; before, the uncompressed shape always fell back to dnspython. No server needed:
the answers are built in memory. Prints the spread (min / median / max) over --runs.

    python benchmarks/bench_wire.py [--records 1000] [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dns.message

from headless_client.lookup import A, LookupOptions, _addresses
from headless_client.records import addresses_from_answer
from headless_client.wire import build_queries, encode_name, match_response

QNAME = "big.prod.svc.cluster.local."


def answer(count: int, *, compressed: bool) -> tuple[bytes, object]:
    pending = build_queries([(QNAME, 1)])
    name = encode_name(QNAME)
    owner = b"\xc0\x0c" if compressed else name
    header = pending.wires[0][:2] + b"\x84\x00\x00\x01" + count.to_bytes(2, "big") + b"\x00" * 4
    question = pending.wires[0][12 : 12 + len(name) + 4]
    records = b"".join(
        owner + b"\x00\x01\x00\x01\x00\x00\x00\x05\x00\x04" + bytes([10, 1, i // 250, i % 250 + 1])
        for i in range(count)
    )
    return header + question + records, pending


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    options = LookupOptions(cname_domain="cluster.local")
    print(f"{args.records} A records, ms per answer: min / median / max of {args.runs} runs")
    for compressed in (True, False):
        wire, pending = answer(args.records, compressed=compressed)

        def library(wire: bytes = wire, pending: object = pending) -> object:
            matched = match_response(pending, wire)  # type: ignore[arg-type]
            assert matched is not None
            pending.replies[0] = None  # type: ignore[attr-defined]
            return _addresses(matched[1], QNAME.rstrip("."), A, options)

        def dnspython(wire: bytes = wire) -> object:
            return addresses_from_answer(dns.message.from_wire(wire), QNAME, A)

        assert len(library().addresses) == len(dnspython().addresses) == args.records  # type: ignore[attr-defined]
        rows = []
        for fn in (library, dnspython):
            times = [t / 20 * 1e3 for t in timeit.repeat(fn, number=20, repeat=args.runs)]
            rows.append((min(times), statistics.median(times), max(times)))
        shape = "compressed (BIND)" if compressed else "uncompressed (CoreDNS)"
        (lo, med, hi), (dlo, dmed, dhi) = rows
        print(f"{shape:24} library {lo:6.2f} / {med:6.2f} / {hi:6.2f}   dnspython {dlo:6.2f} / {dmed:6.2f} / "
              f"{dhi:6.2f}   ratio {dmed / med:5.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
