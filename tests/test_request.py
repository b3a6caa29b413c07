"""request.py: the request description every strategy receives (validation, helpers)."""

from __future__ import annotations

import dataclasses

import pytest

from headless_client import InvalidArgument, InvalidName, Request
from headless_client._face import PickFields
from headless_client.request import ANY, PICK_FIELDS, READ, WRITE, refuse_unknown, request_for


def test_defaults_describe_any_call() -> None:
    """An empty request pins nothing, excludes nothing and is shared as ANY."""
    request = Request()
    assert request == ANY
    assert (request.key, request.partition, request.ordinal, request.hostname, request.role) == (None,) * 5
    assert request.any_pod is False
    assert request.exclude == frozenset()
    assert not request.pinned_pod
    assert request.describe() == "a pod"


def test_request_is_immutable_and_hashable() -> None:
    """A request is a frozen value, usable as a dict key."""
    request = Request(key="user-1", role=READ)
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.key = "user-2"  # type: ignore[misc]
    assert {request: 1}[Request(key="user-1", role="read")] == 1


@pytest.mark.parametrize(
    ("kwargs", "text"),
    [
        ({"ordinal": 2}, "ordinal 2"),
        ({"hostname": "web-1"}, "pod 'web-1'"),
        ({"partition": ("orders", 3)}, "the leader of partition ('orders', 3)"),
        ({"role": WRITE}, "the primary"),
        ({"role": READ}, "a pod"),
        ({"key": "user-1"}, "a pod"),
    ],
)
def test_describe(kwargs: dict[str, object], text: str) -> None:
    """describe() gives the phrase error messages use for the call's target."""
    assert Request(**kwargs).describe() == text  # type: ignore[arg-type]


def test_pinned_pod() -> None:
    """Only an ordinal or a hostname names the pod; a partition or a role does not."""
    assert Request(ordinal=0).pinned_pod
    assert Request(hostname="web-0").pinned_pod
    assert not Request(partition=0).pinned_pod
    assert not Request(role="write").pinned_pod


def test_excluding_adds_one_identity_and_keeps_the_rest() -> None:
    """excluding() returns a new request with one more identity and leaves the original alone."""
    request = Request(key="k", exclude={"a:1"})
    more = request.excluding("b:2")
    assert more.exclude == frozenset({"a:1", "b:2"})
    assert more.key == "k"
    assert request.exclude == frozenset({"a:1"})


def test_exclude_collections_become_frozensets() -> None:
    """Any collection of identities is accepted and stored as a frozenset."""
    assert Request(exclude=["a:1", "b:2", "a:1"]).exclude == frozenset({"a:1", "b:2"})
    assert Request(exclude=("a:1",)).exclude == frozenset({"a:1"})


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ordinal": -1}, "ordinal must be an int >= 0: -1"),
        ({"ordinal": True}, "ordinal must be an int >= 0: True"),
        ({"ordinal": "2"}, "ordinal must be an int >= 0: '2'"),
        ({"ordinal": 1.0}, "ordinal must be an int >= 0: 1.0"),
        ({"hostname": ""}, "hostname must not be empty: ''"),
        ({"hostname": "..."}, "hostname must not be empty"),
        ({"role": "primary"}, "role must be 'read', 'write' or None: 'primary'"),
        ({"ordinal": 1, "hostname": "web-1"}, "pass at most one of ordinal=, hostname= and partition="),
        ({"ordinal": 1, "partition": 3}, "got ordinal=1, hostname=None, partition=3"),
        ({"hostname": "web-1", "partition": 3}, "at most one"),
        ({"any_pod": True, "ordinal": 1}, "any_pod=True cannot be combined"),
        ({"any_pod": True, "partition": 1}, "any_pod=True cannot be combined"),
    ],
)
def test_bad_values_raise_invalid_name_naming_them(kwargs: dict[str, object], needle: str) -> None:
    """A bad ordinal, hostname or role, or contradicting fields, raise InvalidName naming the values."""
    with pytest.raises(InvalidName, match=needle.replace("(", r"\(").replace(")", r"\)")):
        Request(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"hostname": 3}, "hostname must be a str, not int: 3"),
        ({"any_pod": 1}, "any_pod must be a bool: 1"),
        ({"partition": ["orders", 3]}, r"partition must be hashable, not list: \['orders', 3\]"),
        ({"exclude": "web-0:80"}, "exclude must be a collection of identities, not a str: 'web-0:80'"),
        ({"exclude": b"web-0:80"}, "exclude must be a collection of identities"),
    ],
)
def test_wrong_types_raise_invalid_argument_naming_them(kwargs: dict[str, object], needle: str) -> None:
    """A field of the wrong type raises InvalidArgument (also a TypeError) naming the value."""
    with pytest.raises(InvalidArgument, match=needle) as info:
        Request(**kwargs)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)


def test_keys_of_any_type_are_the_strategys_business() -> None:
    """The key is not validated here: unhashable and None keys are accepted (strategies judge them)."""
    assert Request(key=["unhashable"]).key == ["unhashable"]
    assert Request(key=None) == Request()


def test_pick_fields_are_the_typed_keyword_arguments_of_pick() -> None:
    """PICK_FIELDS, which pick() checks calls against, names exactly PickFields' keys."""
    assert PickFields.__optional_keys__ == PICK_FIELDS


def test_request_for_builds_the_request_the_fields_describe() -> None:
    """A key and fields give the Request with those fields; a whole request is returned as is."""
    assert request_for("k", {"ordinal": 2, "role": "read"}) == Request("k", ordinal=2, role="read")
    whole = Request(partition=3)
    assert request_for(None, {"request": whole}) is whole


def test_request_for_refuses_a_request_with_fields_or_of_the_wrong_type() -> None:
    """request= with a key or other fields, or not a Request, raises naming what was given."""
    with pytest.raises(InvalidName, match="ordinal"):
        request_for(None, {"request": Request(), "ordinal": 1})
    with pytest.raises(InvalidName, match="key='k'"):
        request_for("k", {"request": Request()})
    with pytest.raises(InvalidArgument, match="not dict"):
        request_for(None, {"request": {}})


def test_refuse_unknown_names_the_unknown_and_the_known_arguments() -> None:
    """An unknown keyword argument raises InvalidArgument naming it and the known ones."""
    refuse_unknown("pick", {"ordinal": 1}, PICK_FIELDS)
    with pytest.raises(InvalidArgument, match=r"pick\(\) got unexpected keyword arguments \['ordinals'\]"):
        refuse_unknown("pick", {"ordinals": 1}, PICK_FIELDS)
