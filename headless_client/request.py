"""What one call needs from a pick: the request description every strategy receives.

A :class:`Request` says what the caller knows about a call, not how to route it: a key
(a user id for sticky routing), a partition (the Kafka-style leader is wanted), a pinned
pod (by ordinal or hostname), a role (a database read or write), "any pod will do" (a
metadata call), and the pods already tried in this call. Strategies decide what each
field means to them; pods pinned by ordinal or hostname are found by identity before any
strategy runs. Integrations map their own notions onto it: a gRPC call's metadata, an
HTTP request's method and headers, a database session's read/write intent.

Pure value; no I/O.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from .errors import InvalidArgument, InvalidName

__all__ = ["PICK_FIELDS", "READ", "WRITE", "Request", "Role", "refuse_unknown", "request_for"]

Role = Literal["read", "write"]
READ: Final = "read"
WRITE: Final = "write"


@dataclass(frozen=True, slots=True)
class Request:
    """The description of one call, as strategies see it.

    Args:
        key: Strategy input such as a sticky key (``str``, ``bytes`` or ``int`` for
            :class:`~headless_client.Sticky`), or a write key of
            :class:`~headless_client.PrimaryReplica`.
        partition: The partition whose leader must serve the call
            (:class:`~headless_client.PartitionLeader`); any hashable.
        ordinal: Pin the call to the StatefulSet pod with this ordinal.
        hostname: Pin the call to the pod with this hostname (FQDN or first label).
        role: ``"read"`` or ``"write"`` (:class:`~headless_client.PrimaryReplica` sends
            writes to the primary); ``None``: the strategy's default.
        any_pod: Any pod will do (a metadata call to a partitioned service, a health
            probe): a partition-routing strategy spreads such calls instead of refusing.
        exclude: Pod identities (:attr:`Endpoint.identity`) not to pick, typically the
            ones that already failed in this call. Ignored for pinned calls.

    Raises:
        InvalidName: A bad ordinal, hostname or role, or fields that contradict each other
            (two pins, a pin with a partition, ``any_pod`` with a pin or partition).
        InvalidArgument: A field of the wrong type.
    """

    key: object | None = None
    partition: Hashable | None = None
    ordinal: int | None = None
    hostname: str | None = None
    role: Role | None = None
    any_pod: bool = False
    exclude: frozenset[str] = field(default=frozenset())

    def __post_init__(self) -> None:
        ordinal = self.ordinal
        if ordinal is not None and (isinstance(ordinal, bool) or not isinstance(ordinal, int) or ordinal < 0):
            raise InvalidName(f"ordinal must be an int >= 0: {ordinal!r}")
        hostname = self.hostname
        if hostname is not None:
            if not isinstance(hostname, str):
                raise InvalidArgument(f"hostname must be a str, not {type(hostname).__name__}: {hostname!r}")
            if not hostname.strip("."):
                raise InvalidName(f"hostname must not be empty: {hostname!r}")
        if self.role is not None and self.role not in (READ, WRITE):
            raise InvalidName(f"role must be 'read', 'write' or None: {self.role!r}")
        if not isinstance(self.any_pod, bool):
            raise InvalidArgument(f"any_pod must be a bool: {self.any_pod!r}")
        if self.partition is not None:
            try:
                hash(self.partition)
            except TypeError:
                raise InvalidArgument(
                    f"partition must be hashable, not {type(self.partition).__name__}: {self.partition!r}"
                ) from None
        pins = (ordinal is not None) + (hostname is not None) + (self.partition is not None)
        if pins > 1:
            raise InvalidName(
                f"pass at most one of ordinal=, hostname= and partition= "
                f"(got ordinal={ordinal!r}, hostname={hostname!r}, partition={self.partition!r})"
            )
        if self.any_pod and pins:
            raise InvalidName("any_pod=True cannot be combined with ordinal=, hostname= or partition=")
        if not isinstance(self.exclude, frozenset):
            if isinstance(self.exclude, (str, bytes)):
                raise InvalidArgument(
                    f"exclude must be a collection of identities, not a str: {self.exclude!r}"
                )
            object.__setattr__(self, "exclude", frozenset(self.exclude))

    @property
    def pinned_pod(self) -> bool:
        """True when the call names its pod (by ordinal or hostname)."""
        return self.ordinal is not None or self.hostname is not None

    def excluding(self, identity: str) -> Request:
        """This request with one more pod identity not to pick."""
        return replace(self, exclude=self.exclude | {identity})

    def describe(self) -> str:
        """A short phrase for messages: ``"ordinal 2"``, ``"the leader of partition 3"``..."""
        if self.ordinal is not None:
            return f"ordinal {self.ordinal}"
        if self.hostname is not None:
            return f"pod {self.hostname!r}"
        if self.partition is not None:
            return f"the leader of partition {self.partition!r}"
        if self.role == WRITE:
            return "the primary"
        return "a pod"


#: The request with nothing in it: "any call". Shared, since requests are immutable.
ANY: Final = Request()


_REQUEST_FIELDS = ("partition", "ordinal", "hostname", "role", "any_pod")
#: The keyword arguments of a service's ``pick()`` besides the key.
PICK_FIELDS: Final = frozenset((*_REQUEST_FIELDS, "request"))


def request_for(key: object | None, fields: Mapping[str, Any]) -> Request:
    """The Request that *key* and a call's keyword *fields* describe (or its whole
    ``request``).

    Raises:
        InvalidArgument: ``request`` is not a Request, or a field of the wrong type.
        InvalidName: ``request`` together with a key or fields, or a bad field.
    """
    request = fields.get("request")
    if request is not None:
        if not isinstance(request, Request):
            raise InvalidArgument(f"request must be a Request, not {type(request).__name__}: {request!r}")
        given = [name for name in _REQUEST_FIELDS if fields.get(name) not in (None, False)]
        if key is not None or given:
            raise InvalidName(
                f"pass request= or the request's fields, not both (also given: key={key!r}, {given})"
            )
        return request
    return Request(
        key,
        fields.get("partition"),
        fields.get("ordinal"),
        fields.get("hostname"),
        fields.get("role"),
        bool(fields.get("any_pod", False)),
    )


def refuse_unknown(call: str, fields: Mapping[str, Any], known: frozenset[str]) -> None:
    """Raise for keyword arguments of *call* outside *known*.

    Raises:
        InvalidArgument: naming the unknown ones and the known ones.
    """
    unknown = sorted(set(fields) - known)
    if unknown:
        raise InvalidArgument(f"{call}() got unexpected keyword arguments {unknown}; known: {sorted(known)}")
