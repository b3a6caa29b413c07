"""Where this process runs: the pod's resolv.conf and service-account namespace.

The only module that reads the environment at resolver construction; everything it finds
is handed on as a :class:`KubernetesContext` value.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Final

from .errors import InvalidName
from .names import parse_resolv_conf, validate_label
from .wire import Nameserver, parse_nameserver

__all__ = ["NAMESPACE_FILE", "RESOLV_CONF", "KubernetesContext", "kubernetes_context"]

log = logging.getLogger("headless_client.resolver")

RESOLV_CONF: Final = "/etc/resolv.conf"
NAMESPACE_FILE: Final = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"


class KubernetesContext:
    """Where this process runs: nameservers, namespace and cluster domain, as detected."""

    __slots__ = ("cluster_domain", "nameservers", "namespace")

    def __init__(
        self, nameservers: tuple[Nameserver, ...], namespace: str | None, cluster_domain: str | None
    ) -> None:
        self.nameservers = nameservers
        self.namespace = namespace
        self.cluster_domain = cluster_domain

    def __repr__(self) -> str:
        return (
            f"KubernetesContext(nameservers={[str(n) for n in self.nameservers]}, "
            f"namespace={self.namespace!r}, cluster_domain={self.cluster_domain!r})"
        )


def kubernetes_context(
    resolv_conf: str | os.PathLike[str] = RESOLV_CONF,
    namespace_file: str | os.PathLike[str] = NAMESPACE_FILE,
) -> KubernetesContext:
    """Read the pod's resolv.conf and service-account namespace file (missing files are fine).

    The namespace comes from the service-account file, else from the search list; the
    cluster domain from the search entry that starts with ``svc.``.
    """
    try:
        text = Path(resolv_conf).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    conf = parse_resolv_conf(text)
    servers: list[Nameserver] = []
    for entry in conf.nameservers:
        try:
            servers.append(parse_nameserver(entry.split("%", 1)[0]))
        except InvalidName:
            log.warning(
                "ignoring unusable nameserver %r in %s", entry, resolv_conf,
                extra={"service": None, "pod": None, "address": None, "reason": "resolv_conf"},
            )
    namespace = conf.namespace
    try:
        sa_namespace = Path(namespace_file).read_text(encoding="utf-8").strip()
        if sa_namespace:
            namespace = validate_label(sa_namespace, "namespace")
    except (OSError, InvalidName):
        pass
    # glibc's default when resolv.conf names no server.
    return KubernetesContext(tuple(servers) or (Nameserver("127.0.0.1"),), namespace, conf.cluster_domain)

