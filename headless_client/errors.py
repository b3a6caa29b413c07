"""The whole exception hierarchy of headless-client.

Every error the library raises on purpose derives from :class:`HeadlessClientError`.
Third-party exceptions (dnspython, tenacity, :mod:`socket`, :mod:`ssl`) are translated
at the boundary and chained with ``raise ... from exc``; they never cross the API.
Messages always name the offending value (service, name, ordinal, partition).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

__all__ = [
    "ConnectAborted",
    "ConnectError",
    "EndpointNotFound",
    "ForeignHost",
    "HeadlessClientError",
    "InvalidArgument",
    "InvalidName",
    "KubeConfigError",
    "KubernetesAPIError",
    "KubernetesForbidden",
    "LeaderNotAvailable",
    "NoEndpointsAvailable",
    "NotGoverningService",
    "NotHeadless",
    "NotLeader",
    "ResolutionError",
    "ServiceClosed",
    "ServiceNotFound",
    "ServiceNotStarted",
    "WaitTimeout",
]


class HeadlessClientError(Exception):
    """Root of every error raised by headless-client."""


class InvalidName(HeadlessClientError, ValueError):
    """A name, ordinal, port, nameserver or other argument is not valid."""


class InvalidArgument(InvalidName, TypeError):
    """An argument of the wrong type (a class where an instance is wanted, a str where a
    resolver is wanted...). Both an :class:`InvalidName` and a :class:`TypeError`, so either
    ``except`` clause catches it."""


class ServiceClosed(HeadlessClientError):
    """The service was closed: it neither resolves, waits nor connects any more.

    Also raised by a call that ``close()`` interrupted (a refresh or connect in progress).
    """


class ResolutionError(HeadlessClientError):
    """DNS resolution failed: timeout, refused, SERVFAIL, malformed answer.

    ``permanent`` is True for errors another attempt cannot fix (a configuration error
    such as :class:`NotHeadless`): ``start()`` raises those instead of retrying them.
    """

    permanent: bool = False


class ServiceNotFound(ResolutionError):
    """The name does not exist (NXDOMAIN).

    In Kubernetes a headless Service with zero ready pods also answers NXDOMAIN,
    so this can mean "deleted" as well as "currently empty".
    """


class NotHeadless(ResolutionError):
    """The Service has a cluster IP: it is a normal (ClusterIP) Service, not a headless one.

    DNS then answers its one virtual IP, never the pods: the library would see a single
    "pod" with no identity. Point the library at a headless Service (``clusterIP: None``),
    or pass ``cluster_ip="warn"`` to the resolver to accept the virtual IP with a warning.
    ``service`` is the Service's FQDN.
    """

    permanent = True

    def __init__(self, message: str, service: str) -> None:
        self.service = service
        super().__init__(message)

    def __reduce__(self) -> tuple[type[NotHeadless], tuple[str, str]]:
        return type(self), (str(self), self.service)


class NotGoverningService(ResolutionError):
    """``resolve_statefulset`` asked a Service that is not the StatefulSet's governing one.

    StatefulSet pods get ``<statefulset>-<ordinal>`` names only under the Service their
    StatefulSet names as ``serviceName``; a second headless Service over the same pods
    has only generated (dashed-address) names. ``service`` is the Service's FQDN and
    ``statefulset`` the StatefulSet asked for.
    """

    permanent = True

    def __init__(self, message: str, service: str, statefulset: str) -> None:
        self.service = service
        self.statefulset = statefulset
        super().__init__(message)

    def __reduce__(self) -> tuple[type[NotGoverningService], tuple[str, str, str]]:
        return type(self), (str(self), self.service, self.statefulset)


class KubeConfigError(InvalidName):
    """The Kubernetes API configuration (in-cluster files and variables, or a kubeconfig)
    is missing, malformed, or uses something the EndpointSlice source does not support
    (an ``exec`` credential plugin, an auth provider): the message names what and where."""


class KubernetesAPIError(ResolutionError):
    """The Kubernetes API failed a request of an EndpointSlice source, or could not be
    reached. ``status`` is the HTTP status (0 when there was no answer) and ``reason`` the
    API's reason (``"Expired"``, ``"ServiceUnavailable"``...)."""

    def __init__(self, message: str, status: int = 0, reason: str = "") -> None:
        self.status = status
        self.reason = reason
        super().__init__(message)

    def __reduce__(self) -> tuple[type[KubernetesAPIError], tuple[str, int, str]]:
        return type(self), (str(self), self.status, self.reason)


class KubernetesForbidden(KubernetesAPIError):
    """The Kubernetes API refused this client: 401 (no valid credentials) or 403 (RBAC does
    not allow ``get``/``list``/``watch`` on ``endpointslices`` in that namespace). The
    message names the namespace, the resource and the Role the service account needs.
    Permanent: ``start()`` raises it instead of retrying."""

    permanent = True


class NoEndpointsAvailable(HeadlessClientError):
    """There is no endpoint to pick from (empty set, or every candidate filtered out)."""


class ServiceNotStarted(NoEndpointsAvailable):
    """``pick()`` (or a connect) on a service that was never started: call ``start()`` or
    use it in a ``with`` / ``async with`` block first."""


class WaitTimeout(NoEndpointsAvailable, TimeoutError):
    """``wait_for`` did not see enough endpoints in time."""


class EndpointNotFound(HeadlessClientError, LookupError):
    """A specific endpoint (by ordinal or hostname) is not in the current set."""


class LeaderNotAvailable(NoEndpointsAvailable):
    """A partition has no known leader, or its leader is not in the current set."""


class ForeignHost(HeadlessClientError):
    """A request for another host than the service reached a client bound to the service.

    HTTP integrations send only the service's own requests to its pods; anything else is
    refused (or passed to a fallback transport you provide), so a pod never receives a
    request, or credentials, meant for another host.
    """


class NotLeader(HeadlessClientError):
    """Raised by callers when a pod answers "not the leader" for a partition.

    ``hint`` is the new leader (ordinal or hostname) when the pod named one.
    """

    def __init__(self, partition: Hashable, hint: int | str | None = None) -> None:
        self.partition = partition
        self.hint = hint
        msg = f"not the leader for partition {partition!r}"
        if hint is not None:
            msg += f" (leader hint: {hint!r})"
        super().__init__(msg)


class ConnectError(HeadlessClientError, OSError):
    """Connecting failed on every attempt.

    ``attempts`` lists ``(endpoint description, error)`` for each try, in order.
    """

    def __init__(self, message: str, attempts: Sequence[tuple[str, BaseException]] = ()) -> None:
        self.attempts = tuple(attempts)
        if self.attempts:
            tried = "; ".join(f"{ep}: {type(err).__name__}: {err}" for ep, err in self.attempts)
            message = f"{message} (tried {tried})"
        super().__init__(message)

    def __str__(self) -> str:
        # OSError.__str__ formats errno/strerror; we carry only a message.
        return str(self.args[0]) if self.args else ""


class ConnectAborted(ConnectError, ServiceClosed):
    """A connect stopped because the service was closed (before it or while it ran).

    Both a :class:`ConnectError` (what 0.1.0 raised) and a :class:`ServiceClosed`.
    ``attempts`` lists the dials made before the close.
    """
