"""The complete programs of the recipe pages, run against real servers.

A recipe page includes its program from ``examples/`` (``--8<-- "examples/x.py"``, by
pymdownx.snippets), so the site shows exactly the file :func:`run_example` runs: as a
process, with every warning an error, told the cluster DNS's address with ``--nameserver``
(in a pod it reads resolv.conf instead). :func:`as_in_a_pod` makes the library resolve in
this process as in a pod of the cluster (``kubernetes_context()`` answers with a fake
cluster DNS, as tests/test_docs.py does).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import headless_client
import headless_client.resolver
from headless_client.resolver import KubernetesContext
from headless_client.testing import FakeClusterDNS
from headless_client.wire import parse_nameserver

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(script: str, *args: str, env: dict[str, str] | None = None,
                python: tuple[str, ...] = (), timeout: float = 60) -> str:
    """Run ``examples/<script>`` with *args* (and the interpreter's options *python*, after
    ``-W error``), in a bare environment plus *env*; its stdout. It must exit 0 and write
    nothing on stderr (no warning, no traceback of a thread)."""
    proc = subprocess.run(
        [sys.executable, "-W", "error", *python, str(EXAMPLES / script), *args],
        capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), **(env or {})},
    )
    assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert proc.stderr == "", proc.stderr
    return proc.stdout


def as_in_a_pod(monkeypatch: pytest.MonkeyPatch, dns: FakeClusterDNS, namespace: str = "prod") -> None:
    """Resolvers built without nameservers ask *dns*, from a pod of *namespace*."""
    context = KubernetesContext((parse_nameserver(dns.nameserver),), namespace, dns.cluster_domain)

    def pod_context(*args: object, **kwargs: object) -> KubernetesContext:
        return context

    monkeypatch.setattr(headless_client.resolver, "kubernetes_context", pod_context)
    monkeypatch.setattr(headless_client, "kubernetes_context", pod_context)
