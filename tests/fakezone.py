"""A dictionary zone that answers lookup plans directly, for sans-I/O tests of lookup.py."""

from __future__ import annotations

import random

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

from headless_client.wire import build_queries, match_response


class FakeZone:
    """``records[(name, type)] = [rdata text, ...]``; names absolute, lower case."""

    def __init__(self, records: dict[tuple[str, str], list[str]], *, glue: bool | int = True, ttl: int = 5,
                 shuffle: random.Random | None = None, upper: bool = False) -> None:
        """*glue*: add the SRV targets' addresses (True), none (False), or those of the
        first *glue* targets only (an int: what fits, as CoreDNS cuts a 64 KiB answer)."""
        self.records = records
        self.glue = glue
        self.ttl = ttl
        self.shuffle = shuffle
        self.upper = upper
        self.asked: list[list[tuple[str, int]]] = []

    def exists(self, name: str) -> bool:
        return any(n == name or n.endswith("." + name) for n, _ in self.records)

    def answer(self, qname: str, rdtype: int) -> bytes:
        pending = build_queries([(qname, rdtype)])
        query = dns.message.from_wire(pending.wires[0])
        response = dns.message.make_response(query)
        tname = dns.rdatatype.to_text(rdtype)
        name = qname.lower()
        for _ in range(8):
            if (name, tname) in self.records or (name, "CNAME") not in self.records:
                break
            target = self.records[(name, "CNAME")][0]
            response.answer.append(dns.rrset.from_text(name, self.ttl, "IN", "CNAME", target))
            name = target
        if (name, tname) in self.records:
            datas = list(self.records[(name, tname)])
            if self.shuffle:
                self.shuffle.shuffle(datas)
            owner = name.upper() if self.upper else name
            response.answer.append(dns.rrset.from_text(owner, self.ttl, "IN", tname, *datas))
            if tname == "SRV" and self.glue is not False:
                limit = len(datas) if self.glue is True else self.glue
                for data in datas[:limit]:
                    target = data.split()[-1].lower()
                    for fam in ("A", "AAAA"):
                        if (target, fam) in self.records:
                            response.additional.append(
                                dns.rrset.from_text(target, self.ttl, "IN", fam, *self.records[(target, fam)])
                            )
        elif not self.exists(name) and not response.answer:
            response.set_rcode(dns.rcode.NXDOMAIN)
        return response.to_wire(max_size=65535)

    def run(self, plan):
        """Drive a lookup plan to completion against this zone."""
        try:
            batch = next(plan)
            while True:
                self.asked.append(batch)
                pending = build_queries(batch)
                replies = []
                for i, (qname, rdtype) in enumerate(batch):
                    wire = self.answer(qname, rdtype)
                    wire = pending.wires[i][:2] + wire[2:]
                    matched = match_response(pending, wire)
                    assert matched is not None
                    replies.append(matched[1])
                batch = plan.send(replies)
        except StopIteration as stop:
            return stop.value


def statefulset(name: str, ns: str, addresses: list[str], *, port: int = 8080, start: int = 0,
                service: str | None = None, port_name: str = "http",
                domain: str = "cluster.local") -> dict[tuple[str, str], list[str]]:
    """Records of a StatefulSet behind a headless service, as CoreDNS answers them."""
    svc = service or name
    base = f"{svc}.{ns}.svc.{domain}."
    recs: dict[tuple[str, str], list[str]] = {}
    for i, addr in enumerate(addresses):
        fam = "AAAA" if ":" in addr else "A"
        host = f"{name}-{start + i}.{base}"
        recs.setdefault((base, fam), []).append(addr)
        recs.setdefault((host, fam), []).append(addr)
        recs.setdefault((f"_{port_name}._tcp.{base}", "SRV"), []).append(f"0 33 {port} {host}")
    return recs
