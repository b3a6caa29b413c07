"""The complete programs of the recipe pages, run against real servers.

A recipe page shows a program that needs a server the docs run cannot give in a titled
```` ```py title="...: needs ..." ```` block (tests/test_docs.py shows it without running
it). The integration tests run the very same text: :func:`program` reads the block by the
start of its title, :func:`as_in_a_pod` makes the library resolve as in a pod of the
cluster (``kubernetes_context()`` answers with a fake cluster DNS, as tests/test_docs.py
does), and :func:`run_program` executes it as ``__main__``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import headless_client
import headless_client.resolver
from headless_client.resolver import KubernetesContext
from headless_client.testing import FakeClusterDNS
from headless_client.wire import parse_nameserver

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r'^```py title="(?P<title>[^"]*)"\s*$')


def program(page: str, title_start: str) -> str:
    """The text of the titled ``py`` block of ``docs/<page>`` whose title starts so."""
    lines = (DOCS / page).read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        match = _FENCE.match(line)
        if match and match["title"].startswith(title_start):
            end = lines.index("```", i + 1)
            return "\n".join(lines[i + 1 : end]) + "\n"
    raise LookupError(f"no block titled {title_start!r}... in docs/{page}")


def as_in_a_pod(monkeypatch: pytest.MonkeyPatch, dns: FakeClusterDNS, namespace: str = "prod") -> None:
    """Resolvers built without nameservers ask *dns*, from a pod of *namespace*."""
    context = KubernetesContext((parse_nameserver(dns.nameserver),), namespace, dns.cluster_domain)

    def pod_context(*args: object, **kwargs: object) -> KubernetesContext:
        return context

    monkeypatch.setattr(headless_client.resolver, "kubernetes_context", pod_context)
    monkeypatch.setattr(headless_client, "kubernetes_context", pod_context)


def run_program(code: str, name: str) -> dict[str, object]:
    """Execute *code* as the main module (its ``if __name__ == "__main__"`` runs); its globals."""
    namespace: dict[str, object] = {"__name__": "__main__", "__file__": name}
    exec(compile(code, name, "exec"), namespace)
    return namespace
