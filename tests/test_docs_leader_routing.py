"""docs/leader-routing.md's own code survives the death of pod 0: its metadata request is
an "any pod" request. The page's blocks run here against kv pods of a fake cluster (the
same toy protocol as tests/test_docs.py's), then kv-0 is killed while DNS still lists it."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from headless_client.testing import FakeClusterDNS, FakePod
from tests.integration.docs_programs import as_in_a_pod

PAGE = Path(__file__).resolve().parent.parent / "docs" / "leader-routing.md"
PARTITIONS = 6


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", page.read_text(encoding="utf-8"), re.S | re.M)


class Controller:
    """The leader table every kv pod answers from; the test moves leadership."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.leaders = {p: p % 3 for p in range(PARTITIONS)}
        self.metadata_from: list[str] = []

    def reply(self, pod: FakePod, request: str) -> str:
        verb, *args = request.split() or [""]
        with self.lock:
            if verb == "METADATA":
                self.metadata_from.append(pod.name)
                return " ".join(f"{p}={o}" for p, o in self.leaders.items())
            if verb == "PUT" and args and args[0].isdigit():
                leader = self.leaders[int(args[0])]
                return f"OK {pod.name} PUT {' '.join(args)}" if pod.ordinal == leader else f"NOT_LEADER {leader}"
        return f"ERROR unknown request {request!r}"


@pytest.fixture
def kv(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeClusterDNS, Controller]]:
    controller = Controller()
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("kv", "prod", 3, port_name="kv", serve="tcp")
        cluster.set_handler(controller.reply)
        as_in_a_pod(monkeypatch, cluster)
        yield cluster, controller


def test_the_recipe_keeps_routing_when_pod_0_dies(kv) -> None:
    """The page's metadata and put() code, with kv-0 killed: the map is read from live pods
    (never a bare ConnectionRefusedError) and kv-0's partitions reach their new leader."""
    cluster, controller = kv
    blocks = python_blocks(PAGE)
    wanted = [b for b in blocks if "def exchange" in b or "def fetch_leaders" in b or "def put" in b]
    assert len(wanted) == 3, "the page's exchange, fetch_leaders and put blocks"
    namespace: dict[str, object] = {"__name__": "leader_routing_page"}
    exec("import headless_client as hc\n", namespace)
    for code in wanted:
        exec(compile(code, str(PAGE), "exec"), namespace)
    svc, leaders, put = namespace["svc"], namespace["leaders"], namespace["put"]
    try:
        assert put(b"customer-42", "before").startswith("OK kv-0 ")  # partition 3: kv-0

        cluster.kill_pod("kv", "prod", 0)  # DNS still lists it: the crash is not noticed yet
        with controller.lock:
            for p, leader in controller.leaders.items():
                if leader == 0:
                    controller.leaders[p] = 1
        controller.metadata_from.clear()

        assert put(b"customer-42", "after").startswith("OK kv-1 ")  # re-read, new leader
        for _ in range(6):  # the rotation comes to every pod, kv-0 included: it is skipped
            assert leaders.refresh_leaders(force=True)
        assert dict(leaders.leaders) == controller.leaders
        assert controller.metadata_from and "kv-0" not in controller.metadata_from
        assert set(controller.metadata_from) == {"kv-1", "kv-2"}
    finally:
        svc.close()
