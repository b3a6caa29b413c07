"""Redis keys sharded over the pods of a headless Service: one redis-py client per pod.

``pip install 'headless-client[redis]'``. For standalone ``redis-server`` pods (a cache,
or a store sharded by the client, as twemproxy or Envoy's Redis proxy do); a Redis Cluster
or Sentinel setup has its own routing, use redis-py's ``RedisCluster``/``Sentinel`` there::

    from headless_client import HeadlessService, Sticky
    from headless_client.contrib.redis import RedisShards

    with HeadlessService("cache.prod", port="redis", strategy=Sticky()) as svc, \\
         RedisShards(svc, socket_timeout=1) as cache:
        cache.set("user:42", "alice")
        cache.get("user:42")                              # the same pod, from any process
        cache.call("user:42", lambda r: r.expire("user:42", 60))

**Which pod.** The service's :class:`~headless_client.Sticky` strategy hashes each key to
a pod identity (its name, ``redis-2.redis.prod...``, not its address) on a consistent-hash
ring: every process agrees, a pod restarted with a new IP keeps its keys, and scaling from
N to N+1 pods moves about 1/(N+1) of the keys, all of them to the new pod (3 to 4 pods:
about a quarter; measured: 24.5 to 25.7 % of 10,000 keys over ten key sets, none to an old
pod). With ``hash_tags=True`` (the default) only the part between the first ``{`` and the
next ``}`` is hashed when there is one, as Redis Cluster does: ``{user:42}:profile`` and
``{user:42}:cart`` live on the same pod, so one pod's pipeline or ``MULTI`` can hold both.

**Clients.** One ``redis.Redis`` per pod, built when the pod appears in the view, dialling
its address (no name lookup), through a
:class:`~headless_client.registry.ClientRegistry`: a pod that leaves the view or moves
gets its client closed after the calls using it end.

**A dead pod: the next pod.** A call whose pod fails (``redis.ConnectionError`` or
``redis.TimeoutError``) reports the failure: the pod is ejected for a while (2 s, growing
with repeated failures, at most 30 s by default; see
:class:`~headless_client.HealthPolicy`), and the call is tried again, once by default
(*retries*), on the **next pod of the ring**, which is where the dead pod's keys live
while it is ejected. Only the dead pod's keys move; the others stay where they are. When
its ejection ends its keys go back to it (if it is still dead, one more refused connect
and another, longer ejection); when DNS drops it, they stay on the next pod. For a cache,
a key moved this way is a miss where it lands and stale data where it comes back from:
keep TTLs short, or use ``retries=0`` to get the error instead of a fallback (then
redis-py's exception reaches you, and the pod is still ejected for the next calls).
redis-py's own retries on a dead pod are off by default here (``retry=`` to change):
they would spend seconds on a pod the ring can route around. A command retried after a
broken connection may have run once already: what redis-py's own retry does too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from typing_extensions import Self

from ._extras import missing_extra

try:
    import redis
    import redis.asyncio
    from redis.backoff import NoBackoff
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - redis is in the test extra
    raise missing_extra("headless_client.contrib.redis", "redis-py", "redis") from exc

from ..endpoints import Endpoint
from ..errors import InvalidArgument, InvalidName
from ..registry import DEFAULT_GRACE, ClientRegistry
from ..strategies.sticky import Sticky

__all__ = ["FAILURES", "AsyncRedisShards", "RedisShards", "shard_key"]

T = TypeVar("T")
R = TypeVar("R")

#: What means "this pod failed" in a call.
FAILURES: tuple[type[BaseException], ...] = (redis.ConnectionError, redis.TimeoutError)


def shard_key(key: str | bytes, hash_tags: bool = True) -> str | bytes:
    """What is hashed for *key*: its hash tag (the text between the first ``{`` and the
    next ``}``, when not empty) with *hash_tags*, else the whole key.

    >>> shard_key("{user:42}:cart"), shard_key("plain"), shard_key("{}empty")
    ('user:42', 'plain', '{}empty')

    Raises:
        InvalidArgument: *key* is neither ``str`` nor ``bytes``.
    """
    if isinstance(key, str):
        if hash_tags:
            start = key.find("{")
            if start >= 0:
                end = key.find("}", start + 1)
                if end > start + 1:
                    return key[start + 1 : end]
        return key
    if isinstance(key, (bytes, bytearray, memoryview)):
        data = bytes(key)
        if hash_tags:
            start = data.find(b"{")
            if start >= 0:
                end = data.find(b"}", start + 1)
                if end > start + 1:
                    return data[start + 1 : end]
        return data
    raise InvalidArgument(f"a Redis key is a str or bytes, not {type(key).__name__}: {key!r}")


def _checked(service: Any, retries: object) -> int:
    if not isinstance(getattr(service, "strategy", None), Sticky):
        raise InvalidArgument(
            f"RedisShards needs a service whose strategy is Sticky (keys must always reach the "
            f"same pod), not {getattr(service, 'strategy', None)!r}"
        )
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise InvalidName(f"retries must be an int >= 0: {retries!r}")
    return retries


def _client_options(options: dict[str, Any]) -> dict[str, Any]:
    given = sorted({"host", "port", "unix_socket_path", "connection_pool"} & set(options))
    if given:
        raise InvalidArgument(f"{given} come from each pod; pass the other redis.Redis settings only")
    options.setdefault("retry", Retry(NoBackoff(), 0))
    options.setdefault("socket_connect_timeout", 2.0)
    return options


class _Shards(Generic[R]):
    """What both shard clients share: their arguments, the key rule and the owner of a key."""

    def _setup(
        self,
        service: Any,
        retries: int,
        hash_tags: bool,
        factory: Callable[[Endpoint], R] | None,
        options: dict[str, Any],
        client_class: Callable[..., R],
    ) -> Callable[[Endpoint], R]:
        """Check and keep the arguments; the factory of the pods' clients (the caller's, or
        *client_class* with *options* at each pod's address)."""
        self.retries = _checked(service, retries)
        self.hash_tags = bool(hash_tags)
        self.service = service
        if factory is not None and options:
            raise InvalidArgument(f"pass redis.Redis settings to your factory, not here: {sorted(options)}")
        if factory is not None:
            return factory
        settings = _client_options(options)

        def made(endpoint: Endpoint) -> R:
            return client_class(host=endpoint.address, port=endpoint.port, **settings)

        return made

    def _key(self, key: str | bytes) -> str | bytes:
        return shard_key(key, self.hash_tags)

    def endpoint_for(self, key: str | bytes) -> Endpoint:
        """The pod that owns *key* now (ejected pods skipped)."""
        endpoint: Endpoint = self.service.pick(self._key(key))
        return endpoint


class RedisShards(_Shards[redis.Redis]):
    """Redis keys sharded over the pods of *service*, one ``redis.Redis`` per pod.

    See the module documentation for the hashing, the clients and what a dead pod does.

    Args:
        service: a :class:`~headless_client.HeadlessService` whose strategy is
            :class:`~headless_client.Sticky` (the caller's: not closed here).
        retries: how many other pods a failed call tries (the next pods of the ring).
        hash_tags: hash only a key's ``{tag}`` when it has one.
        factory: ``factory(endpoint) -> redis.Redis`` instead of the default.
        grace: seconds a departed pod's client may finish its calls.
        **options: ``redis.Redis`` settings for the default factory (``password``,
            ``db``, ``socket_timeout``, ``ssl``...); not ``host`` nor ``port``.

    Raises:
        InvalidArgument: a strategy that is not Sticky, or ``host``/``port`` in *options*.
        InvalidName: a bad *retries*.
    """

    def __init__(
        self,
        service: Any,
        *,
        retries: int = 1,
        hash_tags: bool = True,
        factory: Callable[[Endpoint], redis.Redis] | None = None,
        grace: float = DEFAULT_GRACE,
        **options: Any,
    ) -> None:
        made = self._setup(service, retries, hash_tags, factory, options, redis.Redis)
        self.registry: ClientRegistry[redis.Redis] = ClientRegistry(
            service, made, failures=FAILURES, grace=grace
        )

    def for_key(self, key: str | bytes) -> redis.Redis:
        """The client of the pod that owns *key*, for work of your own on that pod
        (pipelines, scripts): no failure reporting, no retry."""
        lease = self.registry.acquire(key=self._key(key))
        lease.neutral()  # the call is yours: nothing to count or judge here
        return lease.client

    def client(self, key: str | bytes) -> Any:
        """``with shards.client(key) as (endpoint, r):`` one call on *key*'s pod; its
        outcome is reported (a failure ejects the pod), never retried."""
        return self.registry.client(key=self._key(key))

    def call(self, key: str | bytes, fn: Callable[[redis.Redis], T], *, retries: int | None = None) -> T:
        """``fn(client)`` on *key*'s pod; after a failure, on the next pods of the ring
        (*retries*, default the shards').

        Raises:
            redis.ConnectionError / redis.TimeoutError: every pod tried failed.
            NoEndpointsAvailable: the service has no pod.
        """
        tries = self.retries if retries is None else _checked(self.service, retries)
        return self.registry.call(fn, key=self._key(key), retries=tries)

    def get(self, key: str | bytes) -> Any:
        """``GET key`` on its pod."""
        return self.call(key, lambda r: r.get(key))

    def set(self, key: str | bytes, value: Any, **options: Any) -> Any:
        """``SET key value`` on its pod (``ex=``, ``nx=``... as redis-py's ``set``)."""
        return self.call(key, lambda r: r.set(key, value, **options))

    def delete(self, key: str | bytes) -> int:
        """``DEL key`` on its pod; how many keys were removed (0 or 1)."""
        return int(self.call(key, lambda r: r.delete(key)))

    def clients(self) -> dict[Endpoint, redis.Redis]:
        """Every pod's client now, by endpoint (a copy)."""
        return self.registry.clients()

    def close(self) -> None:
        """Close every pod's client (the service stays open); harmless to call twice."""
        self.registry.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<RedisShards {self.service.name} {len(self.registry.clients())} pods>"


class AsyncRedisShards(_Shards[redis.asyncio.Redis]):
    """The asyncio twin of :class:`RedisShards`: one ``redis.asyncio.Redis`` per pod of an
    :class:`~headless_client.AsyncHeadlessService`, same arguments and rules. Use it on
    the service's loop: ``async with AsyncRedisShards(svc) as cache: await cache.get(k)``.
    """

    def __init__(
        self,
        service: Any,
        *,
        retries: int = 1,
        hash_tags: bool = True,
        factory: Callable[[Endpoint], redis.asyncio.Redis] | None = None,
        grace: float = DEFAULT_GRACE,
        **options: Any,
    ) -> None:
        from ..aio.registry import AsyncClientRegistry

        made = self._setup(service, retries, hash_tags, factory, options, redis.asyncio.Redis)
        self.registry: AsyncClientRegistry[redis.asyncio.Redis] = AsyncClientRegistry(
            service, made, close=_aclose, failures=FAILURES, grace=grace
        )

    async def for_key(self, key: str | bytes) -> redis.asyncio.Redis:
        """The client of *key*'s pod, for work of your own (no reporting, no retry)."""
        lease = await self.registry.acquire(key=self._key(key))
        lease.neutral()
        return lease.client

    def client(self, key: str | bytes) -> Any:
        """``async with shards.client(key) as (endpoint, r):`` one reported call."""
        return self.registry.client(key=self._key(key))

    async def call(
        self,
        key: str | bytes,
        fn: Callable[[redis.asyncio.Redis], Awaitable[T]],
        *,
        retries: int | None = None,
    ) -> T:
        """``await fn(client)`` on *key*'s pod, then the next pods after failures."""
        tries = self.retries if retries is None else _checked(self.service, retries)
        return await self.registry.call(fn, key=self._key(key), retries=tries)

    async def get(self, key: str | bytes) -> Any:
        """``GET key`` on its pod."""
        return await self.call(key, lambda r: r.get(key))

    async def set(self, key: str | bytes, value: Any, **options: Any) -> Any:
        """``SET key value`` on its pod."""
        return await self.call(key, lambda r: r.set(key, value, **options))

    async def delete(self, key: str | bytes) -> int:
        """``DEL key`` on its pod."""
        return int(await self.call(key, lambda r: r.delete(key)))

    def clients(self) -> dict[Endpoint, redis.asyncio.Redis]:
        """Every pod's client now, by endpoint (a copy)."""
        return self.registry.clients()

    async def start(self) -> None:
        """Build the clients of the pods in the view (``async with`` does it)."""
        await self.registry.start()

    async def aclose(self) -> None:
        """Close every pod's client; harmless to call twice."""
        await self.registry.aclose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"<AsyncRedisShards {self.service.name} {len(self.registry.clients())} pods>"


async def _aclose(client: redis.asyncio.Redis) -> None:
    await client.aclose()
