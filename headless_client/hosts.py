"""Which host names mean "this service": the spellings an HTTP integration routes to pods.

An HTTP client bound to a headless service must send to the service's pods only the
requests addressed to the service. A request for any other host (an auth server, a
metadata endpoint) must never be answered by a pod, which would otherwise receive that
request's headers and credentials. Pure; no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .errors import HeadlessClientError

__all__ = ["ServiceHosts", "service_hosts"]


@dataclass(frozen=True, slots=True)
class ServiceHosts:
    """The host names of one service, folded to lower case without a trailing dot.

    Attributes:
        fqdn: The service's FQDN.
        names: Every spelling that means the service (``web``, ``web.prod``,
            ``web.prod.svc``, the FQDN...), as the service's resolver qualifies them.
    """

    fqdn: str
    names: frozenset[str]

    def matches(self, host: str | None) -> bool:
        """True when *host* (a URL's host, any case, a trailing dot allowed) is the service."""
        if not host:
            return False
        return host.lower().rstrip(".") in self.names

    def describe(self) -> str:
        """The accepted spellings, for messages."""
        return ", ".join(sorted(self.names, key=len))


def service_hosts(fqdn: str, qualify: Callable[[str], str], extra: Iterable[str] = ()) -> ServiceHosts:
    """The spellings of *fqdn*: its label prefixes that *qualify* maps back to it.

    Args:
        fqdn: The service's FQDN.
        qualify: The resolver's name qualification (``resolver.qualify``).
        extra: More names to accept (an ingress name, an alias).
    """
    full = fqdn.lower().rstrip(".")
    labels = full.split(".")
    names = {full}
    for end in range(1, len(labels)):
        candidate = ".".join(labels[:end])
        try:
            if qualify(candidate).lower().rstrip(".") == full:
                names.add(candidate)
        except HeadlessClientError:
            continue
    names.update(name.lower().rstrip(".") for name in extra)
    return ServiceHosts(fqdn.lower().rstrip("."), frozenset(names))
