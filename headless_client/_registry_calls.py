# GENERATED from headless_client/aio/_registry_calls.py by scripts/unasync.py: do not edit.
"""The calls of a blocking client registry, written once: ``acquire``, ``client`` and ``call``.

Each picks a pod with the service's strategy, takes a lease on its client from the
registry's own ``lease(endpoint)`` and reports the outcome
(:class:`~headless_client._registry_face.RegistryFace`).

The asyncio source is ``headless_client/aio/_registry_calls.py``; ``scripts/unasync.py``
generates the blocking twin ``headless_client/_registry_calls.py`` from it, and
``tests/test_unasync.py`` fails when they differ.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, TypeVar

from typing_extensions import Unpack

from ._registry_face import CallFunction, RegistryFace, RequestFields, checked_retries, request_of
from .attempts import Attempts
from .errors import HeadlessClientError
from .registry_core import Lease
from .request import Request

if TYPE_CHECKING:
    from .endpoints import Endpoint

__all__ = ["RegistryCalls"]

C = TypeVar("C")
T = TypeVar("T")


class RegistryCalls(RegistryFace[C]):
    """The calls of :class:`~headless_client.ClientRegistry`, over its ``lease()``."""

    if TYPE_CHECKING:

        def lease(self, endpoint: Endpoint) -> Lease[C]: ...

    def acquire(self, request: Request | None = None, **fields: Unpack[RequestFields]) -> Lease[C]:
        """A lease on the client of the pod the strategy picks for the request.

        The call counts in flight until you give its outcome on the lease
        (``lease.success()``, ``lease.failure()`` or ``lease.neutral()``); prefer
        :meth:`client`, which does it for you.

        Args:
            request: the whole request (:class:`~headless_client.Request`), or
            **fields: its fields (:class:`~headless_client._registry_face.RequestFields`):
                ``key``, ``partition``, ``ordinal``, ``hostname``, ``role``, ``any_pod``.

        Raises:
            ServiceClosed: the registry is closed.
            NoEndpointsAvailable / LeaderNotAvailable / EndpointNotFound: nothing to pick.
            Exception: whatever the factory raised.
        """
        wanted = request_of("acquire", request, fields)
        return self.lease(self.service.core.pick(wanted))

    @contextlib.contextmanager
    def client(
        self, request: Request | None = None, **fields: Unpack[RequestFields]
    ) -> Iterator[Lease[C]]:
        """``with registry.client(key=...) as (endpoint, client):`` one call on one pod.

        A clean exit reports a success with the block's latency; an exception that
        ``failures`` recognises reports a failure; any other exception reports nothing
        about the pod. Arguments and errors as :meth:`acquire`.
        """
        wanted = request_of("client", request, fields)
        with self._reported(self.acquire(wanted)) as lease:
            yield lease

    def call(
        self,
        fn: CallFunction[C, T],
        request: Request | None = None,
        *,
        retries: int = 0,
        **fields: Unpack[RequestFields],
    ) -> T:
        """``fn(client)`` on the picked pod; on a failure (see ``failures``), up to
        *retries* more times on other pods. Retry only idempotent work. Calls pinned to
        a pod (``ordinal=``, ``hostname=``, ``partition=``...) are not retried.

        Raises:
            InvalidName: a bad *retries*.
            Exception: the last failure, or what ``fn`` raised otherwise.
        """
        retries = checked_retries(retries)
        wanted = request_of("call", request, fields)
        attempts = self._attempts(wanted, retries)
        lease = self.acquire(wanted)
        while True:  # bounded: every failure retried spends one of the attempts
            try:
                result = fn(lease.client)
            except BaseException as exc:
                if not attempts.retry(lease.endpoint, exc, self._report(lease, exc)):
                    raise
            else:
                lease.success()
                return result
            retried = self._next_lease(attempts)
            if retried is None:
                raise attempts.last_failure
            lease = retried

    def _next_lease(self, attempts: Attempts) -> Lease[C] | None:
        try:
            return self.acquire(attempts.request)
        except HeadlessClientError:
            return None  # every pod was tried: the caller raises the last failure
