#!/usr/bin/env python3
"""Redis with redis-py: a read-through cache of user profiles, sharded over the Redis pods.

Needs the extra: pip install 'headless-client[redis]'. Each key lives on one pod of the
StatefulSet, chosen on a consistent-hash ring of the pods' names (Sticky): every process
agrees, a pod that moves keeps its keys, and a new pod takes about 1/N of them. Run it in
a pod: the pod's resolv.conf names the Redis pods.

    python redis_sharded_cache.py                         # in a pod: resolv.conf
    python redis_sharded_cache.py --nameserver 10.96.0.10:53
"""

from __future__ import annotations

import argparse

import redis

import headless_client as hc
from headless_client.contrib.redis import RedisShards

SERVICE = "redis.prod"                            # pods redis-0, redis-1, redis-2


def load_profile(user_id: int) -> str:
    """The slow source of truth (a database, another service)."""
    return f"profile of user {user_id}"


# --8<-- [start:cache]
def profile(cache: RedisShards, user_id: int) -> tuple[str, str]:
    key = f"{{user:{user_id}}}:profile"          # the {tag} keeps a user's keys on one pod
    cached = cache.get(key)
    if cached is not None:
        return cached.decode(), "hit"
    value = load_profile(user_id)
    cache.set(key, value, ex=300)
    return value, "miss"


def main(nameservers: list[str] | None) -> None:
    resolver = hc.Resolver(nameservers)                # None: the pod's resolv.conf
    with hc.HeadlessService(SERVICE, port="redis", resolver=resolver,
                            strategy=hc.Sticky()) as svc, \
         RedisShards(svc, socket_timeout=1) as cache:
        print("pods:", " ".join(ep.hostname.split(".")[0] for ep in svc.endpoints if ep.hostname))
        for user_id in (7, 42, 7, 42):
            value, outcome = profile(cache, user_id)
            pod = cache.endpoint_for(f"{{user:{user_id}}}").hostname or "?"
            print(f"user {user_id} on {pod.split('.')[0]}: {outcome}: {value}")
# --8<-- [end:cache]
        with cache.client("{user:42}:cart") as (_, r):
            pipe = r.pipeline()                        # the profile's pod: the same tag
            pipe.delete("{user:42}:cart")
            pipe.rpush("{user:42}:cart", "book", "pen")
            pipe.lrange("{user:42}:cart", 0, -1)
            print("cart:", [item.decode() for item in pipe.execute()[-1]])

        # The generic registry does the same for any client: one redis.Redis per pod.
        # --8<-- [start:registry]
        def redis_for(ep: hc.Endpoint) -> redis.Redis:
            return redis.Redis(host=ep.address, port=ep.port, socket_timeout=1)

        with hc.ClientRegistry(svc, redis_for, failures=redis.ConnectionError) as caches, \
                caches.client(key="user-42") as (endpoint, r):    # always the same pod for user-42
            visits = r.incr("visits:user-42")
        # --8<-- [end:registry]
        print(f"visits of user 42 on {(endpoint.hostname or '?').split('.')[0]}: {visits}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nameserver", action="append",
                   help="HOST:PORT of a DNS server that knows the pods")
    main(p.parse_args().nameserver)
