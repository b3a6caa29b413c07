"""How many pods one call may try, and which: the retry rule every integration shares.

A call pinned to a pod (an ordinal, a hostname, a partition's leader) makes one attempt;
any other makes ``1 + retries``, each on a pod the call has not tried yet. The
integrations (the registries' ``call()``, the HTTP transports, the gRPC channels) only
carry the attempts out and say which errors may be retried.

Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .endpoints import Endpoint
from .errors import HeadlessClientError
from .request import Request

__all__ = ["Attempts"]


class Attempts:
    """The attempts of one call (mutable, owned by that call).

    Args:
        request: what the call asks of the strategy.
        attempts: how many attempts it may make in all (at least 1).

    Attributes:
        request: what the next attempt asks for (the pods that failed excluded).
        left: the attempts not yet made, the current one included.
        last: the latest failure retried; raised when no pod is left to try.
    """

    __slots__ = ("last", "left", "request")

    def __init__(self, request: Request, attempts: int) -> None:
        self.request = request
        self.left = attempts
        self.last: BaseException | None = None

    @classmethod
    def for_call(cls, core: Any, request: Request, retries: int, *, retryable: bool = True) -> Attempts:
        """The attempts of a call to *core*'s service: one when the call is pinned to a pod
        or not *retryable*, else ``1 + retries``."""
        return cls(request, 1 if not retryable or core.pins(request) else 1 + retries)

    def pick(self, core: Any, no_pod: Callable[[HeadlessClientError], BaseException]) -> Endpoint:
        """The pod of the next attempt, picked by *core*'s strategy.

        Raises:
            BaseException: the last failure when every pod left was tried (it says more
                than "no pod"), else ``no_pod(error)``, caused by the library's error.
        """
        try:
            endpoint: Endpoint = core.pick(self.request)
        except HeadlessClientError as exc:
            if self.last is not None:
                raise self.last from None
            raise no_pod(exc) from exc
        return endpoint

    def retry(self, endpoint: Endpoint, error: BaseException, retryable: bool) -> bool:
        """The attempt on *endpoint* failed with *error* (*retryable*: another pod may be
        tried for it): True when the call is to try another pod."""
        self.left -= 1
        if not retryable or self.left <= 0:
            return False
        self.request = self.request.excluding(endpoint.identity)
        self.last = error
        return True

    @property
    def last_failure(self) -> BaseException:
        """The latest failure retried (there is one once :meth:`retry` said True)."""
        assert self.last is not None  # only asked after a retry was granted
        return self.last

    def __repr__(self) -> str:
        return f"<Attempts {self.left} left for {self.request}>"
