"""The keyword options of the resolve methods, named once (``**options`` of
:meth:`~headless_client.Resolver.resolve_pod`, ``resolve_pod_all`` and
``resolve_statefulset``); their defaults and checks are the lookup builders'
(:meth:`~headless_client.BaseResolver.pod_lookup`,
:meth:`~headless_client.BaseResolver.statefulset_lookup`)."""

from __future__ import annotations

from typing import TypedDict

__all__ = ["PodOptions", "StatefulSetOptions"]


class PodOptions(TypedDict, total=False):
    """Where a StatefulSet pod's name is: ``namespace`` (default: the resolver's),
    ``service`` (the governing Service, default: the StatefulSet's name) and the ``port``
    its endpoints get (default 0, unknown)."""

    namespace: str | None
    service: str | None
    port: int | None


class StatefulSetOptions(PodOptions, total=False):
    """:class:`PodOptions`, and how to walk the ordinals: from ``start`` (default 0),
    ``replicas`` pods when known (default: learnt from the Service's answer), giving up
    after ``max_gap`` missing ordinals in a row (default 8)."""

    start: int
    replicas: int | None
    max_gap: int
