"""headless_client.contrib.redis without Redis: hash tags, which pod a key belongs to, and
argument checks (choosing a pod needs no connection). Real pods: tests/integration/test_redis.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

redis = pytest.importorskip("redis")

from headless_client import (  # noqa: E402
    AsyncHeadlessService,
    HeadlessService,
    InvalidArgument,
    InvalidName,
    RoundRobin,
    Sticky,
)
from headless_client.contrib.redis import AsyncRedisShards, RedisShards, shard_key  # noqa: E402
from headless_client.testing import StaticResolver, statefulset_endpoints  # noqa: E402

PODS = statefulset_endpoints("redis", "prod", ["10.2.0.1", "10.2.0.2", "10.2.0.3"], port=6379)


@pytest.fixture
def svc() -> Iterator[HeadlessService]:
    with HeadlessService("redis.prod", port="redis", resolver=StaticResolver({"redis.prod": PODS}),
                         strategy=Sticky()) as s:
        yield s


@pytest.mark.parametrize(
    ("key", "hashed"),
    [
        ("{user:42}:cart", "user:42"),
        ("cart:{user:42}", "user:42"),
        ("{a}{b}", "a"),
        ("{}{b}", "{}{b}"),
        ("{open", "{open"),
        ("plain", "plain"),
        (b"{user:7}:x", b"user:7"),
        (bytearray(b"raw"), b"raw"),
    ],
)
def test_shard_key_hashes_the_tag_like_redis_cluster(key, hashed) -> None:
    """The first {...} with something inside is what is hashed; otherwise the whole key."""
    assert shard_key(key) == hashed


def test_shard_key_without_tags_and_bad_keys() -> None:
    """hash_tags=False hashes the whole key; a key of another type names itself."""
    assert shard_key("{user:42}:cart", hash_tags=False) == "{user:42}:cart"
    with pytest.raises(InvalidArgument, match="42"):
        shard_key(42)  # type: ignore[arg-type]


def test_keys_with_one_tag_share_a_pod_and_the_others_spread(svc) -> None:
    """A user's tagged keys are on one pod; many keys use every pod; the clients dial
    the pods' addresses."""
    with RedisShards(svc) as cache:
        assert len({cache.endpoint_for(f"{{user:42}}:{part}") for part in ("a", "b", "cart", "x")}) == 1
        assert {cache.endpoint_for(f"k{n}").ordinal for n in range(100)} == {0, 1, 2}
        clients = cache.clients()
        assert len(clients) == 3
        for endpoint, client in clients.items():
            kwargs = client.connection_pool.connection_kwargs
            assert (kwargs["host"], kwargs["port"]) == (endpoint.address, 6379)
        assert cache.for_key("k1") is clients[cache.endpoint_for("k1")]
    assert "RedisShards redis.prod" in repr(cache)


def test_arguments_are_checked(svc) -> None:
    """A strategy that does not keep keys on pods (not Sticky, or spilling under bounded loads),
    routing settings, bad retries: clear errors; a user's KeyAffinity strategy is accepted."""
    with HeadlessService("redis.prod", port="redis", resolver=StaticResolver({"redis.prod": PODS}),
                         strategy=RoundRobin()) as rr, pytest.raises(InvalidArgument, match="Sticky"):
        RedisShards(rr)
    with HeadlessService("redis.prod", port="redis", resolver=StaticResolver({"redis.prod": PODS}),
                         strategy=Sticky(bounded_load=1.25)) as spilling, \
            pytest.raises(InvalidArgument, match="bounded_load"):
        RedisShards(spilling)  # a busy pod's keys would spill to another pod's cache

    class OwnRing:  # a user's consistent hashing qualifies by saying so, not by its type
        def pick(self, endpoints, key=None):
            return endpoints[hash(key) % len(endpoints)]

        def keeps_keys(self) -> bool:
            return True

    with HeadlessService("redis.prod", port="redis", resolver=StaticResolver({"redis.prod": PODS}),
                         strategy=OwnRing()) as own:
        RedisShards(own).close()
    with pytest.raises(InvalidArgument, match="host"):
        RedisShards(svc, host="10.0.0.1")
    with pytest.raises(InvalidName, match="-1"):
        RedisShards(svc, retries=-1)
    with pytest.raises(InvalidArgument, match="factory"):
        RedisShards(svc, factory=lambda ep: redis.Redis(), db=1)


def test_async_shards_pick_the_same_pods(svc) -> None:
    """The asyncio twin agrees with the sync shards on every key."""
    owners = {f"k{n}": svc.pick(f"k{n}").ordinal for n in range(50)}

    async def main() -> dict[str, int]:
        resolver = StaticResolver({"redis.prod": PODS}).as_async()
        async with AsyncHeadlessService("redis.prod", port="redis", resolver=resolver, strategy=Sticky()) as asvc, \
                AsyncRedisShards(asvc) as cache:
            assert len(cache.clients()) == 3
            return {key: cache.endpoint_for(key).ordinal for key in owners}

    assert asyncio.run(main()) == owners
