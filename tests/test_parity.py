"""The sync and asyncio twins expose the same public methods with the same parameters."""

from __future__ import annotations

import inspect

import pytest

from headless_client import AsyncHeadlessService, AsyncResolver, HeadlessService, Resolver

PAIRS = [(Resolver, AsyncResolver), (HeadlessService, AsyncHeadlessService)]
# Protocol spellings of the same thing: `with` vs `async with`.
TWIN_NAMES = {"__enter__": "__aenter__", "__exit__": "__aexit__"}
# Only the blocking twin has these: a thread-local interrupt for its selectors driver.
SYNC_ONLY = {"interruptible"}


def public(cls: type) -> dict[str, object]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if (not name.startswith("_") or name in TWIN_NAMES or name in TWIN_NAMES.values())
        and name not in SYNC_ONLY
    }


def params(member: object) -> list[tuple[str, object, object]]:
    func = member.fget if isinstance(member, property) else member
    if not callable(func):
        return []
    sig = inspect.signature(func)
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=lambda c: c.__name__)
def test_same_public_names(sync, aio):
    """A public method or property on one twin exists on the other."""
    sync_names = {TWIN_NAMES.get(n, n) for n in public(sync)}
    aio_names = set(public(aio))
    assert sync_names == aio_names


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=lambda c: c.__name__)
def test_same_parameters(sync, aio):
    """Every shared method takes the same parameters, with the same kinds and defaults."""
    aio_members = public(aio)
    for name, member in public(sync).items():
        twin = aio_members[TWIN_NAMES.get(name, name)]
        if name in TWIN_NAMES or name == "__init__":
            continue
        assert params(member) == params(twin), name
    init_s = [p for p in params(sync.__init__) if p[0] != "resolver"]
    init_a = [p for p in params(aio.__init__) if p[0] != "resolver"]
    assert init_s == init_a


@pytest.mark.parametrize(("sync", "aio"), PAIRS, ids=lambda c: c.__name__)
def test_io_methods_are_coroutines_on_the_async_twin(sync, aio):
    """What does I/O is awaited on the async twin; what does not stays plain."""
    plain = {"pick", "endpoint", "subscribe", "report_failure", "report_success", "qualify", "stats",
             # Lookup builders: they make a plan for either driver and do no I/O.
             "service_lookup", "host_lookup", "pod_lookup", "statefulset_lookup"}
    for name, member in public(aio).items():
        if name.startswith("_") or isinstance(member, property) or not callable(member):
            continue
        if name in plain:
            assert not inspect.iscoroutinefunction(member), name
        elif name == "connection":
            # An async context manager: the wrapped function is an async generator.
            assert inspect.isasyncgenfunction(member.__wrapped__), name
        else:
            assert inspect.iscoroutinefunction(member), name
