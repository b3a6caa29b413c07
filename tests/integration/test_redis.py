"""headless_client.contrib.redis against real redis-server pods
(tests/integration/servers/redis.py) named by the library's fake cluster DNS: keys on their
pods, scaling 3 to 4 pods, a dead pod's keys on the next pod, a pod on a new address, the
asyncio twin, and the recipe page's program."""

from __future__ import annotations

import asyncio
import re
import time
from collections import defaultdict
from collections.abc import Iterator

import pytest

redis = pytest.importorskip("redis", reason="redis is in the test extra")

from headless_client import AsyncHeadlessService, Endpoint, HeadlessService, Sticky  # noqa: E402
from headless_client.contrib.redis import AsyncRedisShards, RedisShards  # noqa: E402
from headless_client.testing import FakeClusterDNS  # noqa: E402
from tests.integration.docs_programs import run_example  # noqa: E402
from tests.integration.servers.redis import RedisPods  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.redis]

FAST = {"min_refresh": 0.1, "max_refresh": 0.5, "empty_grace": 0.0}


@pytest.fixture
def dns(redis_pods: RedisPods) -> Iterator[FakeClusterDNS]:
    """redis-0..2 named in DNS (redis-3 runs, but joins only when a test scales up)."""
    with FakeClusterDNS() as cluster:
        cluster.add_statefulset("redis", "prod", 0, port_name="redis", port=redis_pods.port)
        for ordinal in range(3):
            cluster.add_pod("redis", "prod", ordinal, address=redis_pods.pod(ordinal).address)
        yield cluster


@pytest.fixture
def svc(dns: FakeClusterDNS) -> Iterator[HeadlessService]:
    with HeadlessService("redis.prod", port="redis", resolver=dns.resolver(), strategy=Sticky(), **FAST) as s:
        yield s


def direct(redis_pods: RedisPods, ordinal: int) -> redis.Redis:
    """A client of one pod, by its address: to look at what the shards stored."""
    pod = redis_pods.pod(ordinal)
    return redis.Redis(host=pod.address, port=pod.port, socket_timeout=5)


def stored(redis_pods: RedisPods, ordinals: range) -> dict[int, set[str]]:
    """Every key on each pod."""
    found: dict[int, set[str]] = {}
    for ordinal in ordinals:
        with direct(redis_pods, ordinal) as r:
            found[ordinal] = {key.decode() for key in r.scan_iter(count=1000)}
    return found


def write_all(cache: RedisShards, keys: list[str]) -> None:
    """SET every key on its pod, one pipeline per pod."""
    by_pod: dict[Endpoint, list[str]] = defaultdict(list)
    for key in keys:
        by_pod[cache.endpoint_for(key)].append(key)
    for keys_of_pod in by_pod.values():
        pipe = cache.for_key(keys_of_pod[0]).pipeline(transaction=False)
        for key in keys_of_pod:
            pipe.set(key, key)
        pipe.execute()


def wait_until(condition, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def test_every_key_is_stored_on_its_pod_and_every_process_agrees(svc, dns, redis_pods) -> None:
    """Keys set through the shards are on the pod endpoint_for names; a second service
    (another process) picks the same pods, and reads every key back."""
    keys = [f"user:{n}" for n in range(300)]
    with RedisShards(svc) as cache:
        for key in keys:
            assert cache.set(key, f"value of {key}")
        owners = {key: cache.endpoint_for(key).ordinal for key in keys}
    on_pods = stored(redis_pods, range(3))
    for key, ordinal in owners.items():
        assert [o for o, found in on_pods.items() if key in found] == [ordinal]
    assert all(on_pods.values())  # every pod holds some
    with HeadlessService("redis.prod", port="redis", resolver=dns.resolver(), strategy=Sticky()) as other, \
            RedisShards(other) as again:
        assert {key: again.endpoint_for(key).ordinal for key in keys} == owners
        assert all(again.get(key) == f"value of {key}".encode() for key in keys)


def test_scaling_from_3_to_4_pods_moves_a_quarter_of_the_keys_to_the_new_pod(svc, dns, redis_pods) -> None:
    """10,000 keys stored on 3 pods; redis-3 joins: about 1/4 of the keys now belong to it,
    none moves between old pods, and every key that stayed is still there (a hit)."""
    keys = [f"session:{n}" for n in range(10_000)]
    with RedisShards(svc) as cache:
        write_all(cache, keys)
        before = {key: cache.endpoint_for(key).ordinal for key in keys}

        dns.add_pod("redis", "prod", 3, address=redis_pods.pod(3).address)
        svc.wait_for(4, timeout=15)

        after = {key: cache.endpoint_for(key).ordinal for key in keys}
        moved = [key for key in keys if after[key] != before[key]]
        assert {after[key] for key in moved} == {3}
        share = len(moved) / len(keys)
        assert 0.20 < share < 0.30, share
        hits = {key for key in keys if cache.get(key) is not None}
    assert hits == set(keys) - set(moved)  # the moved keys miss on redis-3, the rest hit
    assert stored(redis_pods, range(3, 4))[3] == set()


def test_a_dead_pods_keys_go_to_the_next_pod(svc, redis_pods) -> None:
    """redis-1 stops: a call for one of its keys fails there and is retried on the next pod
    of the ring, where its keys stay while it is ejected; other keys do not move. With
    retries=0 the error comes back instead. When redis-1 is back, so are its keys."""
    keys = [f"item:{n}" for n in range(200)]
    with RedisShards(svc) as cache:
        owners = {key: cache.endpoint_for(key).ordinal for key in keys}
        of_dead = [key for key in keys if owners[key] == 1]
        others = [key for key in keys if owners[key] != 1]
        assert of_dead and others

        redis_pods.stop(1)
        assert cache.set(of_dead[0], "fallback")  # refused by redis-1, then the next pod
        fallback = cache.endpoint_for(of_dead[0])
        assert fallback.ordinal != 1
        with direct(redis_pods, fallback.ordinal) as r:
            assert r.get(of_dead[0]) == b"fallback"
        assert svc.healthy_endpoints.by_ordinal(1) is None  # ejected
        assert all(cache.endpoint_for(key).ordinal == owners[key] for key in others)
        assert all(cache.endpoint_for(key).ordinal != 1 for key in of_dead)

        redis_pods.restart(1)
        # The ejection ends (2 s); the next call for the key reaches redis-1 again: a miss.
        assert wait_until(lambda: cache.endpoint_for(of_dead[0]).ordinal == 1)
        assert cache.get(of_dead[0]) is None

        redis_pods.stop(1)
        with pytest.raises(redis.ConnectionError):
            cache.call(of_dead[0], lambda r: r.get(of_dead[0]), retries=0)
        assert cache.endpoint_for(of_dead[0]).ordinal != 1


def test_a_pod_on_a_new_address_keeps_its_keys(svc, dns, redis_pods) -> None:
    """redis-2 is rescheduled with a new IP: same name, so the same keys; its client is
    rebuilt for the new address."""
    keys = [f"k:{n}" for n in range(100)]
    with RedisShards(svc) as cache:
        owners = {key: cache.endpoint_for(key).ordinal for key in keys}
        old_client = cache.clients()[svc.endpoint(2)]
        moved = redis_pods.restart(2, new_address=True)
        dns.reip_pod("redis", "prod", 2, address=moved.address)
        assert wait_until(lambda: svc.endpoint(2).address == moved.address)
        assert {key: cache.endpoint_for(key).ordinal for key in keys} == owners
        key = next(k for k in keys if owners[k] == 2)
        assert cache.set(key, "on the new address")
        assert cache.clients()[svc.endpoint(2)] is not old_client
    with direct(redis_pods, 2) as r:
        assert r.get(key) == b"on the new address"


def test_the_async_shards(dns, redis_pods) -> None:
    """AsyncRedisShards: keys on their pods; a dead pod's key served by the next pod."""

    async def main() -> tuple[dict[str, int], int]:
        async with AsyncHeadlessService("redis.prod", port="redis", resolver=dns.async_resolver(),
                                        strategy=Sticky(), **FAST) as asvc, AsyncRedisShards(asvc) as cache:
            owners = {}
            for n in range(60):
                key = f"a:{n}"
                await cache.set(key, key)
                owners[key] = cache.endpoint_for(key).ordinal
                assert await cache.get(key) == key.encode()
            victim = next(k for k, o in owners.items() if o == 0)
            await asyncio.to_thread(redis_pods.stop, 0)
            await cache.set(victim, "elsewhere")
            return owners, cache.endpoint_for(victim).ordinal

    owners, fallback = asyncio.run(main())
    on_pods = stored(redis_pods, range(1, 3))
    assert fallback != 0
    victim = next(k for k, o in owners.items() if o == 0)
    with direct(redis_pods, fallback) as r:
        assert r.get(victim) == b"elsewhere"
    for key, ordinal in owners.items():
        if ordinal != 0:
            assert key in on_pods[ordinal]


def test_the_recipe_program_runs(dns, redis_pods) -> None:
    """examples/redis_sharded_cache.py (docs/redis.md): misses then hits, each user's keys on
    the pod the program names, the cart beside the profile, the registry's counter too."""
    out = run_example("redis_sharded_cache.py", "--nameserver", dns.nameserver)
    assert re.search(r"^pods: redis-0 redis-1 redis-2$", out, re.M), out
    found = re.findall(r"^user (\d+) on redis-(\d): (miss|hit): profile of user \1$", out, re.M)
    assert [(user, outcome) for user, _, outcome in found] == [
        ("7", "miss"), ("42", "miss"), ("7", "hit"), ("42", "hit")], out
    assert re.search(r"^cart: \['book', 'pen'\]$", out, re.M), out
    for user, ordinal, _ in found:  # stored where the program said
        with direct(redis_pods, int(ordinal)) as r:
            assert r.get(f"{{user:{user}}}:profile") == f"profile of user {user}".encode()
            if user == "42":
                assert r.lrange("{user:42}:cart", 0, -1) == [b"book", b"pen"]
    # The ClientRegistry excerpt of docs/registry.md: the counter is on the pod it names.
    (ordinal, visits), = re.findall(r"^visits of user 42 on redis-(\d): (\d+)$", out, re.M)
    with direct(redis_pods, int(ordinal)) as r:
        assert r.get("visits:user-42") == visits.encode()
