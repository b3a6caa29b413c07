"""One batch of DNS questions carried to the nameservers: every transport decision, no I/O.

An :class:`Exchange` is a state machine in the sans-I/O style (h11, dnspython's
``_Resolution``): a driver feeds it what happened (a datagram arrived, a stream opened,
sent data, closed or failed, a timer ran out) with the current time, and carries out the
actions it asks for (open a UDP or TCP channel to a server, send bytes on it, close it,
call back at :meth:`Exchange.next_timer`). The selectors driver
(:mod:`headless_client.transport`) and the asyncio driver
(:mod:`headless_client.aio.transport`) only move bytes, so the policy below exists once:

- Small batches (at most :attr:`ExchangePolicy.udp_batch` questions) go out as datagrams,
  retransmitted on a schedule; bigger ones start on TCP, pipelined, and so does a
  :class:`~headless_client.lookup.StreamBatch` (a plan knows its answers are large).
- A truncated UDP answer is asked again over TCP; so are questions still unanswered after
  :attr:`ExchangePolicy.udp_share` of a server's budget (on a lossy path TCP's own
  retransmission does better than more datagrams).
- At most :attr:`ExchangePolicy.tcp_max_questions` questions per TCP connection (CoreDNS
  before 1.10.1 and its ``maxtcpqueries`` option close a connection after N); what a
  closed or reset connection left unanswered is sent again on a new one. Connections that
  close without answering anything are retried :attr:`ExchangePolicy.tcp_retries` times.
- A server whose TCP is refused (or does not accept in time, or keeps closing) is asked
  over UDP instead, at most ``udp_batch`` questions in flight at a time.
- Servers are tried in order; what is left of the call's budget is shared among the
  servers not yet tried, so one black-holed server cannot use it all up. A question a
  server answers SERVFAIL, REFUSED (or any rcode but NOERROR and NXDOMAIN) is asked of the
  next server; the others keep their answers.
- A question nobody answered usably gets a :class:`~headless_client.wire.Failure` in
  place of its reply, and an answer truncated over TCP (it does not fit in 64 KiB) is a
  failure marked ``truncated``: a partial answer is never passed on as a whole one.

Pure: no socket, clock or file; time is passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeAlias, TypeVar

from .errors import InvalidName, ResolutionError
from .lookup import Plan, StreamBatch
from .wire import (
    Answer,
    Failure,
    Nameserver,
    Reply,
    build_queries,
    match_response,
    server_failure,
    stream_frame,
    take_frames,
)

__all__ = [
    "MAX_TIMEOUT",
    "Action",
    "Close",
    "Exchange",
    "ExchangeConfig",
    "ExchangePolicy",
    "Lookup",
    "Open",
    "Send",
]

T = TypeVar("T")

#: The longest call budget accepted, in seconds: far above any sane DNS timeout, and far
#: below what a selector, a condition wait or a float clock could overflow on.
MAX_TIMEOUT = 86_400.0
#: Bounds of the policy's time settings, in seconds.
_MAX_INTERVAL = 3600.0
_MIN_INTERVAL = 0.001
#: The shortest first retransmission, whatever the budget.
_MIN_RETRANSMIT = 0.01


def _int_setting(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidName(f"{name} must be an int in {low}..{high}: {value!r}")
    return value


def _float_setting(name: str, value: object, low: float, high: float, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidName(f"{name} must be a number: {value!r}")
    number = float(value)
    above = number > low if low_open else number >= low
    if not math.isfinite(number) or not above or number > high:
        bracket = "(" if low_open else "["
        raise InvalidName(f"{name} must be a finite number in {bracket}{low:g}, {high:g}]: {value!r}")
    return number


@dataclass(frozen=True, slots=True)
class ExchangePolicy:
    """How one batch of questions is carried to the nameservers (see the module docs).

    Attributes:
        udp_batch: batches of at most this many questions go out as datagrams; bigger
            ones start on TCP. Also the most datagrams in flight when TCP is refused.
        udp_share: share of a server's budget after which questions still unanswered
            over UDP are asked over TCP (1.0: never).
        retransmit_first: seconds before the first UDP retransmission (cluster DNS
            answers in about a millisecond; at most a quarter of the server's budget).
        retransmit_max: the interval doubles up to this many seconds.
        tcp_max_questions: questions sent on one TCP connection before a new one is
            opened (CoreDNS before 1.10.1 closes after 128; newer ones have a
            ``maxtcpqueries`` option).
        tcp_connections: TCP connections open at once to one server.
        tcp_retries: connections to one server that may close (or reset) without
            answering anything before its TCP counts as unavailable and UDP is used.

    Raises:
        InvalidName: a setting is of the wrong type, not finite or out of range; the
            message names it.
    """

    udp_batch: int = 16
    udp_share: float = 0.5
    retransmit_first: float = 0.1
    retransmit_max: float = 0.25
    tcp_max_questions: int = 128
    tcp_connections: int = 4
    tcp_retries: int = 2

    def __post_init__(self) -> None:
        _int_setting("udp_batch", self.udp_batch, 1, 4096)
        _float_setting("udp_share", self.udp_share, 0.0, 1.0, low_open=True)
        first = _float_setting("retransmit_first", self.retransmit_first, _MIN_INTERVAL, _MAX_INTERVAL)
        top = _float_setting("retransmit_max", self.retransmit_max, _MIN_INTERVAL, _MAX_INTERVAL)
        if top < first:
            raise InvalidName(
                f"retransmit_max must be at least retransmit_first ({first:g}): {self.retransmit_max!r}"
            )
        _int_setting("tcp_max_questions", self.tcp_max_questions, 1, 65535)
        _int_setting("tcp_connections", self.tcp_connections, 1, 64)
        _int_setting("tcp_retries", self.tcp_retries, 0, 100)


@dataclass(frozen=True, slots=True)
class ExchangeConfig:
    """Where and how long: the nameservers, the call's budget and the policy.

    Attributes:
        nameservers: asked in order.
        timeout: the most one lookup may take, across all its batches and servers.
        policy: see :class:`ExchangePolicy`.

    Raises:
        InvalidName: no nameserver, or a timeout that is not a finite positive number of
            seconds up to :data:`MAX_TIMEOUT`.
    """

    nameservers: tuple[Nameserver, ...]
    timeout: float
    policy: ExchangePolicy = field(default_factory=ExchangePolicy)

    def __post_init__(self) -> None:
        servers = tuple(self.nameservers) if isinstance(self.nameservers, Sequence) else ()
        if not servers or not all(isinstance(s, Nameserver) for s in servers):
            raise InvalidName(f"nameservers must be a non-empty sequence of Nameserver: {self.nameservers!r}")
        object.__setattr__(self, "nameservers", servers)
        timeout = _float_setting("timeout", self.timeout, 0.0, MAX_TIMEOUT, low_open=True)
        object.__setattr__(self, "timeout", timeout)
        if not isinstance(self.policy, ExchangePolicy):
            raise InvalidName(f"policy must be an ExchangePolicy: {self.policy!r}")


@dataclass(frozen=True, slots=True)
class Lookup(Generic[T]):
    """A lookup plan with where to send its questions: what a driver runs.

    Single use: the plan is a generator, consumed by the one driver that runs it.

    Attributes:
        plan: yields batches of questions, is sent their answers, returns the result.
        config: nameservers, budget and policy.
        name: what is looked up (the service or pod name), for messages.
    """

    plan: Plan[T]
    config: ExchangeConfig
    name: str = ""


# -- actions --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Open:
    """Open channel *channel* to *server*: a connected UDP socket, or a TCP connection.

    The driver reports a TCP connection with :meth:`Exchange.stream_opened` and a failure
    to open either with :meth:`Exchange.channel_failed`.
    """

    channel: int
    server: Nameserver
    stream: bool


@dataclass(frozen=True, slots=True)
class Send:
    """Send *data* on *channel*: one datagram, or bytes appended to the TCP stream."""

    channel: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Close:
    """Close *channel*; nothing more is sent or taken on it."""

    channel: int


Action: TypeAlias = "Open | Send | Close"

# Where a question of the current attempt waits (values of _Attempt.where); a TCP
# connection's channel number (>= 0) means "sent on that connection".
_UDP_QUEUED = -1
_UDP_SENT = -2
_TCP_QUEUED = -3


class _Connection:
    """One TCP connection of an attempt and the questions sent (or to send) on it."""

    __slots__ = ("answered", "channel", "connect_by", "inbox", "opened", "waiting")

    def __init__(self, channel: int, questions: list[int], connect_by: float) -> None:
        self.channel = channel
        self.waiting = dict.fromkeys(questions)
        self.connect_by = connect_by
        self.inbox = bytearray()
        self.opened = False
        self.answered = 0


class _Attempt:
    """The questions asked of one server, within its share of the budget."""

    __slots__ = (
        "conns", "end", "failed", "interval", "next_send", "no_progress", "server", "start",
        "tcp_broken", "tcp_queue", "to_tcp_at", "udp", "udp_broken", "udp_out", "udp_queue", "where",
    )  # fmt: skip

    def __init__(self, server: Nameserver, start: float, end: float, policy: ExchangePolicy) -> None:
        self.server = server
        self.start = start
        self.end = end
        self.to_tcp_at = start + (end - start) * policy.udp_share
        first = policy.retransmit_first
        self.interval = max(min(first, (end - start) / 4), min(first, _MIN_RETRANSMIT))
        self.next_send: float | None = None
        self.udp: int | None = None
        self.udp_broken: str | None = None
        self.udp_queue: dict[int, None] = {}
        self.udp_out: dict[int, None] = {}
        self.tcp_queue: dict[int, None] = {}
        self.tcp_broken: str | None = None
        self.conns: dict[int, _Connection] = {}
        self.no_progress = 0
        self.where: dict[int, int] = {}
        self.failed: dict[int, tuple[str, bool]] = {}


class Exchange:
    """Carry one batch of questions to the nameservers within a deadline.

    Args:
        batch: ``[(absolute name, rdtype), ...]``.
        config: nameservers, budget and policy.
        now: the current time (any monotonic clock; the driver keeps using the same one).
        deadline: when to give up; default ``now + config.timeout``. A lookup of several
            batches passes one deadline to each of its exchanges.

    Raises:
        InvalidName: a name cannot be put on the wire.
        ResolutionError: more questions than the 16-bit ID space.
    """

    def __init__(
        self,
        batch: Sequence[tuple[str, int]],
        config: ExchangeConfig,
        *,
        now: float,
        deadline: float | None = None,
    ) -> None:
        self.config = config
        self.policy = config.policy
        self._pending = build_queries(batch)
        self._stream = isinstance(batch, StreamBatch)
        count = len(batch)
        self._answers: list[Answer | None] = [None] * count
        self._reasons: list[list[str]] = [[] for _ in range(count)]
        self._truncated: set[int] = set()
        self._deadline = now + config.timeout if deadline is None else deadline
        self._tried = 0
        self._next_channel = 0
        self._actions: list[Action] = []
        self._attempt: _Attempt | None = None
        self.done = False
        """True once every question has a reply or a failure (see :meth:`answers`)."""
        self._begin(list(range(count)), now)

    # -- what the driver asks ------------------------------------------------------------

    def take_actions(self) -> list[Action]:
        """The actions to carry out now, in order (each returned once)."""
        actions, self._actions = self._actions, []
        return actions

    def next_timer(self) -> float | None:
        """When to call :meth:`timer` at the latest; ``None`` once done."""
        att = self._attempt
        if self.done or att is None:
            return None
        at = min(att.end, self._deadline)
        if att.udp_out:
            if att.next_send is not None:
                at = min(at, att.next_send)
            if att.tcp_broken is None:
                at = min(at, att.to_tcp_at)
        for conn in att.conns.values():
            if not conn.opened:
                at = min(at, conn.connect_by)
        return at

    def answers(self) -> list[Answer]:
        """One :class:`~headless_client.wire.Reply` or
        :class:`~headless_client.wire.Failure` per question, in batch order.

        Raises:
            RuntimeError: the exchange is not done yet (a driver bug).
        """
        answers = [a for a in self._answers if a is not None]
        if not self.done or len(answers) != len(self._answers):
            raise RuntimeError("the exchange is still running")
        return answers

    @property
    def server(self) -> Nameserver | None:
        """The server being asked now (for messages)."""
        return None if self._attempt is None else self._attempt.server

    # -- events ----------------------------------------------------------------------------

    def datagram_received(self, channel: int, data: bytes, now: float) -> None:
        """A datagram arrived on UDP channel *channel*."""
        att = self._attempt
        if att is None or channel != att.udp:
            return
        self._take(att, data, now, stream=False)
        self._tidy(att, now)

    def stream_opened(self, channel: int, now: float) -> None:
        """TCP channel *channel* is connected: its questions go out, pipelined."""
        att = self._attempt
        conn = None if att is None else att.conns.get(channel)
        if att is None or conn is None:
            self._actions.append(Close(channel))
            return
        conn.opened = True
        wires = self._pending.wires
        self._actions.append(Send(channel, b"".join(stream_frame(wires[i]) for i in conn.waiting)))

    def stream_received(self, channel: int, data: bytes, now: float) -> None:
        """Bytes arrived on TCP channel *channel*."""
        att = self._attempt
        conn = None if att is None else att.conns.get(channel)
        if att is None or conn is None:
            return
        conn.inbox += data
        for frame in take_frames(conn.inbox):
            self._take(att, frame, now, stream=True, conn=conn)
        self._tidy(att, now)

    def stream_closed(self, channel: int, now: float) -> None:
        """The server closed TCP channel *channel* (end of stream)."""
        self._lost(channel, "closed the TCP connection", now)

    def channel_failed(self, channel: int, error: str, now: float) -> None:
        """Channel *channel* could not be opened, or failed (refused, reset, unreachable).

        *error* says what happened (``"Connection refused"``), for messages.
        """
        self._lost(channel, error, now)

    def timer(self, now: float) -> None:
        """Time passed: retransmit, move to TCP, give up on a server or the whole batch.

        Harmless to call early: only what is due at *now* happens.
        """
        att = self._attempt
        if self.done or att is None:
            return
        if now >= att.end or now >= self._deadline:
            self._end_attempt(att, now)
            return
        if att.udp_out and att.tcp_broken is None and now >= att.to_tcp_at:
            # Lossy path: TCP's own retransmission does better than more datagrams.
            for i in list(att.udp_out):
                self._move(att, i, _TCP_QUEUED)
        elif att.udp_out and att.next_send is not None and now >= att.next_send:
            self._send_datagrams(att, list(att.udp_out))
            att.interval = min(att.interval * 2, max(self.policy.retransmit_max, att.interval))
            att.next_send = now + att.interval
        for conn in list(att.conns.values()):
            if not conn.opened and now >= conn.connect_by:
                self._lost(conn.channel, "did not accept a TCP connection in time", now)
                if self._attempt is not att:
                    return
        self._tidy(att, now)

    # -- inside ------------------------------------------------------------------------------

    def _channel(self) -> int:
        self._next_channel += 1
        return self._next_channel

    def _begin(self, indexes: list[int], now: float) -> None:
        """Ask *indexes* of the next server, or settle them if none (or no time) is left."""
        servers = self.config.nameservers
        if not indexes:
            self._finish()
            return
        if self._tried >= len(servers) or now >= self._deadline:
            for i in indexes:
                reasons = self._reasons[i] or ["no time left"]
                qname, rdtype = self._pending.questions[i]
                self._answers[i] = Failure(
                    qname, rdtype, "; ".join(dict.fromkeys(reasons)), self.config.timeout,
                    truncated=i in self._truncated,
                )
            self._finish()
            return
        server = servers[self._tried]
        left = len(servers) - self._tried
        self._tried += 1
        att = _Attempt(server, now, now + (self._deadline - now) / left, self.policy)
        self._attempt = att
        if len(indexes) <= self.policy.udp_batch and not self._stream:
            for i in indexes:
                att.udp_queue[i] = None
                att.where[i] = _UDP_QUEUED
        else:
            # Bursting hundreds of datagrams at a server overflows socket buffers and
            # turns into retransmits: big batches go pipelined over TCP.
            for i in indexes:
                att.tcp_queue[i] = None
                att.where[i] = _TCP_QUEUED
        self._tidy(att, now)

    def _finish(self) -> None:
        self._attempt = None
        self.done = True

    def _take(
        self, att: _Attempt, wire: bytes, now: float, *, stream: bool, conn: _Connection | None = None
    ) -> None:
        """One message from the server: a reply to a question in flight, or noise."""
        matched = match_response(self._pending, wire)
        if matched is None:
            return
        i, reply = matched
        if i not in att.where:
            return
        if conn is not None and i in conn.waiting:
            conn.answered += 1
        if reply.truncated:
            if stream and _answers_complete(reply):
                # Only extra records were cut (CoreDNS keeps every answer it can before any
                # glue): the answer section is whole; targets without glue are looked up.
                self._settle(att, i, None)
                self._accept(i, reply)
            elif stream:
                self._settle(att, i, None)
                qname, rdtype = self._pending.questions[i]
                self._answers[i] = Failure(
                    qname, rdtype,
                    f"{att.server} truncated its answer over TCP (it does not fit in one 64 KiB message)",
                    self.config.timeout, truncated=True,
                )  # fmt: skip
            elif att.where[i] != _UDP_SENT:
                return  # already asked over TCP: that answer will do
            elif att.tcp_broken is None:
                self._move(att, i, _TCP_QUEUED)
            else:
                reason = f"{att.server} truncated its answer over UDP and TCP is unavailable"
                self._settle(att, i, (f"{reason} ({att.tcp_broken})", True))
            return
        failure = server_failure(reply, att.server)
        if failure is not None:
            self._settle(att, i, (failure, False))
            return
        self._settle(att, i, None)
        self._accept(i, reply)

    def _accept(self, i: int, reply: Reply) -> None:
        self._answers[i] = reply
        self._pending.replies[i] = reply

    def _unplace(self, att: _Attempt, i: int) -> None:
        """Take question *i* out of wherever it waits in *att*."""
        place = att.where.pop(i)
        if place == _UDP_QUEUED:
            del att.udp_queue[i]
        elif place == _UDP_SENT:
            del att.udp_out[i]
        elif place == _TCP_QUEUED:
            del att.tcp_queue[i]
        else:
            del att.conns[place].waiting[i]

    def _settle(self, att: _Attempt, i: int, failed: tuple[str, bool] | None) -> None:
        """Question *i* is done with this server: answered (``None``) or failed here."""
        self._unplace(att, i)
        if failed is not None:
            att.failed[i] = failed

    def _move(self, att: _Attempt, i: int, place: int) -> None:
        self._unplace(att, i)
        att.where[i] = place
        if place == _TCP_QUEUED:
            att.tcp_queue[i] = None
        else:
            att.udp_queue[i] = None

    def _send_datagrams(self, att: _Attempt, indexes: list[int]) -> None:
        assert att.udp is not None
        wires = self._pending.wires
        for i in indexes:
            self._actions.append(Send(att.udp, wires[i]))

    def _lost(self, channel: int, error: str, now: float) -> None:
        """Channel *channel* is gone: re-send or re-route what it carried."""
        att = self._attempt
        if att is None:
            return
        if channel == att.udp:
            reason = f"{att.server}: {error} (UDP)"
            att.udp = None
            att.udp_broken = reason
            self._actions.append(Close(channel))
            for i in [*att.udp_out, *att.udp_queue]:
                self._settle(att, i, (reason, False))
            self._tidy(att, now)
            return
        conn = att.conns.pop(channel, None)
        if conn is None:
            return
        self._actions.append(Close(channel))
        waiting = list(conn.waiting)
        for i in waiting:
            del att.where[i]
        if not conn.opened:
            # Refused, unreachable or silent: a NetworkPolicy may allow DNS over UDP only.
            att.tcp_broken = att.tcp_broken or f"{error} (TCP)"
        elif waiting and conn.answered == 0:
            att.no_progress += 1
            if att.no_progress > self.policy.tcp_retries:
                att.tcp_broken = att.tcp_broken or (
                    f"{error} {att.no_progress} times without answering (TCP)"
                )
        # Unanswered questions go first on the next connection (or datagram).
        queue = dict.fromkeys([*waiting, *att.tcp_queue])
        att.tcp_queue = queue
        for i in waiting:
            att.where[i] = _TCP_QUEUED
        self._tidy(att, now)

    def _tidy(self, att: _Attempt, now: float) -> None:
        """Close finished connections, start what waits, end the attempt when nothing is left."""
        if self._attempt is not att:
            return
        for conn in list(att.conns.values()):
            if not conn.waiting:
                del att.conns[conn.channel]
                self._actions.append(Close(conn.channel))
        if att.tcp_queue:
            if att.tcp_broken is not None:
                for i in list(att.tcp_queue):
                    self._move(att, i, _UDP_QUEUED)
            else:
                self._open_connections(att, now)
        if att.udp_queue:
            self._fill_window(att, now)
        if not att.where:
            self._end_attempt(att, now)

    def _open_connections(self, att: _Attempt, now: float) -> None:
        policy = self.policy
        # A connect that takes longer than the UDP share of the budget counts as refused.
        connect_by = min(att.end, now + (att.end - att.start) * policy.udp_share)
        while att.tcp_queue and len(att.conns) < policy.tcp_connections:
            chunk: list[int] = []
            for i in att.tcp_queue:
                chunk.append(i)
                if len(chunk) >= policy.tcp_max_questions:
                    break
            channel = self._channel()
            for i in chunk:
                del att.tcp_queue[i]
                att.where[i] = channel
            att.conns[channel] = _Connection(channel, chunk, connect_by)
            self._actions.append(Open(channel, att.server, True))

    def _fill_window(self, att: _Attempt, now: float) -> None:
        """Send queued datagrams, at most ``udp_batch`` in flight."""
        if att.udp_broken is not None:
            for i in list(att.udp_queue):
                self._settle(att, i, (att.udp_broken, False))
            return
        if att.udp is None:
            att.udp = self._channel()
            self._actions.append(Open(att.udp, att.server, False))
        sent: list[int] = []
        room = self.policy.udp_batch - len(att.udp_out)
        for i in att.udp_queue:
            if len(sent) >= room:
                break
            sent.append(i)
        for i in sent:
            del att.udp_queue[i]
            att.udp_out[i] = None
            att.where[i] = _UDP_SENT
        if sent:
            self._send_datagrams(att, sent)
            if att.next_send is None:
                att.next_send = now + att.interval

    def _end_attempt(self, att: _Attempt, now: float) -> None:
        """This server is done: close its channels; what it did not answer goes on."""
        if self._attempt is not att:
            return
        self._attempt = None
        if att.udp is not None:
            self._actions.append(Close(att.udp))
        for channel in att.conns:
            self._actions.append(Close(channel))
        retry: list[int] = []
        for i, place in att.where.items():
            way = "UDP" if place in (_UDP_QUEUED, _UDP_SENT) else "TCP"
            self._reasons[i].append(f"{att.server} did not answer in time ({way})")
            self._truncated.discard(i)
            retry.append(i)
        for i, (reason, truncated) in att.failed.items():
            self._reasons[i].append(reason)
            if truncated:
                self._truncated.add(i)
            else:
                self._truncated.discard(i)
            retry.append(i)
        self._begin(sorted(retry), now)


def _answers_complete(reply: Reply) -> bool:
    """True when a truncated reply kept its whole answer section.

    miekg/dns (CoreDNS) truncates a message by keeping answers first, then authority, then
    additional records while they fit; so an additional record (glue) that survived proves
    every answer did. Without one, the answers may have been cut: the reply is refused.
    """
    wire = reply.wire
    additional = int.from_bytes(wire[10:12], "big")
    if additional >= 2:
        # Beside at most one OPT record, one glue record at least (two OPT records make
        # the message malformed, which reading it reports).
        return True
    if not additional:
        return False
    try:
        return bool(reply.message.additional)
    except ResolutionError:
        return False
