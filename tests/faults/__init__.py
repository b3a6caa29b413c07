"""Fault injection for the reliability suite: a DNS proxy that misbehaves on demand.

- :class:`~tests.faults.proxy.FaultProxy` / :class:`~tests.faults.proxy.Faults`: a loopback
  UDP+TCP DNS proxy in front of the BIND9 test ground (drop, delay, SERVFAIL/REFUSED, TC
  without TCP, wrong ID or question, garbage, oversized or malformed records, blackhole).
- :mod:`tests.faults.packets`: the hostile answers, byte by byte (also fuzzing seeds).
- :mod:`tests.faults.figures`: the figures the fault suite measures, printed with ``-s``.
- :mod:`tests.faults.upstream`: a tiny static DNS server, to test the proxy without BIND.
"""

from tests.faults.proxy import REFUSED, SERVFAIL, FaultProxy, Faults, ProxyError

__all__ = ["REFUSED", "SERVFAIL", "FaultProxy", "Faults", "ProxyError"]
