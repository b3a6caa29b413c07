"""headless_client.attempts: how many pods one call may try, and which."""

from __future__ import annotations

import pytest

import headless_client as hc
from headless_client.attempts import Attempts
from headless_client.errors import NoEndpointsAvailable


class Core:
    """A service core stand-in: picks the first endpoint not excluded, pins ordinals."""

    def __init__(self, *endpoints: hc.Endpoint) -> None:
        self.endpoints = endpoints

    def pins(self, request: hc.Request) -> bool:
        return request.ordinal is not None

    def pick(self, request: hc.Request) -> hc.Endpoint:
        for endpoint in self.endpoints:
            if endpoint.identity not in request.exclude:
                return endpoint
        raise NoEndpointsAvailable("nothing left")


A = hc.Endpoint("10.0.0.1", 80)
B = hc.Endpoint("10.0.0.2", 80)


def test_a_call_gets_one_attempt_plus_its_retries():
    """An unpinned call may make 1 + retries attempts."""
    assert Attempts.for_call(Core(A), hc.Request(), 2).left == 3


@pytest.mark.parametrize(
    ("request_", "retryable"), [(hc.Request(ordinal=0), True), (hc.Request(), False)], ids=["pinned", "not-retryable"]
)
def test_a_pinned_or_unretryable_call_gets_one_attempt(request_, retryable):
    """A call pinned to a pod, or one the caller says may not be retried, makes one attempt."""
    assert Attempts.for_call(Core(A), request_, 5, retryable=retryable).left == 1


def test_a_retry_moves_to_a_pod_not_tried():
    """After a retryable failure the next pick excludes the pod that failed."""
    attempts = Attempts.for_call(Core(A, B), hc.Request(), 1)
    first = attempts.pick(Core(A, B), RuntimeError)
    error = OSError("refused")
    assert attempts.retry(first, error, retryable=True)
    assert attempts.pick(Core(A, B), RuntimeError) == B
    assert attempts.last_failure is error


def test_no_retry_when_the_error_is_not_retryable_or_attempts_ran_out():
    """A failure the caller says is not retryable, or the last attempt's, is not retried."""
    attempts = Attempts(hc.Request(), 2)
    assert not attempts.retry(A, OSError(), retryable=False)
    attempts = Attempts(hc.Request(), 1)
    assert not attempts.retry(A, OSError(), retryable=True)


def test_with_no_pod_the_callers_error_is_raised_from_the_librarys():
    """With nothing to pick on the first attempt, the caller's error is raised, caused by the pick's."""
    attempts = Attempts(hc.Request(), 1)
    with pytest.raises(ConnectionError, match="no pod") as caught:
        attempts.pick(Core(), lambda exc: ConnectionError(f"no pod: {exc}"))
    assert isinstance(caught.value.__cause__, NoEndpointsAvailable)


def test_once_every_pod_was_tried_the_last_failure_is_raised():
    """When retries exhausted the pods, the last real failure is raised, not "no pod"."""
    core = Core(A)
    attempts = Attempts.for_call(core, hc.Request(), 3)
    error = TimeoutError("read timed out")
    assert attempts.retry(attempts.pick(core, ConnectionError), error, retryable=True)
    with pytest.raises(TimeoutError) as caught:
        attempts.pick(core, ConnectionError)
    assert caught.value is error
