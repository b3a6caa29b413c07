"""exchange.py: every transport decision of one batch, driven with fake time and no sockets."""

from __future__ import annotations

import math

import pytest

from headless_client.errors import InvalidName
from headless_client.exchange import Close, Exchange, ExchangeConfig, ExchangePolicy, Lookup, Open, Send
from headless_client.fastwire import read_addresses
from headless_client.lookup import StreamBatch
from headless_client.wire import Failure, Nameserver, Reply, take_frames
from tests.faults import packets

SERVERS = (Nameserver("10.96.0.10"), Nameserver("10.96.0.11"), Nameserver("10.96.0.12"))
SERVFAIL, REFUSED = 2, 5


def names(count: int) -> list[tuple[str, int]]:
    return [(f"web-{i}.web.prod.svc.cluster.local.", 1) for i in range(count)]


def answer(query_wire: bytes, *, rcode: int = 0, tc: bool = False, address: str = "10.0.0.1") -> bytes:
    query = packets.parse_query(query_wire)
    assert query is not None
    records = [] if rcode or tc else [packets.a_record(address)]
    return packets.respond(query, records, rcode=rcode, tc=tc)


def addresses_of(reply: Reply) -> tuple[str, ...]:
    found = read_addresses(reply.wire, reply.qname, reply.rdtype)
    assert found is not None
    return found.addresses


class Net:
    """Plays the network for one :class:`Exchange`: records what it asks, answers on cue."""

    def __init__(self, batch, *, servers=SERVERS[:1], timeout=2.0, policy=None, now=0.0):
        self.now = now
        config = ExchangeConfig(tuple(servers), timeout, policy or ExchangePolicy())
        self.ex = Exchange(batch, config, now=now)
        self.channels: dict[int, Open] = {}
        self.sent: dict[int, list[bytes]] = {}
        self.closed: list[int] = []
        self.pump()

    def pump(self) -> None:
        for action in self.ex.take_actions():
            if isinstance(action, Open):
                assert action.channel not in self.channels
                self.channels[action.channel] = action
                self.sent[action.channel] = []
            elif isinstance(action, Send):
                assert action.channel in self.channels and action.channel not in self.closed
                self.sent[action.channel].append(action.data)
            else:
                assert isinstance(action, Close)
                self.closed.append(action.channel)

    def open_channels(self, *, stream: bool | None = None) -> list[int]:
        return [
            c for c, o in self.channels.items()
            if c not in self.closed and (stream is None or o.stream == stream)
        ]

    def udp(self) -> int:
        (channel,) = self.open_channels(stream=False)
        return channel

    def queries(self, channel: int) -> list[bytes]:
        """Every query sent on *channel*, in order (TCP frames split)."""
        data = self.sent[channel]
        if not self.channels[channel].stream:
            return list(data)
        inbox = bytearray(b"".join(data))
        frames = take_frames(inbox)
        assert not inbox
        return frames

    def asked(self, channel: int) -> list[str]:
        return [packets.parse_query(q).labels[0].decode() for q in self.queries(channel)]

    def at(self, when: float) -> None:
        self.now = when
        self.ex.timer(when)
        self.pump()

    def run_timers(self, until: float) -> list[float]:
        """Fire every timer up to *until*; return when each fired."""
        fired = []
        for _ in range(1000):
            at = self.ex.next_timer()
            if at is None or at > until:
                break
            fired.append(at)
            self.at(at)
        return fired

    def datagram(self, channel: int, wire: bytes) -> None:
        self.ex.datagram_received(channel, wire, self.now)
        self.pump()

    def opened(self, channel: int) -> None:
        self.ex.stream_opened(channel, self.now)
        self.pump()

    def stream(self, channel: int, *wires: bytes) -> None:
        self.ex.stream_received(channel, b"".join(len(w).to_bytes(2, "big") + w for w in wires), self.now)
        self.pump()

    def result(self) -> list[Reply | Failure]:
        assert self.ex.done
        return self.ex.answers()


# -- UDP -------------------------------------------------------------------------------------


def test_small_batch_goes_out_as_datagrams_and_is_answered():
    """A batch of two questions: one UDP channel, one datagram each, done when both answer."""
    net = Net(names(2))
    channel = net.udp()
    assert net.asked(channel) == ["web-0", "web-1"]
    assert not net.ex.done
    for query in reversed(net.queries(channel)):
        net.datagram(channel, answer(query))
    replies = net.result()
    assert [r.qname for r in replies] == [q for q, _ in names(2)]
    assert all(isinstance(r, Reply) for r in replies)
    assert channel in net.closed and net.ex.next_timer() is None


def test_unanswered_datagrams_are_retransmitted_on_a_doubling_schedule():
    """Resends at 0.1, then 0.2 and 0.25 s apart; each resends only what is unanswered."""
    net = Net(names(2), policy=ExchangePolicy(udp_share=1.0))
    channel = net.udp()
    first = net.queries(channel)
    net.datagram(channel, answer(first[0]))
    fired = net.run_timers(1.0)
    assert fired == pytest.approx([0.1, 0.3, 0.55, 0.8])
    resent = net.queries(channel)[2:]
    assert resent == [first[1]] * 4


def test_a_short_budget_retransmits_sooner():
    """With 0.2 s in all, the first resend comes at a quarter of it, not after 100 ms."""
    net = Net(names(1), timeout=0.2, policy=ExchangePolicy(udp_share=1.0))
    assert net.ex.next_timer() == pytest.approx(0.05)


def test_noise_and_spoofed_answers_are_ignored():
    """Wrong ID, wrong question and garbage never settle a question."""
    net = Net(names(1))
    channel = net.udp()
    (query,) = net.queries(channel)
    real = answer(query)
    for fake in (packets.with_wrong_id(real), packets.with_wrong_question(real), b"\x00" * 5, b""):
        net.datagram(channel, fake)
    assert not net.ex.done
    net.datagram(channel, real)
    assert isinstance(net.result()[0], Reply)


def test_questions_unanswered_after_the_udp_share_move_to_tcp():
    """Past half the server's budget, what UDP did not answer is asked over TCP."""
    net = Net(names(3))
    udp = net.udp()
    net.datagram(udp, answer(net.queries(udp)[1]))
    net.run_timers(0.99)
    assert net.open_channels(stream=True) == []
    net.run_timers(1.0)
    (tcp,) = net.open_channels(stream=True)
    assert net.sent[tcp] == []  # nothing is written before the connection is up
    net.opened(tcp)
    assert net.asked(tcp) == ["web-0", "web-2"]
    net.stream(tcp, *(answer(q) for q in net.queries(tcp)))
    assert all(isinstance(r, Reply) for r in net.result())


def test_a_late_datagram_still_counts_after_the_move_to_tcp():
    """An answer that arrives by UDP after the question moved to TCP is taken."""
    net = Net(names(1))
    udp = net.udp()
    (query,) = net.queries(udp)
    net.run_timers(1.0)
    (tcp,) = net.open_channels(stream=True)
    net.datagram(udp, answer(query))
    assert isinstance(net.result()[0], Reply)
    assert tcp in net.closed


def test_truncated_datagram_is_asked_again_over_tcp():
    """TC over UDP: that question, and only it, goes to TCP at once."""
    net = Net(names(2))
    udp = net.udp()
    first, second = net.queries(udp)
    net.datagram(udp, answer(first, tc=True))
    net.datagram(udp, answer(second))
    (tcp,) = net.open_channels(stream=True)
    net.opened(tcp)
    assert net.asked(tcp) == ["web-0"]
    net.stream(tcp, answer(net.queries(tcp)[0], address="10.0.0.9"))
    a, b = net.result()
    assert isinstance(a, Reply) and not a.truncated and addresses_of(a) == ("10.0.0.9",)
    assert isinstance(b, Reply)


def test_udp_refused_moves_on_to_the_next_server_at_once():
    """ICMP port unreachable on the first server: the second is asked without waiting."""
    net = Net(names(2), servers=SERVERS[:2])
    first = net.udp()
    net.ex.channel_failed(first, "Connection refused", 0.01)
    net.pump()
    second = net.udp()
    assert net.channels[second].server == SERVERS[1]
    for query in net.queries(second):
        net.datagram(second, answer(query))
    assert all(isinstance(r, Reply) for r in net.result())


# -- TCP ---------------------------------------------------------------------------------------


def test_big_batches_start_on_tcp_within_the_question_cap():
    """300 questions, 128 per connection, 2 connections at once: 128 + 128, then 44."""
    net = Net(names(300), policy=ExchangePolicy(tcp_connections=2))
    assert net.open_channels(stream=False) == []
    first, second = net.open_channels(stream=True)
    for channel in (first, second):
        net.opened(channel)
    assert len(net.queries(first)) == len(net.queries(second)) == 128
    net.stream(first, *(answer(q) for q in net.queries(first)))
    assert first in net.closed
    (third,) = [c for c in net.open_channels(stream=True) if c != second]
    net.opened(third)
    assert len(net.queries(third)) == 44
    net.stream(third, *(answer(q) for q in net.queries(third)))
    net.stream(second, *(answer(q) for q in net.queries(second)))
    assert sum(isinstance(r, Reply) for r in net.result()) == 300
    asked = net.asked(first) + net.asked(second) + net.asked(third)
    assert sorted(asked) == sorted(f"web-{i}" for i in range(300))


def test_a_connection_closed_after_its_servers_cap_is_resumed_on_a_new_one():
    """The server answers 100 of 128 and closes: the other 28 go first on the next connection."""
    net = Net(names(300), policy=ExchangePolicy(tcp_connections=1))
    (first,) = net.open_channels(stream=True)
    net.opened(first)
    sent = net.queries(first)
    net.stream(first, *(answer(q) for q in sent[:100]))
    net.ex.stream_closed(first, net.now)
    net.pump()
    (second,) = net.open_channels(stream=True)
    net.opened(second)
    again = net.asked(second)
    assert again[:28] == [f"web-{i}" for i in range(100, 128)]
    assert len(again) == 128  # the cap counts the re-sent questions too
    net.stream(second, *(answer(q) for q in net.queries(second)))
    (third,) = net.open_channels(stream=True)
    net.opened(third)
    assert len(net.queries(third)) == 72
    net.stream(third, *(answer(q) for q in net.queries(third)))
    assert sum(isinstance(r, Reply) for r in net.result()) == 300


def test_a_reset_mid_stream_resends_what_was_unanswered():
    """Connection reset after a few answers: the rest is asked again on a new connection."""
    net = Net(names(20))
    (first,) = net.open_channels(stream=True)
    net.opened(first)
    net.stream(first, *(answer(q) for q in net.queries(first)[:5]))
    net.ex.channel_failed(first, "Connection reset by peer", net.now)
    net.pump()
    (second,) = net.open_channels(stream=True)
    net.opened(second)
    assert net.asked(second) == [f"web-{i}" for i in range(5, 20)]
    net.stream(second, *(answer(q) for q in net.queries(second)))
    assert sum(isinstance(r, Reply) for r in net.result()) == 20


def test_connections_closing_without_answers_are_retried_then_udp_is_used():
    """tcp_retries=2: three connections closed at once, then the questions go by UDP."""
    net = Net(names(20), policy=ExchangePolicy(tcp_retries=2))
    for _ in range(3):
        (channel,) = net.open_channels(stream=True)
        net.opened(channel)
        net.ex.stream_closed(channel, net.now)
        net.pump()
    assert net.open_channels(stream=True) == []
    udp = net.udp()
    assert len(net.queries(udp)) == 16


def test_tcp_refused_falls_back_to_udp_in_small_batches():
    """TCP refused: the 20 questions go by UDP, at most udp_batch (16) in flight."""
    net = Net(names(20))
    (tcp,) = net.open_channels(stream=True)
    net.ex.channel_failed(tcp, "Connection refused", net.now)
    net.pump()
    udp = net.udp()
    queries = net.queries(udp)
    assert len(queries) == 16
    for query in queries[:3]:
        net.datagram(udp, answer(query))
    assert len(net.queries(udp)) == 19  # three answered, three more sent
    net.run_timers(0.11)  # a retransmission: only the 16 in flight
    assert len(net.queries(udp)) == 19 + 16
    for query in net.queries(udp)[16:19]:
        net.datagram(udp, answer(query))
    for query in net.queries(udp)[3:16]:
        net.datagram(udp, answer(query))
    for query in net.queries(udp)[-1:]:
        net.datagram(udp, answer(query))
    net.run_timers(2.0)
    assert sum(isinstance(r, Reply) for r in net.result()) == 20
    assert net.open_channels(stream=True) == []  # TCP was not tried again


def test_a_tcp_connect_that_hangs_counts_as_refused():
    """No connection after the UDP share of the budget: the questions go by UDP."""
    net = Net(names(20), timeout=2.0)
    (tcp,) = net.open_channels(stream=True)
    net.run_timers(1.0)
    assert tcp in net.closed
    assert len(net.queries(net.udp())) == 16


def test_truncated_over_udp_with_tcp_refused_is_a_truncated_failure():
    """TC by UDP and no TCP: the question fails, marked truncated (never a partial answer)."""
    net = Net(names(1))
    udp = net.udp()
    net.datagram(udp, answer(net.queries(udp)[0], tc=True))
    (tcp,) = net.open_channels(stream=True)
    net.ex.channel_failed(tcp, "Connection refused", net.now)
    net.pump()
    udp_again = net.udp()
    net.datagram(udp_again, answer(net.queries(udp_again)[-1], tc=True))
    (failure,) = net.result()
    assert isinstance(failure, Failure) and failure.truncated
    assert "TCP is unavailable" in failure.reason and "Connection refused" in failure.reason


def test_truncated_over_tcp_is_a_failure_not_retried():
    """TC over TCP (over 64 KiB): a truncated failure at once, the next server is not asked."""
    net = Net(names(20), servers=SERVERS[:2])
    (tcp,) = net.open_channels(stream=True)
    net.opened(tcp)
    queries = net.queries(tcp)
    net.stream(tcp, answer(queries[0], tc=True), *(answer(q) for q in queries[1:]))
    replies = net.result()
    assert isinstance(replies[0], Failure) and replies[0].truncated and "64 KiB" in replies[0].reason
    assert all(isinstance(r, Reply) for r in replies[1:])
    assert {o.server for o in net.channels.values()} == {SERVERS[0]}


def _srv_with_glue(query_wire: bytes, *, targets: int, glue: int, opt: bool, tc: bool) -> bytes:
    """An SRV answer of *targets* records with *glue* A records (and an OPT record)."""
    query = packets.parse_query(query_wire)
    pointer = packets._service_pointer(query)
    answers = [packets.srv_record(f"web-{i}".encode(), pointer) for i in range(targets)]
    extra = [packets.a_record(f"10.0.0.{i + 1}", owner=f"\x05web-{i}".encode() + pointer) for i in range(glue)]
    if opt:
        extra.append(b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00")
    head = packets._header(query, tc=tc, an=len(answers), ar=len(extra))
    return head + query.question + b"".join(answers) + b"".join(extra)


@pytest.mark.parametrize(("glue", "opt", "accepted"), [(0, True, False), (0, False, False), (1, False, True),
                                                       (1, True, True), (5, True, True)])
def test_tc_over_tcp_is_accepted_when_glue_survived(glue, opt, accepted):
    """TC over TCP with a glue record left means only glue was cut (CoreDNS keeps every
    answer first): the reply is taken; with none left it is a truncated failure."""
    net = Net([("_http._tcp.web.prod.svc.cluster.local.", 33)] * 1 + names(16))
    (tcp,) = net.open_channels(stream=True)
    net.opened(tcp)
    queries = net.queries(tcp)
    srv = _srv_with_glue(queries[0], targets=6, glue=glue, opt=opt, tc=True)
    net.stream(tcp, srv, *(answer(q) for q in queries[1:]))
    first = net.result()[0]
    if accepted:
        assert isinstance(first, Reply) and first.truncated and len(first.message.answer[0]) == 6
    else:
        assert isinstance(first, Failure) and first.truncated


def test_a_stream_batch_goes_over_one_tcp_connection_at_once():
    """A StreamBatch (answers known to be large) of three questions: no datagram, one TCP
    connection carrying all three, pipelined."""
    batch = StreamBatch([("_http._tcp.web.prod.svc.cluster.local.", 33), *names(2)])
    net = Net(batch)
    assert net.open_channels(stream=False) == []
    (tcp,) = net.open_channels(stream=True)
    net.opened(tcp)
    queries = net.queries(tcp)
    assert len(queries) == 3
    net.stream(tcp, *(answer(q) for q in queries))
    assert all(isinstance(r, Reply) for r in net.result())
    assert len(net.channels) == 1


def test_a_stream_batch_falls_back_to_datagrams_when_tcp_is_refused():
    """TCP refused: the StreamBatch's questions go by UDP like any batch's."""
    net = Net(StreamBatch(names(2)))
    (tcp,) = net.open_channels(stream=True)
    net.ex.channel_failed(tcp, "Connection refused", net.now)
    net.pump()
    udp = net.udp()
    for query in net.queries(udp):
        net.datagram(udp, answer(query))
    assert all(isinstance(r, Reply) for r in net.result())


# -- servers and budgets -------------------------------------------------------------------------


def test_servfail_for_one_question_asks_the_next_server_for_it_only():
    """A answered, AAAA SERVFAIL: the second server is asked the AAAA question alone."""
    net = Net([("web.prod.svc.cluster.local.", 1), ("web.prod.svc.cluster.local.", 28)], servers=SERVERS[:2])
    udp = net.udp()
    a, aaaa = net.queries(udp)
    net.datagram(udp, answer(a))
    net.datagram(udp, answer(aaaa, rcode=SERVFAIL))
    second = net.udp()
    assert net.channels[second].server == SERVERS[1]
    assert net.queries(second) == [aaaa]
    net.datagram(second, answer(aaaa, rcode=REFUSED))
    got_a, got_aaaa = net.result()
    assert isinstance(got_a, Reply)
    assert isinstance(got_aaaa, Failure) and not got_aaaa.truncated
    assert "SERVFAIL" in got_aaaa.reason and "REFUSED" in got_aaaa.reason
    assert str(SERVERS[0]) in got_aaaa.message and "within 2s" in got_aaaa.message


def test_nxdomain_is_an_answer_not_a_server_failure():
    net = Net(names(1), servers=SERVERS[:2])
    udp = net.udp()
    net.datagram(udp, answer(net.queries(udp)[0], rcode=3))
    (reply,) = net.result()
    assert isinstance(reply, Reply) and reply.rcode == 3
    assert len(net.channels) == 1


def test_the_budget_left_is_shared_among_the_servers_not_yet_tried():
    """Three black holes and 3 s: each server gets a third; the batch fails at 3 s."""
    net = Net(names(1), servers=SERVERS, timeout=3.0, policy=ExchangePolicy(udp_share=1.0))
    starts = [(SERVERS[0], 0.0)]
    for _ in range(200):
        at = net.ex.next_timer()
        if at is None:
            break
        net.at(at)
        udp = [c for c in net.open_channels(stream=False)]
        if udp and net.channels[udp[0]].server not in [s for s, _ in starts]:
            starts.append((net.channels[udp[0]].server, net.now))
    assert [s for s, _ in starts] == list(SERVERS)
    assert [t for _, t in starts] == pytest.approx([0.0, 1.0, 2.0])
    (failure,) = net.result()
    assert isinstance(failure, Failure)
    assert failure.reason.count("did not answer in time (UDP)") == 3
    assert net.now == pytest.approx(3.0)


def test_a_server_failing_fast_leaves_its_share_to_the_others():
    """The first server refuses at once: the second gets half the whole budget, not a third."""
    net = Net(names(1), servers=SERVERS, timeout=3.0)
    net.ex.channel_failed(net.udp(), "Connection refused", 0.0)
    net.pump()
    assert net.ex.next_timer() <= 1.5
    net.run_timers(1.5)
    assert net.channels[net.udp()].server == SERVERS[2]


def test_the_deadline_passed_in_covers_every_batch_of_a_lookup():
    """An exchange started late in a lookup gets only what is left of its deadline."""
    config = ExchangeConfig(SERVERS[:1], 2.0)
    ex = Exchange(names(1), config, now=1.8, deadline=2.0)
    assert ex.next_timer() == pytest.approx(1.8 + 0.2 / 4)
    ex.timer(2.0)
    (failure,) = ex.answers()
    assert isinstance(failure, Failure) and "did not answer in time" in failure.reason


def test_an_empty_batch_is_done_at_once():
    ex = Exchange([], ExchangeConfig(SERVERS[:1], 1.0), now=0.0)
    assert ex.done and ex.answers() == [] and ex.take_actions() == []


def test_answers_before_done_is_a_driver_bug():
    ex = Exchange(names(1), ExchangeConfig(SERVERS[:1], 1.0), now=0.0)
    with pytest.raises(RuntimeError):
        ex.answers()


def test_events_for_unknown_channels_are_ignored():
    """Late events for closed channels change nothing (a stream opening late is closed)."""
    net = Net(names(1))
    net.ex.datagram_received(99, b"x" * 20, 0.0)
    net.ex.stream_received(99, b"x" * 20, 0.0)
    net.ex.stream_closed(99, 0.0)
    net.ex.channel_failed(99, "gone", 0.0)
    net.ex.stream_opened(99, 0.0)
    assert net.ex.take_actions() == [Close(99)]
    assert not net.ex.done


# -- settings ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("udp_batch", 0), ("udp_batch", True), ("udp_batch", 1.5), ("udp_batch", 10**9),
        ("udp_share", 0.0), ("udp_share", 1.5), ("udp_share", math.nan), ("udp_share", "half"),
        ("retransmit_first", 0.0), ("retransmit_first", math.inf), ("retransmit_first", 1e308),
        ("retransmit_max", -1.0), ("retransmit_max", 0.05),
        ("tcp_max_questions", 0), ("tcp_max_questions", 70_000), ("tcp_max_questions", None),
        ("tcp_connections", 0), ("tcp_connections", 1000),
        ("tcp_retries", -1), ("tcp_retries", math.inf),
    ],
)
def test_bad_policy_values_are_refused_by_name(setting, value):
    with pytest.raises(InvalidName, match=setting):
        ExchangePolicy(**{setting: value})


@pytest.mark.parametrize("timeout", [0, -1, math.inf, math.nan, 1e12, True, "2"])
def test_bad_config_values_are_refused_by_name(timeout):
    with pytest.raises(InvalidName, match="timeout"):
        ExchangeConfig(SERVERS[:1], timeout)


def test_config_needs_nameservers():
    with pytest.raises(InvalidName, match="nameservers"):
        ExchangeConfig((), 1.0)
    with pytest.raises(InvalidName, match="nameservers"):
        ExchangeConfig(("10.0.0.1",), 1.0)  # strings must be parsed first
    assert ExchangeConfig([SERVERS[0]], 1).nameservers == (SERVERS[0],)


def test_values_are_frozen_with_slots():
    policy = ExchangePolicy()
    with pytest.raises(AttributeError):
        policy.udp_batch = 3  # type: ignore[misc]
    assert not hasattr(policy, "__dict__")
    lookup = Lookup(iter(()), ExchangeConfig(SERVERS[:1], 1.0), "x")  # type: ignore[arg-type]
    assert not hasattr(lookup, "__dict__")


def test_duplicate_and_late_truncated_answers_change_nothing():
    """A second answer to a settled question, and a TC datagram for a question already
    asked over TCP, are ignored."""
    net = Net(names(2))
    udp = net.udp()
    first, second = net.queries(udp)
    net.datagram(udp, answer(first, address="10.0.0.5"))
    net.datagram(udp, answer(first, address="10.0.0.6"))  # a retransmission's answer
    net.run_timers(1.0)  # the second question moves to TCP
    (tcp,) = net.open_channels(stream=True)
    net.datagram(udp, answer(second, tc=True))
    assert net.open_channels(stream=True) == [tcp]
    net.opened(tcp)
    net.stream(tcp, answer(net.queries(tcp)[0]))
    a, b = net.result()
    assert addresses_of(a) == ("10.0.0.5",)
    assert isinstance(b, Reply) and not b.truncated


def test_no_tcp_and_no_udp_on_a_server_moves_every_question_on():
    """TCP refused, then UDP refused too (ICMP), with questions still queued: all of them
    go to the next server at once."""
    net = Net(names(20), servers=SERVERS[:2])
    (tcp,) = net.open_channels(stream=True)
    net.ex.channel_failed(tcp, "Connection refused", 0.0)
    net.pump()
    udp = net.udp()
    assert len(net.queries(udp)) == 16  # four more wait for room
    net.ex.channel_failed(udp, "Connection refused", 0.0)
    net.pump()
    (tcp2,) = net.open_channels(stream=True)
    assert net.channels[tcp2].server == SERVERS[1]
    net.opened(tcp2)
    assert len(net.queries(tcp2)) == 20
    net.stream(tcp2, *(answer(q) for q in net.queries(tcp2)))
    assert sum(isinstance(r, Reply) for r in net.result()) == 20


def test_the_exchange_module_does_no_io():
    """exchange.py imports no socket, clock, selector, file or event-loop module: time is
    passed in and bytes are handed to a driver."""
    import ast
    from pathlib import Path

    import headless_client.exchange as module

    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add((node.module or "").split(".")[0])
    assert not imported & {"socket", "time", "selectors", "asyncio", "os", "io", "select", "threading"}
    assert "open(" not in Path(module.__file__).read_text(encoding="utf-8")
