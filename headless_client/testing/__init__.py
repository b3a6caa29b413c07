"""Fakes for testing code that uses headless-client, without Kubernetes.

Two levels, both with no dependency beyond the library's own (dnspython):

:class:`StaticResolver` (and :class:`AsyncStaticResolver`)
    A resolver that answers from a table you control: no sockets, no DNS, instant. Use it
    for unit tests of code that picks pods and reacts to changes::

        from headless_client import HeadlessService, Sticky
        from headless_client.testing import StaticResolver, statefulset_endpoints

        pods = statefulset_endpoints("web", "prod", ["10.0.0.1", "10.0.0.2"])
        resolver = StaticResolver({"web.prod": pods})
        with HeadlessService("web.prod", port="http", resolver=resolver, strategy=Sticky()) as svc:
            assert svc.pick("user-42").ordinal in (0, 1)
            resolver.add("web.prod", "10.0.0.3:8080")    # seen at the next refresh
            svc.refresh()
            resolver.set_error("SERVFAIL")              # resolutions fail; the view is kept

:class:`FakeClusterDNS`
    A real DNS server on loopback (UDP and TCP, a free port, a daemon thread) serving a fake
    ``cluster.local`` shaped like CoreDNS: A/AAAA per ready pod, per-pod names, SRV with
    glue, TC over UDP when an answer is too big, NXDOMAIN for unknown names and for services
    with zero ready pods. Change it live (:meth:`~FakeClusterDNS.scale`,
    :meth:`~FakeClusterDNS.add_pod`, :meth:`~FakeClusterDNS.remove_pod`,
    :meth:`~FakeClusterDNS.reip_pod`, :meth:`~FakeClusterDNS.set_ready`,
    :meth:`~FakeClusterDNS.delete_service`), break it (:attr:`~FakeClusterDNS.fault`), and
    optionally run the pods too (``serve="tcp"`` or ``"http"``: a server per pod on its own
    ``127.x.y.z`` address that answers with its name), so failover can be tested end to end::

        from headless_client import HeadlessService
        from headless_client.testing import FakeClusterDNS

        with FakeClusterDNS() as cluster:
            cluster.add_statefulset("web", "prod", replicas=3, serve="tcp")
            with HeadlessService("web.prod", port="http", resolver=cluster.resolver(),
                                 min_refresh=0.1, max_refresh=0.5) as svc:
                cluster.scale("web", "prod", 5)
                svc.wait_for(5, timeout=5)                 # the refresher saw the scale-up
                cluster.kill_pod("web", "prod", 1)         # refuses connections, still in DNS
                with svc.connection() as sock:             # retried on another pod if needed
                    print(sock.recv(64))                   # b'web-2\\n'

pytest
    ``headless_client.testing.pytest_plugin`` provides the fixtures ``fake_cluster`` (a
    running :class:`FakeClusterDNS`, closed after the test) and ``fake_resolver`` (a
    :class:`~headless_client.Resolver` asking it). The package registers the plugin with
    pytest (a ``pytest11`` entry point), so the fixtures are there once headless-client is
    installed; nothing to enable.

Served pods bind their own ``127.x.y.z`` addresses: fine on Linux, where all of 127/8 is
local; on macOS add loopback aliases first (``sudo ifconfig lo0 alias 127.42.0.1``) and pass
``address_base="127.42.0.1"``. DNS-only use works everywhere.
"""

from __future__ import annotations

from .clock import FakeClock
from .cluster import FakeClusterDNS, FakePod, PodHandler, PodReply
from .kube_api import FakeKubeAPI
from .model import ClusterModel
from .static import AsyncStaticResolver, EndpointLike, StaticResolver, statefulset_endpoints

__all__ = [
    "AsyncStaticResolver",
    "ClusterModel",
    "EndpointLike",
    "FakeClock",
    "FakeClusterDNS",
    "FakeKubeAPI",
    "FakePod",
    "PodHandler",
    "PodReply",
    "StaticResolver",
    "statefulset_endpoints",
]
