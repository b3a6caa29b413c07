"""The docs' figures, drawn as SVG at build time (``hook.py``) from the library itself.

Run ``python docs/_figures/figures.py OUTDIR`` to write them to a directory for a look.
Where a figure shows behaviour, the behaviour comes from headless-client's own code, so
the picture cannot drift from it: the sticky ring and the keys that move are computed
with :class:`~headless_client.Sticky`, the leader map with
:class:`~headless_client.PartitionLeader`, the refresh timeline's delays with
:class:`~headless_client.RefreshPolicy` (a fixed seed for the jitter).
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Callable
from pathlib import Path

from canvas import (
    ACCENT,
    BAD,
    GOOD,
    INK,
    MUTED,
    PAPER,
    POD_COLOURS,
    POD_TINTS,
    RULE,
    SHADE,
    WARN,
    Canvas,
    text_width,
)

import headless_client as hc
from headless_client.strategies.sticky import key_hash
from headless_client.testing import statefulset_endpoints

# -- data flow ---------------------------------------------------------------------------


def data_flow() -> str:
    """Pods -> Kubernetes API -> cluster DNS -> resolver -> view -> strategy -> client -> pod."""
    c = Canvas(
        820,
        352,
        "How a request finds its pod",
        "The kubelet reports which pods are ready; the Kubernetes API publishes them as "
        "EndpointSlices; the cluster DNS (CoreDNS) answers with one record per ready pod. In "
        "your process, the HeadlessService resolves that name again every TTL, keeps an "
        "immutable snapshot and the pods' health, a strategy picks one pod per request from "
        "memory, and your client connects to the pod's own address. A failure ejects the pod "
        "for a while and asks DNS again early.",
    )
    # Two groups: the cluster above, your process below.
    c.rect(10, 10, 800, 128, fill=SHADE, stroke=RULE, radius=10)
    c.text(24, 32, "Kubernetes", size=13, bold=True, fill=MUTED)
    c.rect(10, 170, 800, 172, fill=SHADE, stroke=RULE, radius=10)
    c.text(24, 192, "your process (headless-client)", size=13, bold=True, fill=MUTED)

    w, h, top, bottom = 200, 78, 46, 206
    pods_x, api_x, dns_x = 30, 310, 590
    c.box(pods_x, top, w, h, ["Pods", "web-0, web-1, web-2", "readiness probes"])
    c.box(api_x, top, w, h, ["Kubernetes API", "EndpointSlices:", "the ready pods"])
    c.box(dns_x, top, w, h, ["Cluster DNS (CoreDNS)", "A, SRV, per-pod names", "TTL 5 s, maybe cached"])
    c.arrow(pods_x + w, top + h / 2, api_x - 2, top + h / 2)
    c.text((pods_x + w + api_x) / 2, top + h / 2 - 8, "ready?", size=12, anchor="middle", fill=MUTED, fit=76)
    c.arrow(api_x + w, top + h / 2, dns_x - 2, top + h / 2)
    c.text((api_x + w + dns_x) / 2, top + h / 2 - 8, "watch", size=12, anchor="middle", fill=MUTED, fit=76)

    bw = 176
    client_x, strategy_x, view_x, resolver_x = 30, 226, 422, 614
    c.box(resolver_x, bottom, bw, h, ["Resolver", "a query per refresh", "web.prod.svc..."])
    c.box(view_x, bottom, bw, h, ["HeadlessService", "snapshot (EndpointSet)", "+ pod health"], stroke=ACCENT)
    c.box(strategy_x, bottom, bw, h, ["Strategy", "pick(snapshot, key)", "from memory, no I/O"])
    c.box(client_x, bottom, bw, h, ["Your code", "connection(), httpx,", "any client"])
    # DNS <-> resolver: the query every TTL and the answer.
    c.arrow(resolver_x + bw / 2 + 26, top + h + 2, resolver_x + bw / 2 + 26, bottom - 2)
    c.arrow(resolver_x + bw / 2 - 26, bottom, resolver_x + bw / 2 - 26, top + h + 4)
    c.text(resolver_x + bw / 2 - 34, 152, "query", size=12, anchor="end", fill=MUTED, fit=60)
    c.text(resolver_x + bw / 2 + 34, 152, "answer", size=12, fill=MUTED, fit=60)
    # resolver -> view -> strategy -> client, right to left.
    mid = bottom + h / 2
    c.arrow(resolver_x, mid, view_x + bw + 2, mid)
    c.arrow(view_x, mid, strategy_x + bw + 2, mid)
    c.arrow(strategy_x, mid, client_x + bw + 2, mid)
    # the request goes to the pod's own address
    c.arrow(client_x + bw / 2, bottom, client_x + bw / 2, top + h + 4)
    c.text(client_x + bw / 2 + 8, 152, "request to the pod's own address", size=12, fill=MUTED, fit=250)
    # failures feed back
    fb = bottom + h + 22
    c.path(
        [
            (client_x + bw / 2, bottom + h),
            (client_x + bw / 2, fb),
            (view_x + bw / 2, fb),
            (view_x + bw / 2, bottom + h + 4),
        ],
        stroke=BAD,
        dash="5 4",
        arrow=True,
        width=1.4,
    )
    c.text(
        (client_x + view_x + bw) / 2,
        fb + 15,
        "a failure: eject the pod for a while, ask DNS again early",
        size=12,
        anchor="middle",
        fill=BAD,
        fit=440,
    )
    return c.svg()


# -- refresh timeline --------------------------------------------------------------------

#: What DNS answers over the timeline: (from second, state).
_DNS_STATES = ((0.0, "ok"), (12.0, "failing"), (24.5, "ok"), (36.0, "empty"))
_TIMELINE_END = 56.0


def _dns_state(t: float) -> str:
    state = "ok"
    for start, value in _DNS_STATES:
        if t >= start:
            state = value
    return state


def refresh_attempts(policy: hc.RefreshPolicy, ttl: int, seed: int = 3) -> list[tuple[float, str, str]]:
    """The refresh attempts over the timeline: (time, DNS answer, what the view holds after).

    Delays come from *policy*: ``period(ttl)`` after a good answer, ``failure_delay(n)``
    after the n-th failure in a row, ``period(None)`` (``min_refresh``, jittered) while
    empty. An empty answer after a good one starts the grace: the view keeps its pods
    until an answer at least ``empty_grace`` later is still empty (service.md).
    """
    # The default back-off's random part is tenacity's wait_random, which draws from the
    # global generator: seed it for the drawing, and leave it as it was.
    saved = random.getstate()
    random.seed(seed)
    try:
        return _simulate(policy, ttl, random.Random(seed))
    finally:
        random.setstate(saved)


def _simulate(policy: hc.RefreshPolicy, ttl: int, rng: random.Random) -> list[tuple[float, str, str]]:
    t, failures, empty_since, view = 0.0, 0, None, "pods"
    attempts: list[tuple[float, str, str]] = []
    for _ in range(200):  # bounded
        if t > _TIMELINE_END:
            break
        state = _dns_state(t)
        if state == "ok":
            failures, empty_since, view = 0, None, "pods"
            delay = policy.period(ttl, rng)
        elif state == "failing":
            failures += 1
            delay = policy.failure_delay(failures, rng)
        else:
            failures = 0
            if view == "empty":
                delay = policy.period(None, rng)
            elif empty_since is None:
                empty_since, view = t, "grace"
                delay = policy.empty_grace
            elif t - empty_since >= policy.empty_grace:
                view = "empty"
                delay = policy.period(None, rng)
            else:
                delay = policy.empty_grace - (t - empty_since)
        attempts.append((t, state, view))
        t += delay
    return attempts


def refresh_timeline() -> str:
    """Attempts and what the view holds, with the library's default RefreshPolicy."""
    policy = hc.RefreshPolicy()
    ttl = 5
    attempts = refresh_attempts(policy, ttl)
    c = Canvas(
        820,
        300,
        "When a HeadlessService asks DNS again",
        f"With the defaults (min_refresh {policy.min_refresh:g} s, max_refresh {policy.max_refresh:g} s, "
        f"jitter {policy.jitter:.0%}, empty_grace {policy.empty_grace:g} s) and a TTL of {ttl} s: "
        "good answers are asked again every TTL plus or minus 10 %; failures are retried after "
        "1, 2, 4, 8 s (plus up to 1 s) while the last good pods are kept; after an empty answer "
        "the pods are kept for the grace period, then the view is emptied and DNS is polled "
        "every second.",
    )
    left, right = 96, 800
    scale = (right - left) / _TIMELINE_END

    def x(t: float) -> float:
        return left + t * scale

    dns_y, attempt_y, view_y, axis_y = 40, 112, 176, 234
    c.text(14, dns_y + 17, "DNS says", size=12, bold=True, fit=80)
    c.text(14, attempt_y + 5, "refreshes", size=12, bold=True, fit=80)
    c.text(14, view_y + 17, "the view", size=12, bold=True, fit=80)
    # DNS band
    bounds = [s for s, _ in _DNS_STATES] + [_TIMELINE_END]
    labels = {
        "ok": ("3 pods", "#e3f1e8", GOOD),
        "failing": ("timeouts", "#f8dede", BAD),
        "empty": ("NXDOMAIN: no ready pod", "#fbefd5", WARN),
    }
    for (start, state), end in zip(_DNS_STATES, bounds[1:], strict=True):
        label, fill, ink = labels[state]
        c.rect(x(start), dns_y, x(end) - x(start), 26, fill=fill, stroke=PAPER, radius=3)
        c.text(
            (x(start) + x(end)) / 2,
            dns_y + 17,
            label,
            size=12,
            anchor="middle",
            fill=ink,
            fit=x(end) - x(start) - 6,
        )
    # attempts, and the gaps between them
    c.line(left, attempt_y, right, attempt_y, stroke=RULE)
    marks = {"ok": GOOD, "failing": BAD, "empty": WARN}
    for i, (t, state, _view) in enumerate(attempts):
        if t > _TIMELINE_END:
            break
        c.circle(x(t), attempt_y, 5, fill=marks[state], stroke=PAPER, width=1.5)
        if i + 1 < len(attempts) and attempts[i + 1][0] <= _TIMELINE_END:
            gap = attempts[i + 1][0] - t
            label = f"{gap:.1f}"
            room = x(attempts[i + 1][0]) - x(t) - 4
            if text_width(label, 10) <= room:
                c.text(
                    (x(t) + x(attempts[i + 1][0])) / 2,
                    attempt_y - 9,
                    label,
                    size=10,
                    anchor="middle",
                    fill=MUTED,
                    fit=room,
                )
    # explanations under the attempts
    first_failure = next(t for t, state, _ in attempts if state == "failing")
    recovered = next(t for t, state, _ in attempts if state == "ok" and t > first_failure)
    first_empty = next(t for t, state, _ in attempts if state == "empty")
    emptied = next(t for t, _, view in attempts if view == "empty")
    notes = (
        (0.0, first_failure, f"every TTL ({ttl} s) +-10 %"),
        (first_failure, recovered, "back-off: 1, 2, 4, 8 s (+0..1 s)"),
        (first_empty, emptied, f"grace: {policy.empty_grace:g} s"),
        (emptied, _TIMELINE_END, f"polls every {policy.min_refresh:g} s"),
    )
    for start, end, note in notes:
        c.text(
            (x(start) + x(end)) / 2,
            attempt_y + 24,
            note,
            size=11,
            anchor="middle",
            fill=MUTED,
            fit=x(end) - x(start) - 2,
        )
    # the view band, from the attempts
    spans: list[tuple[float, float, str]] = []
    for (t, state, view), nxt in zip(attempts, [a[0] for a in attempts[1:]] + [_TIMELINE_END], strict=True):
        kind = "kept" if state == "failing" else view
        if spans and spans[-1][2] == kind:
            spans[-1] = (spans[-1][0], min(nxt, _TIMELINE_END), kind)
        else:
            spans.append((t, min(nxt, _TIMELINE_END), kind))
    fills = {  # kind: fill, ink, labels (the longest that fits is shown)
        "pods": ("#dfe3f6", ACCENT, ("web-0, web-1, web-2", "3 pods")),
        "kept": ("#eceef5", MUTED, ("last good pods, kept", "kept")),
        "grace": ("#eceef5", MUTED, ("kept (grace)", "kept")),
        "empty": (PAPER, WARN, ("empty: pick() raises", "empty")),
    }
    for start, end, kind in spans:
        if end <= start:
            continue
        fill, ink, labels = fills[kind]
        c.rect(
            x(start),
            view_y,
            x(end) - x(start),
            26,
            fill=fill,
            stroke=RULE,
            radius=3,
            dash="4 3" if kind in ("kept", "grace", "empty") else None,
        )
        room = x(end) - x(start) - 6
        label = next((text for text in labels if text_width(text, 12) <= room), None)
        if label is not None:
            c.text((x(start) + x(end)) / 2, view_y + 17, label, size=12, anchor="middle", fill=ink, fit=room)
    # time axis
    c.line(left, axis_y, right, axis_y, stroke=INK)
    for s in range(0, int(_TIMELINE_END) + 1, 5):
        c.line(x(s), axis_y, x(s), axis_y + 5, stroke=INK)
        c.text(x(s), axis_y + 19, f"{s} s", size=11, anchor="middle", fill=MUTED, fit=40)
    # legend
    ly = 284
    for i, (colour, label) in enumerate(((GOOD, "answer"), (BAD, "failure"), (WARN, "empty answer"))):
        lx = left + i * 130
        c.circle(lx, ly - 4, 5, fill=colour)
        c.text(lx + 10, ly, label, size=12, fit=110)
    c.text(right, ly, "numbers: seconds until the next refresh", size=11, anchor="end", fill=MUTED, fit=300)
    return c.svg()


# -- service lifecycle -------------------------------------------------------------------


def lifecycle() -> str:
    """Created -> started (first resolution) -> running (refreshes) -> closed; and fork()."""
    c = Canvas(
        820,
        300,
        "The life of a HeadlessService",
        "Constructing a HeadlessService validates its arguments and does no I/O. start() (or "
        "entering a with block) resolves once, publishes the result and starts the refresher "
        "thread, which refreshes on schedule and on demand while pick() reads the last "
        "published snapshot. close() (or leaving the with block) stops and joins the thread; "
        "the last view stays readable. Services are fork-safe: in a forked child each one gets "
        "fresh locks and sockets and its own refresher, with the last good view carried over.",
    )
    y, h, w = 40, 92, 176
    xs = (20, 222, 424, 626)
    steps = (
        ("created", "HeadlessService(...)", "arguments checked", "no I/O, no thread"),
        ("started", "start() / with", "resolves once,", "publishes, notifies"),
        ("running", "pick(), connection()", "from memory; a thread", "keeps the view fresh"),
        ("closed", "close() / end of with", "thread stopped, joined", "last view readable"),
    )
    fills = (PAPER, PAPER, "#dfe3f6", SHADE)
    for (name, call, a, b), x, fill in zip(steps, xs, fills, strict=True):
        c.rect(x, y, w, h, fill=fill, stroke=ACCENT if name == "running" else INK)
        c.text(x + w / 2, y + 22, name, size=14, anchor="middle", bold=True, fit=w - 16)
        c.text(x + w / 2, y + 44, call, size=12, anchor="middle", mono=True, fit=w - 12)
        c.text(x + w / 2, y + 64, a, size=12, anchor="middle", fill=MUTED, fit=w - 16)
        c.text(x + w / 2, y + 81, b, size=12, anchor="middle", fill=MUTED, fit=w - 16)
    for x in xs[:-1]:
        c.arrow(x + w, y + h / 2, x + 202 - 2, y + h / 2)
    # The refresh loop on "running".
    rx = xs[2]
    loop_y = y + h + 34
    c.path(
        [(rx + 40, y + h), (rx + 40, loop_y), (rx + w - 40, loop_y), (rx + w - 40, y + h + 4)],
        stroke=ACCENT,
        arrow=True,
        width=1.4,
    )
    c.text(
        rx + w / 2, loop_y + 18, "refresh: on schedule (TTL),", size=12, anchor="middle", fill=INK, fit=w + 30
    )
    c.text(rx + w / 2, loop_y + 34, "early after a failure,", size=12, anchor="middle", fill=INK, fit=w + 30)
    c.text(rx + w / 2, loop_y + 50, "refresh() on request", size=12, anchor="middle", fill=INK, fit=w + 30)
    # Failures while starting.
    sx = xs[1]
    c.text(
        sx + w / 2, y + h + 22, "DNS down or no pod yet:", size=12, anchor="middle", fill=MUTED, fit=w + 20
    )
    c.text(
        sx + w / 2, y + h + 38, "an empty view, no error;", size=12, anchor="middle", fill=MUTED, fit=w + 20
    )
    c.text(sx + w / 2, y + h + 54, "wait_for() to block", size=12, anchor="middle", fill=MUTED, fit=w + 20)
    # fork()
    fy = 246
    c.rect(20, fy, 780, 44, fill="#fff6e5", stroke=WARN, dash="5 4")
    head = "os.fork() (gunicorn --preload, Celery, uWSGI):"
    c.text(36, fy + 18, head, size=12, bold=True, fill=WARN, fit=400)
    c.text(
        36 + text_width(head, 12, bold=True) + 8,
        fy + 18,
        "the child restarts each service's refresher at the fork.",
        size=12,
        fill=INK,
        fit=420,
    )
    c.text(
        36,
        fy + 35,
        "Fresh locks and sockets, the last view kept: pick() works at once; the parent is unaffected.",
        size=12,
        fill=INK,
        fit=750,
    )
    return c.svg()


# -- sticky ring -------------------------------------------------------------------------

_RING_SECTORS = 360
_SAMPLE_KEYS = 48
_MEASURE_KEYS = 10_000


def _sector_keys() -> list[str]:
    """A key whose ring position falls in each 1-degree sector (found by trying keys)."""
    found: dict[int, str] = {}
    for n in range(200_000):  # bounded; about 2,400 tries are needed
        key = f"k{n}"
        sector = key_hash(key) * _RING_SECTORS >> 32
        found.setdefault(sector, key)
        if len(found) == _RING_SECTORS:
            break
    return [found[s] for s in range(_RING_SECTORS)]


def sticky_ring() -> str:
    """Sticky's ring for web-0..2, then web-0..3: who owns which arc, which keys move."""
    three = hc.EndpointSet(statefulset_endpoints("web", "prod", ["10.0.0.1", "10.0.0.2", "10.0.0.3"]))
    four = hc.EndpointSet(
        statefulset_endpoints("web", "prod", ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])
    )
    sticky = hc.Sticky()
    sectors = _sector_keys()
    keys = [f"user-{n}" for n in range(_SAMPLE_KEYS)]
    measured = [f"user-{n}" for n in range(_MEASURE_KEYS)]
    before = {k: sticky.pick(three, k).ordinal for k in measured}
    after = {k: sticky.pick(four, k).ordinal for k in measured}
    moved = [k for k in measured if before[k] != after[k]]
    assert all(after[k] == 3 for k in moved), "Sticky moved a key between old pods"
    share_before = [sum(1 for k in measured if before[k] == o) / _MEASURE_KEYS for o in range(3)]
    share_after = [sum(1 for k in measured if after[k] == o) / _MEASURE_KEYS for o in range(4)]
    sample_moved = sum(1 for k in keys if before[k] != after[k])

    c = Canvas(
        820,
        404,
        "Sticky: the hash ring before and after a scale-up",
        f"Keys and pods are placed on a ring by hashing; a key belongs to the next pod point "
        f"clockwise. Scaling web from 3 to 4 pods gives web-3 small arcs taken from every other "
        f"pod: of {_MEASURE_KEYS:,} keys, {len(moved) / _MEASURE_KEYS:.1%} moved, all of them to "
        f"web-3; no key moved between web-0, web-1 and web-2.",
    )
    radius, band = 128, 22
    centres = ((190, 200), (560, 200))
    for (cx, cy), pods, owner_of, title in (
        (centres[0], three, before, "3 pods: web-0..2"),
        (centres[1], four, after, "after scale-up: web-0..3"),
    ):
        c.text(cx, 30, title, size=14, anchor="middle", bold=True, fit=300)
        for s, key in enumerate(sectors):
            ordinal = sticky.pick(pods, key).ordinal
            assert ordinal is not None
            c.wedge(
                cx,
                cy,
                radius - band,
                radius,
                s / _RING_SECTORS,
                (s + 1.04) / _RING_SECTORS,
                POD_COLOURS[ordinal],
            )
        for key in keys:
            turn = key_hash(key) / 2**32
            px = cx + (radius - band - 14) * math.sin(2 * math.pi * turn)
            py = cy - (radius - band - 14) * math.cos(2 * math.pi * turn)
            was, now = before[key], owner_of[key]
            moved_here = pods is four and was != now
            if moved_here:
                c.circle(px, py, 7.5, fill=PAPER, stroke=INK, width=1.6)
            c.circle(px, py, 4.5, fill=POD_COLOURS[now])
        c.text(cx, cy - 4, f"{len(keys)} keys", size=13, anchor="middle", fill=INK, fit=140)
        c.text(cx, cy + 14, "user-0 .. user-47", size=11, anchor="middle", fill=MUTED, fit=140)
    # arrow between the rings
    c.arrow(340, 200, 408, 200, stroke=ACCENT)
    c.text(374, 190, "+ web-3", size=12, anchor="middle", fill=ACCENT, fit=70)
    # legend and measured shares
    lx = 706
    c.text(lx, 74, "share of", size=12, bold=True, fit=110)
    c.text(lx, 90, f"{_MEASURE_KEYS:,} keys", size=12, bold=True, fit=110)
    for o in range(4):
        ly = 118 + o * 34
        c.rect(lx, ly - 11, 14, 14, fill=POD_COLOURS[o], stroke=POD_COLOURS[o], radius=2)
        c.text(lx + 20, ly, f"web-{o}", size=12, fit=80)
        was = f"{share_before[o]:.0%} -> " if o < 3 else "new -> "
        c.text(lx + 20, ly + 15, f"{was}{share_after[o]:.0%}", size=11, fill=MUTED, fit=92)
    c.circle(lx + 7, 270, 7.5, fill=PAPER, stroke=INK, width=1.6)
    c.circle(lx + 7, 270, 4.5, fill=POD_COLOURS[3])
    c.text(lx + 20, 274, "moved", size=12, fit=80)
    c.text(
        410,
        372,
        f"{sample_moved} of these {len(keys)} keys moved; of {_MEASURE_KEYS:,} keys, "
        f"{len(moved) / _MEASURE_KEYS:.1%} moved (1/4 expected), every one to web-3.",
        size=13,
        anchor="middle",
        fit=800,
    )
    c.text(
        410,
        392,
        "The outer ring shows which pod owns each degree of the ring (computed with Sticky).",
        size=12,
        anchor="middle",
        fill=MUTED,
        fit=800,
    )
    return c.svg()


# -- leader map --------------------------------------------------------------------------

KV_PARTITIONS = 6


def leader_map() -> str:
    """Partitions of the toy store kv.prod -> leader ordinals -> pods, with PartitionLeader."""
    pods = hc.EndpointSet(
        statefulset_endpoints("kv", "prod", ["10.244.1.5", "10.244.2.9", "10.244.3.4"], port=7000)
    )
    leaders = hc.PartitionLeader({p: p % 3 for p in range(KV_PARTITIONS)})
    routes = [(p, leaders.pick(pods, p)) for p in range(KV_PARTITIONS)]
    c = Canvas(
        820,
        360,
        "PartitionLeader: partitions to leader pods",
        "The leader map says which pod leads each partition (partition p is led by kv-(p mod 3) "
        "in this example); PartitionLeader turns it into the leader's endpoint in the current "
        "view, so a request for a partition goes straight to its leader. A pod that is not the "
        "leader answers NOT_LEADER with a hint; not_leader() applies the hint and re-reads the map.",
    )
    c.text(20, 28, "partition", size=13, bold=True, fit=100)
    c.text(170, 28, "leader map", size=13, bold=True, fit=120)
    c.text(430, 28, "pod in the view (DNS)", size=13, bold=True, fit=220)
    row_h, top = 40, 44
    pod_y = {0: 58, 1: 138, 2: 218}
    for p, ep in routes:
        y = top + p * row_h
        ordinal = ep.ordinal
        assert ordinal is not None
        c.box(
            20,
            y,
            110,
            30,
            [f"partition {p}"],
            fill=POD_TINTS[ordinal],
            stroke=POD_COLOURS[ordinal],
            size=12,
            first_bold=False,
        )
        c.text(170, y + 20, f"{p} \u2192 kv-{leaders.leader_of(p)}", size=12, mono=True, fit=110)
        c.path([(130, y + 15), (160, y + 15)], stroke=POD_COLOURS[ordinal])
        c.path(
            [(262, y + 15), (330, y + 15), (400, pod_y[ordinal] + 25), (428, pod_y[ordinal] + 25)],
            stroke=POD_COLOURS[ordinal],
            arrow=True,
            width=1.6,
        )
    for ordinal, y in pod_y.items():
        ep = pods.by_ordinal(ordinal)
        assert ep.hostname is not None
        c.box(
            430,
            y - 6,
            370,
            62,
            [ep.hostname.split(".")[0], ep.hostname, f"{ep.address}:{ep.port}"],
            fill=POD_TINTS[ordinal],
            stroke=POD_COLOURS[ordinal],
            size=13,
            mono_from=1,
        )
    # the correction loop
    y = 314
    c.rect(20, y - 18, 780, 50, fill=SHADE, stroke=RULE)
    c.text(34, y, "A stale map:", size=12, bold=True, fit=110)
    c.text(
        130,
        y,
        'PUT 1 \u2192 kv-0: "NOT_LEADER 1" \u2192 svc.not_leader(1, hint=1) \u2192 next PUT 1 \u2192 kv-1',
        size=12,
        mono=True,
        fit=660,
    )
    c.text(
        34,
        y + 20,
        "A leader missing from DNS raises LeaderNotAvailable at once: re-read the map, or use Fallback"
        " (any pod).",
        size=12,
        fill=MUTED,
        fit=770,
    )
    return c.svg()


# -- which strategy ----------------------------------------------------------------------


def which_strategy() -> str:
    """A decision tree from the request's needs to a strategy."""
    c = Canvas(
        820,
        406,
        "Which strategy when",
        "If a request must reach one particular pod: a partition's leader is PartitionLeader, "
        "writes to the primary are PrimaryReplica, the same key to the same pod is Sticky "
        "(bounded_load for hot keys). If any pod will do: LeastLoaded when requests or pods "
        "differ in cost, Random when many short-lived clients start at once, otherwise "
        "RoundRobin, the default. Fallback chains strategies: the next one answers when the "
        "first finds no pod.",
    )
    q_w, q_h = 200, 58
    s_x, s_w, s_h = 600, 204, 50
    fan = 40  # the edges fan out over this many px after a question, then run straight

    def question(x: float, y: float, lines: list[str]) -> None:
        c.box(x, y, q_w, q_h, lines, fill="#fff6e5", stroke=WARN, size=12, first_bold=False)

    q1 = (16, 150)
    question(*q1, ["Must the request reach", "one particular pod?"])
    q2 = (266, 52)
    question(*q2, ["Which pod?"])
    q3 = (266, 260)
    question(*q3, ["Do requests or pods", "differ in cost?"])
    answers = (  # question, edge label, top, strategy, what it does
        (q2, "a partition's", 10, "PartitionLeader", "that partition's leader"),
        (q2, "the primary", 70, "PrimaryReplica", "writes: primary, reads: rest"),
        (q2, "the key's", 130, "Sticky", "same key, same pod"),
        (q3, "yes", 212, "LeastLoaded", "fewest requests in flight"),
        (q3, "no, bursts of", 272, "Random", "no herd on the first pod"),
        (q3, "no", 332, "RoundRobin", "each in turn: the default"),
    )
    for (qx, qy), label, top, name, note in answers:
        c.box(s_x, top, s_w, s_h, [name, note], fill="#dfe3f6", stroke=ACCENT, size=13)
        y = top + s_h / 2
        c.path([(qx + q_w, qy + q_h / 2), (qx + q_w + fan, y), (s_x - 2, y)], arrow=True, width=1.4)
        c.text(qx + q_w + fan + 6, y - 6, label, size=11, fill=MUTED, fit=s_x - (qx + q_w + fan) - 10)
    c.text(266 + q_w + fan + 6, 272 + s_h / 2 + 14, "new clients", size=11, fill=MUTED, fit=80)
    # q1 -> q2 (yes) and q3 (no)
    x1 = q1[0] + q_w / 2
    c.path([(x1, q1[1]), (x1, q2[1] + q_h / 2), (q2[0] - 2, q2[1] + q_h / 2)], arrow=True, width=1.4)
    c.text(x1 + 8, q2[1] + q_h / 2 - 6, "yes", size=11, fill=MUTED, fit=60)
    c.path([(x1, q1[1] + q_h), (x1, q3[1] + q_h / 2), (q3[0] - 2, q3[1] + q_h / 2)], arrow=True, width=1.4)
    c.text(x1 + 8, q3[1] + q_h / 2 - 6, "no: any pod will do", size=11, fill=MUTED, fit=140)
    c.text(16, 360, "Sticky(bounded_load=1.25) spreads hot keys;", size=12, fill=INK, fit=420)
    c.text(16, 378, "Fallback(first, then): the next strategy answers", size=12, fill=INK, fit=420)
    c.text(16, 394, "when the first finds no pod (the leader, else any pod).", size=12, fill=INK, fit=420)
    return c.svg()


#: Every figure: its file name under docs/figures/ and the function drawing it.
FIGURES: dict[str, Callable[[], str]] = {
    "data-flow.svg": data_flow,
    "refresh-timeline.svg": refresh_timeline,
    "lifecycle.svg": lifecycle,
    "sticky-ring.svg": sticky_ring,
    "leader-map.svg": leader_map,
    "which-strategy.svg": which_strategy,
}


def draw_all() -> dict[str, str]:
    """Every figure's SVG text, by file name."""
    return {name: draw() for name, draw in FIGURES.items()}


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python docs/_figures/figures.py OUTDIR", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name, svg in draw_all().items():
        (out / name).write_text(svg, encoding="utf-8")
        print(out / name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
