"""How a service asks its strategy: pinned pods, adapted 0.1.0 strategies, optional parts.

:class:`Router` wraps the strategy a service was given and looks up, once, which optional
parts of the protocol it implements (see :mod:`headless_client.strategies.base`). The
service core talks only to the router, so no code outside ``strategies/`` needs to know
which strategy it holds.

A strategy written for 0.1.0 (only ``pick(endpoints, key)``) is adapted: a call's key is
passed on, a retry's already-tried pods are left out of the endpoints it sees, and
partition calls are refused (such a strategy cannot know leaders), unless it is a member
of a :class:`~headless_client.strategies.Fallback` behind a partition router: then, as in
0.1.0, it gets a leaderless partition as its key. To move a 0.1.0
strategy to the request-aware protocol, rename ``pick(endpoints, key)`` to
``choose(request, usable, snapshot)`` and read ``request.key`` and ``usable``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from functools import partial
from typing import Any, Final

from ..endpoints import Endpoint, EndpointSet
from ..errors import EndpointNotFound, InvalidArgument
from ..request import Request
from .base import (
    HealthPooling,
    HotPath,
    HotPick,
    KeyPicking,
    LeaderRouting,
    LoadTracking,
    Pinning,
    Preparing,
    RequestStrategy,
    Strategy,
    UsableChoice,
    Watching,
    untried,
)

__all__ = ["Chooser", "Router", "chooser"]

Chooser = Callable[[Request, EndpointSet, EndpointSet], Endpoint]
"""``choose(request, usable, snapshot) -> Endpoint``."""

_KEY_ONLY: Final = Request()


def _check(strategy: object) -> None:
    if isinstance(strategy, type):
        raise InvalidArgument(
            f"strategy must be an instance, not the class {strategy.__name__}: "
            f"pass {strategy.__name__}() instead of {strategy.__name__}"
        )
    if not isinstance(strategy, (RequestStrategy, Strategy)):
        raise InvalidArgument(
            f"strategy must have a choose(request, usable, snapshot) or pick(endpoints, key) "
            f"method, not {type(strategy).__name__}: {strategy!r}"
        )


class _Adapted:
    """A 0.1.0 ``pick(endpoints, key)`` strategy seen through the request-aware protocol."""

    __slots__ = ("_pick",)

    def __init__(self, strategy: Strategy) -> None:
        self._pick = strategy.pick

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        endpoints = untried(request, usable, snapshot) if request.exclude else usable
        # A partition only reaches an adapted strategy as a member of a Fallback that
        # routes partitions (the Router refuses it otherwise): the leader was not found,
        # and 0.1.0's Fallback passed the partition on as the key.
        key = request.partition if request.partition is not None else request.key
        return self._pick(endpoints, key)


def chooser(strategy: object) -> Chooser:
    """The ``choose`` function of *strategy*, adapting a 0.1.0 ``pick``-only one.

    Raises:
        InvalidArgument: *strategy* is a class, or has neither method.
    """
    _check(strategy)
    if isinstance(strategy, RequestStrategy):
        return strategy.choose
    assert isinstance(strategy, Strategy)
    return _Adapted(strategy).choose


class Router:
    """The strategy of one service, with its optional parts looked up once.

    Args:
        strategy: A request-aware strategy or a 0.1.0 ``pick`` strategy (instance).

    Raises:
        InvalidArgument: not a strategy instance.
    """

    __slots__ = (
        "_choose",
        "_finished",
        "_key_picker",
        "_pins",
        "_pools",
        "_prepare",
        "_started",
        "routes_partitions",
        "strategy",
    )

    def __init__(self, strategy: object) -> None:
        self._choose = chooser(strategy)
        self.strategy = strategy
        self.routes_partitions: bool = bool(getattr(strategy, "routes_partitions", False))
        self._prepare = strategy.prepare if isinstance(strategy, Preparing) else None
        if isinstance(strategy, LoadTracking):
            self._started: Callable[[Endpoint], None] | None = strategy.started
            self._finished: Callable[..., None] | None = strategy.finished
        else:
            self._started = self._finished = None
        self._pins = strategy.pins if isinstance(strategy, Pinning) else None
        self._pools = strategy.health_pools if isinstance(strategy, HealthPooling) else None
        self._key_picker = strategy.key_picker if isinstance(strategy, KeyPicking) else None

    @property
    def name(self) -> str:
        """The strategy's class name, for messages."""
        return type(self.strategy).__name__

    # -- picking -------------------------------------------------------------------------

    def choose(self, request: Request, usable: EndpointSet, snapshot: EndpointSet) -> Endpoint:
        """The endpoint for *request*: a pinned pod by identity, else the strategy's choice.

        Raises:
            EndpointNotFound: the pinned ordinal or hostname is not in the snapshot.
            InvalidArgument: a partition call to a strategy that routes none.
            NoEndpointsAvailable: the strategy found nothing.
        """
        if request.ordinal is not None or request.hostname is not None:
            return self.pinned_pod(request, snapshot)
        if request.partition is not None and not self.routes_partitions:
            raise InvalidArgument(
                f"partition={request.partition!r} needs a strategy that routes partitions "
                f"(PartitionLeader, alone or in a Fallback), not {self.name}"
            )
        return self._choose(request, usable, snapshot)

    @staticmethod
    def pinned_pod(request: Request, snapshot: EndpointSet) -> Endpoint:
        """The pod *request* names, ejected or not.

        Raises:
            EndpointNotFound: it is not in *snapshot*.
        """
        if request.hostname is not None:
            found = snapshot.by_hostname(request.hostname)
        else:
            assert request.ordinal is not None
            found = snapshot.by_ordinal(request.ordinal)
        if found is None:
            have = ", ".join(str(o) for o in snapshot.ordinals) or "none"
            raise EndpointNotFound(
                f"{snapshot.name or 'the service'}: no pod with {request.describe()} (ordinals now: {have})"
            )
        return found

    def key_picker(self, usable: EndpointSet, snapshot: EndpointSet) -> Callable[[object], Endpoint]:
        """A callable ``key -> Endpoint`` for calls that carry only a key."""
        if self._key_picker is not None:
            return self._key_picker(usable, snapshot)
        return partial(_pick_by_key, self._choose, usable, snapshot)

    def hot_path(self) -> HotPath:
        """``(function, build, idle)`` for a service's ``pick()``: bound to a
        :class:`~headless_client.strategies.base.HotPick` whose state is
        ``build(usable, snapshot)`` for the current view (*idle* before any), *function*
        gives ``key_picker(usable, snapshot)(key)`` for a call without fields, and hands
        every other call to the HotPick's ``full``.

        The built-in key-only strategies (RoundRobin, Random, LeastLoaded, Sticky without
        bounded loads) bring their own function, which does the pick in the same Python
        frame; a :class:`~headless_client.strategies.base.UsableChoice` is called as
        ``strategy.pick(usable, key)`` (one more call, as in 0.1.0); any other strategy
        through its key picker.
        """
        strategy = self.strategy
        own = getattr(strategy, "_hot_path", None)
        path: HotPath | None = own() if callable(own) else None
        if path is not None:
            return path
        if isinstance(strategy, UsableChoice) and type(strategy).key_picker is UsableChoice.key_picker:
            return _hot_usable, partial(_with_usable, strategy.pick), None
        return _hot_key_picker, self.key_picker, None

    def pins(self, request: Request) -> bool:
        """True when every attempt of *request* must go to the same pod."""
        if request.ordinal is not None or request.hostname is not None or request.partition is not None:
            return True
        return self._pins is not None and self._pins(request)

    # -- optional parts --------------------------------------------------------------------

    def prepare(self, usable: EndpointSet) -> None:
        """Let the strategy build its per-snapshot state."""
        if self._prepare is not None:
            self._prepare(usable)

    def health_pools(self, snapshot: EndpointSet) -> Sequence[Sequence[Endpoint]] | None:
        """The strategy's health groups, or None (the whole snapshot is one)."""
        return None if self._pools is None else self._pools(snapshot)

    def started(self, endpoint: Endpoint) -> None:
        """A call to *endpoint* is now in flight."""
        if self._started is not None:
            self._started(endpoint)

    def finished(self, endpoint: Endpoint, latency: float | None = None, ok: bool = True) -> None:
        """A call to *endpoint* ended."""
        if self._finished is not None:
            self._finished(endpoint, latency=latency, ok=ok)

    @property
    def tracks_load(self) -> bool:
        """True when the strategy counts calls in flight."""
        return self._started is not None

    def not_leader(self, partition: Hashable, hint: int | str | None) -> None:
        """Tell the strategy a pod refused *partition*.

        Raises:
            InvalidArgument: the strategy routes no partitions.
        """
        strategy = self.strategy
        if not self.routes_partitions or not isinstance(strategy, LeaderRouting):
            raise InvalidArgument(
                f"not_leader needs a strategy that routes partitions (PartitionLeader), not {self.name}"
            )
        strategy.not_leader(partition, hint)

    def watch(self, callback: Callable[[], None]) -> Callable[[], None] | None:
        """Watch the strategy's routing inputs, if it has any; returns an unsubscribe."""
        strategy = self.strategy
        return strategy.watch(callback) if isinstance(strategy, Watching) else None


def _with_usable(
    pick: Callable[..., Endpoint], usable: EndpointSet, snapshot: EndpointSet
) -> tuple[Any, ...]:
    return pick, usable


def _hot_usable(hot: HotPick, key: object | None = None, **fields: Any) -> Endpoint:
    """A service's ``pick()`` with a UsableChoice strategy: ``pick(usable, key)``."""
    state = hot.state
    if state is not None and not fields:
        pick, usable = state
        return pick(usable, key)  # type: ignore[no-any-return]
    return hot.full(key, fields)


def _hot_key_picker(hot: HotPick, key: object | None = None, **fields: Any) -> Endpoint:
    """A service's ``pick()`` with any other strategy: its key picker for the view."""
    picker = hot.state
    if picker is not None and not fields:
        return picker(key)  # type: ignore[no-any-return]
    return hot.full(key, fields)


def _pick_by_key(choose: Chooser, usable: EndpointSet, snapshot: EndpointSet, key: object) -> Endpoint:
    return choose(_KEY_ONLY if key is None else Request(key=key), usable, snapshot)
