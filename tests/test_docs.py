"""The docs run: every Python block of docs/**/*.md and README.md is executed, so they cannot rot.

Conventions for whoever writes a page
=====================================

``python`` blocks run.
    The ``python`` blocks of a page run in order in one namespace, like a doctest session:
    what a block defines is there in the next ones. They run "in a pod of namespace
    ``prod``" of a fake cluster (below), so write them as in a real pod: ``hc.Resolver()``
    with no nameserver, ``HeadlessService("web.prod", port="http")`` without a resolver.
    Bound every loop and wait (``range``, timeouts; a page gets ``PAGE_TIMEOUT`` seconds),
    and close what you open (``with``). Whatever a page leaves in its namespace is closed
    after its last block (services, sockets, clients); a refresher thread still running
    then fails the page, and so does an unclosed socket (ResourceWarning is an error).

``py`` blocks with a title are shown, not run.
    For code that needs what the tests cannot give (a real cluster's API server and
    mounted service account). Prefer an excerpt of a program of ``examples/`` (below): those
    run, against real servers when they need them. Write ```py title="why"``` : the title
    is shown above the block on the site and must say why it cannot run. A ``py`` block
    without a title, and any other Python-ish info string (``python3``, ``pycon``, ...),
    fails ``test_every_python_block_runs_or_is_marked``.

Complete programs are included from ``examples/``, not copied.
    A block holding only ``--8<-- "examples/<program>.py"`` (pymdownx.snippets) shows that
    file on the site: ```py title="examples/<program>.py"```; ``"examples/<program>.py:name"``
    lines show the sections the file marks ``# --8<-- [start:name]`` ... ``[end:name]``, for
    an excerpt of a program the tests run. It is not run here;
    examples/test_examples.py runs every program of ``examples/`` (on the fake cluster, or
    names the integration test that runs it against real servers). Excerpts of the
    library's own source are included the same way (``"headless_client/x.py:name"``, the
    markers as comments in the module), titled with the module's path.

``console`` transcripts run too; ``sh`` blocks do not.
    Every ``$ headless-client ...`` (or ``$ python -m headless_client ...``) line of a
    ``console`` block runs through :func:`headless_client.cli.main` in the same
    environment. The expected exit code follows the transcript: 2 when it shows
    ``headless-client: error: ...``, 1 when it shows ``headless-client: SomeError: ...``
    (either way the first stderr line must be exactly the one shown), else 0. Other output
    is not compared (addresses differ). A ``watch`` runs for 0.3 s (its ``--duration`` is
    set to that, or added). ``sh`` blocks are synopses and commands for a shell: not run.

Pages that define ``test_*`` functions
    are also run as a pytest module (pytester, in process, ``-W error``), where the
    ``headless_client.testing`` plugin's fixtures are available: every test must pass.

The environment of a page
=========================

A fresh :class:`~headless_client.testing.FakeClusterDNS` (``cluster.local``, TTL 1 s) per
page, serving (``populate``):

=====================================  ==========  ===============  =============================
service (namespace)                    pods        named port       served
=====================================  ==========  ===============  =============================
``web.prod``                           web-0..2    ``http``         TCP: greet with the pod name,
                                                                    answer every line with it
``api.prod``                           api-0..2    ``http``         HTTP/1.1: the body is the pod
                                                                    name (header ``X-Pod``)
``postgres.prod``                      postgres-   ``tcp-           TCP, as ``web``
                                       0..2        postgresql``
``kv.prod``                            kv-0..2     ``kv``           TCP: a toy partitioned store,
                                                                    see ``kv_reply``
``kafka-headless.data``                kafka-0..2  ``tcp-client``   DNS only, port 9092
``memcached.prod``                     3 without   ``memcache``     DNS only, port 11211 (dashed-
                                       hostnames                    address names, no ordinals)
=====================================  ==========  ===============  =============================

* The pod's context: a :class:`~headless_client.Resolver` built without nameservers reads
  the pod's resolv.conf through ``kubernetes_context()``; that function (in
  ``headless_client.resolver`` and at the package root) is replaced to return the fake
  cluster's nameserver, namespace ``prod`` and domain ``cluster.local``. No other
  behaviour is changed.
* The example nameservers ``"10.96.0.10"``, ``"10.96.0.10:53"`` (kube-dns's usual ClusterIP)
  and ``"127.0.0.1:5353"``, as string literals in a block or as arguments in a transcript,
  are replaced with the fake cluster's address. Any other nameserver fails the page: the
  tests only talk to loopback (a guard wraps ``BaseResolver.__init__`` to check).
"""

from __future__ import annotations

import ast
import functools
import gc
import io
import ipaddress
import re
import shlex
import socket
import sys
import threading
import tokenize
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

import headless_client
import headless_client.resolver
from headless_client import BaseResolver, HeadlessService
from headless_client.cli import main as cli_main
from headless_client.resolver import KubernetesContext
from headless_client.testing import FakeClusterDNS, FakePod
from headless_client.wire import parse_nameserver

try:
    import httpx
except ImportError:  # pragma: no cover - httpx is a test dependency
    httpx = None  # type: ignore[assignment]

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md"]
EXAMPLE_NAMESERVERS = frozenset({"10.96.0.10", "10.96.0.10:53", "127.0.0.1:5353"})
POD_NAMESPACE = "prod"
PAGE_TIMEOUT = 60.0
WATCH_DURATION = "0.3"
REFRESHER_PREFIX = "headless-client-refresh["

# The toy partitioned store of kv.prod: partition p is led by pod kv-(p % 3).
KV_PARTITIONS = 6
KV_LEADERS = {p: p % 3 for p in range(KV_PARTITIONS)}


# --------------------------------------------------------------------------------------------
# Reading the pages
# --------------------------------------------------------------------------------------------

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_TITLE = re.compile(r'title="(?P<title>[^"]*)"')
_SNIPPET = re.compile(r'-{1,}8<-{1,} *"(?P<path>[^":]+)(?::(?P<section>[a-z][-_0-9a-z]*))?"')


@dataclass(frozen=True)
class Block:
    """One fenced code block."""

    path: Path
    line: int  # 1-based line of its first code line
    info: str
    lang: str
    title: str | None
    code: str

    @property
    def where(self) -> str:
        return f"{_page_id(self.path)}:{self.line - 1}"

    @property
    def pythonish(self) -> bool:
        lang = self.lang.lower()
        return lang in {"py", "py3", "pycon", "pyi", "pyodide", "ipython", "ipython3"} or (
            lang.startswith("python")
        )

    @property
    def runs(self) -> bool:
        return self.lang == "python"

    @property
    def shown_only(self) -> bool:
        return self.lang == "py" and bool(self.title and self.title.strip()) and self.included is None

    @property
    def included(self) -> str | None:
        """The file a block of snippets only includes (``--8<-- "examples/x.py"``, or sections
        of it: ``"examples/x.py:name"``), else None."""
        found = [_SNIPPET.fullmatch(line.strip()) for line in self.code.splitlines() if line.strip()]
        files = {match["path"] for match in found if match}
        return files.pop() if found and all(found) and len(files) == 1 else None


def _language(info: str) -> tuple[str, str | None]:
    title = _TITLE.search(info)
    if info.startswith("{"):  # ``` { .python .foo title="..." }
        classes = re.findall(r"\.([\w+-]+)", info)
        return (classes[0] if classes else ""), (title["title"] if title else None)
    return (info.split()[0] if info else ""), (title["title"] if title else None)


def read_blocks(path: Path) -> list[Block]:
    """The fenced blocks of a Markdown page, indented ones (in lists, admonitions) included."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        match = _FENCE.match(lines[i])
        if match is None or (match["fence"][0] == "`" and "`" in match["info"]):
            i += 1
            continue
        indent, fence, info = match["indent"], match["fence"], match["info"].strip()
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not closing.match(lines[j]):
            line = lines[j]
            body.append(line[len(indent) :] if line.startswith(indent) else line.lstrip())
            j += 1
        lang, title = _language(info)
        found.append(Block(path, i + 2, info, lang, title, "\n".join(body) + "\n"))
        i = j + 1
    return found


BLOCKS = {path: read_blocks(path) for path in PAGES}


def _page_id(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:  # a page outside the repository (the self-test's)
        return str(path)


def _runnable_pages() -> list[Path]:
    return [
        path
        for path, blocks in BLOCKS.items()
        if any(b.runs for b in blocks) or any(_commands(b) for b in blocks if b.lang == "console")
    ]


# --------------------------------------------------------------------------------------------
# The environment
# --------------------------------------------------------------------------------------------


def kv_reply(pod: FakePod, request: str) -> str | None:
    """The pods' replies: their name, except kv pods, which speak a toy partitioned protocol.

    ``METADATA`` -> ``"0=0 1=1 2=2 3=0 ..."`` (partition=leader ordinal, any pod answers);
    ``PUT <partition> <value>`` / ``GET <partition> <key>`` -> ``OK ...`` from the leader,
    ``NOT_LEADER <leader ordinal>`` from the others.
    """
    if pod.service != "kv":
        return None
    verb, *args = request.split() or [""]
    if verb == "METADATA":
        return " ".join(f"{p}={o}" for p, o in KV_LEADERS.items())
    if verb in ("GET", "PUT") and args and args[0].isdigit() and int(args[0]) in KV_LEADERS:
        leader = KV_LEADERS[int(args[0])]
        if pod.ordinal != leader:
            return f"NOT_LEADER {leader}"
        return f"OK {pod.name} {verb} {' '.join(args)}"
    return f"ERROR unknown request {request!r}"


def populate(cluster: FakeClusterDNS) -> None:
    """The services every page can use (see the module docstring)."""
    cluster.add_statefulset("web", "prod", 3, serve="tcp")
    cluster.add_statefulset("api", "prod", 3, serve="http")
    cluster.add_statefulset("postgres", "prod", 3, port_name="tcp-postgresql", serve="tcp")
    cluster.add_statefulset("kv", "prod", 3, port_name="kv", serve="tcp")
    cluster.add_statefulset("kafka", "data", 3, service="kafka-headless", port_name="tcp-client", port=9092)
    cluster.add_service("memcached", "prod", port_name="memcache", port=11211)
    for _ in range(3):
        cluster.add_endpoint("memcached", "prod")
    cluster.set_handler(kv_reply)


@pytest.fixture
def docs_cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClusterDNS]:
    """A populated fake cluster, and ``kubernetes_context()`` answering as in one of its pods."""
    with FakeClusterDNS() as cluster:
        populate(cluster)
        context = KubernetesContext((parse_nameserver(cluster.nameserver),), POD_NAMESPACE, "cluster.local")

        def pod_context(*args: object, **kwargs: object) -> KubernetesContext:
            return context

        monkeypatch.setattr(headless_client.resolver, "kubernetes_context", pod_context)
        monkeypatch.setattr(headless_client, "kubernetes_context", pod_context)
        monkeypatch.setattr(BaseResolver, "__init__", _loopback_only(BaseResolver.__init__))
        yield cluster


def _loopback_only(init: Callable[..., None]) -> Callable[..., None]:
    """A guard, not a fake: a resolver the docs build must ask a loopback nameserver."""

    @functools.wraps(init)
    def guarded(self: BaseResolver, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        away = [str(ns) for ns in self.nameservers if not ipaddress.ip_address(ns.host).is_loopback]
        if away:
            raise AssertionError(
                f"a docs example would ask {away}: the tests only talk to loopback; use one of "
                f"the example nameservers {sorted(EXAMPLE_NAMESERVERS)} or no nameserver at all"
            )

    return guarded


def substitute_nameservers(code: str, nameserver: str) -> str:
    """*code* with every string literal naming an example nameserver replaced by *nameserver*."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return code  # compile() reports it with the right line
    lines = code.splitlines(keepends=True)
    for tok in reversed(tokens):
        if tok.type != tokenize.STRING or tok.start[0] != tok.end[0]:
            continue
        try:
            value = ast.literal_eval(tok.string)
        except (ValueError, SyntaxError):
            continue
        if value in EXAMPLE_NAMESERVERS:
            row, (start, end) = tok.start[0] - 1, (tok.start[1], tok.end[1])
            lines[row] = lines[row][:start] + repr(nameserver) + lines[row][end:]
    return "".join(lines)


def run_bounded(what: str, fn: Callable[[], Any], timeout: float = PAGE_TIMEOUT) -> Any:
    """``fn()`` on a worker thread; fail (instead of hanging the suite) past *timeout*."""
    outcome: list[tuple[bool, Any]] = []

    def target() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as exc:
            outcome.append((False, exc))

    worker = threading.Thread(target=target, name=f"docs[{what}]", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        pytest.fail(f"{what} did not finish within {timeout:g}s: an unbounded loop or wait?", pytrace=False)
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def close_leftovers(namespace: dict[str, Any]) -> None:
    """Close what a page left open in its namespace, then drop the namespace."""
    closable: tuple[type, ...] = (HeadlessService, FakeClusterDNS, socket.socket)
    if httpx is not None:
        closable += (httpx.Client, httpx.BaseTransport)
    for value in list(namespace.values()):
        if isinstance(value, closable):
            value.close()
    namespace.clear()
    gc.collect()  # an unclosed socket's ResourceWarning surfaces here, in this test


def refreshers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith(REFRESHER_PREFIX)}


# --------------------------------------------------------------------------------------------
# Running python blocks
# --------------------------------------------------------------------------------------------


def run_python(path: Path, nameserver: str) -> tuple[str, list[str]]:
    """Run the page's python blocks in one module namespace; returns (its source, test names)."""
    blocks = [b for b in BLOCKS[path] if b.runs]
    name = "docs_" + re.sub(r"\W", "_", path.stem)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    namespace = module.__dict__
    sources: list[str] = []
    sys.modules[name] = module  # dataclasses, typing and pickle look the module up
    try:
        for block in blocks:
            code = substitute_nameservers(block.code, nameserver)
            sources.append(f"# {block.where}\n{code}")
            failure = None
            try:
                compiled = compile("\n" * (block.line - 1) + code, str(path), "exec")
                exec(compiled, namespace)
            except BaseException as exc:
                failure = "".join(traceback.format_exception(exc))
            if failure is not None:
                pytest.fail(f"the python block at {block.where} raised:\n{failure}", pytrace=False)
        tests = [
            n for n, v in namespace.items()
            if n.startswith("test_") and isinstance(v, types.FunctionType) and v.__module__ == name
        ]
        return "\n\n".join(sources), tests
    finally:
        close_leftovers(namespace)
        sys.modules.pop(name, None)


# --------------------------------------------------------------------------------------------
# Running console transcripts
# --------------------------------------------------------------------------------------------

_PROMPT = re.compile(r"^\$ (?:headless-client|python3? -m headless_client)(?=\s|$)(?P<args>.*)$")


@dataclass(frozen=True)
class Command:
    where: str
    argv: list[str]
    output: list[str]


def _commands(block: Block) -> list[Command]:
    commands: list[Command] = []
    lines = block.code.splitlines()
    i = 0
    while i < len(lines):
        match = _PROMPT.match(lines[i])
        if match is None:
            i += 1
            continue
        where = f"{_page_id(block.path)}:{block.line + i}"
        text = match["args"]
        while text.endswith("\\") and i + 1 < len(lines):  # continuation lines
            i += 1
            text = text[:-1] + " " + lines[i]
        i += 1
        output: list[str] = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        commands.append(Command(where, shlex.split(text), output))
    return commands


def run_command(command: Command, nameserver: str) -> None:
    argv = [nameserver if arg in EXAMPLE_NAMESERVERS else arg for arg in command.argv]
    if argv and argv[0] == "watch":  # watch for a moment, whatever the transcript says
        if "--duration" in argv[:-1]:
            argv[argv.index("--duration") + 1] = WATCH_DURATION
        else:
            argv += ["--duration", WATCH_DURATION]
    errors = [line for line in command.output if line.startswith("headless-client: ")]
    expected = 0
    if errors:
        expected = 2 if errors[0].startswith("headless-client: error:") else 1
    out, err = io.StringIO(), io.StringIO()
    code = cli_main(argv, out=out, err=err)
    shown = f"$ headless-client {shlex.join(argv)}\n{out.getvalue()}{err.getvalue()}"
    assert code == expected, f"{command.where}: exit code {code}, the docs show {expected}\n{shown}"
    if errors:
        got = err.getvalue().splitlines()[:1]
        assert got == errors[:1], f"{command.where}: stderr differs from the docs\n{shown}"


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _runnable_pages(), ids=_page_id)
def test_page_runs(path: Path, docs_cluster: FakeClusterDNS, request: pytest.FixtureRequest) -> None:
    before = refreshers()
    nameserver = docs_cluster.nameserver
    source, tests = run_bounded(_page_id(path), lambda: run_python(path, nameserver))
    left = refreshers() - before
    if left:  # stop them (they would outlive the fake cluster), then fail
        for obj in gc.get_objects():
            if isinstance(obj, HeadlessService) and not obj.closed:
                obj.close()
    assert not left, f"{_page_id(path)} left refresher threads running: {sorted(t.name for t in left)}"

    for block in BLOCKS[path]:
        if block.lang == "console":
            for command in _commands(block):
                run_bounded(command.where, lambda c=command: run_command(c, nameserver))

    if tests:
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        pytester.makepyfile(**{"test_docs_" + re.sub(r"\W", "_", path.stem): source})
        result = pytester.runpytest_inprocess("-W", "error", "-p", "no:cacheprovider", "-q")
        result.assert_outcomes(passed=len(tests))


def test_every_python_block_runs_or_is_marked() -> None:
    wrong = [
        f"{b.where}: ```{b.info}``` (run it as ```python, or mark it ```py title=\"why it cannot run\"```)"
        for blocks in BLOCKS.values()
        for b in blocks
        if b.pythonish and not (b.runs or b.shown_only or b.included)
    ]
    assert not wrong, "Python blocks neither run nor marked:\n" + "\n".join(wrong)


def test_most_python_blocks_run() -> None:
    python = [b for blocks in BLOCKS.values() for b in blocks if b.pythonish]
    shown = [b.where for b in python if b.shown_only]
    assert python, "no python block found: is the docs directory there?"
    assert len(shown) * 4 <= len(python), f"more than a quarter of the python blocks are not run: {shown}"


def test_included_programs_are_examples() -> None:
    """Every snippet a page includes is a program of examples/ (which its tests all run) or
    a module of the library (which the test suite runs), shown as a ``py`` block titled with
    its path."""
    included = [b for blocks in BLOCKS.values() for b in blocks if b.included]
    assert included, "no page includes a program of examples/"
    examples = {f"examples/{p.name}" for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("test_")}
    library = {str(p.relative_to(ROOT)) for p in (ROOT / "headless_client").rglob("*.py")}
    wrong = [f"{b.where}: {b.included} ({b.info})" for b in included
             if b.included not in examples | library or b.lang != "py"
             or not (b.title or "").startswith(b.included)]
    assert not wrong, ("included files that are not examples/ programs or library modules, or blocks "
                       "not titled with them:\n" + "\n".join(wrong))


def test_included_sections_are_marked() -> None:
    """Every section a page includes (``"file.py:name"``) is marked once in that file,
    start before end, and holds code."""
    wrong = []
    for blocks in BLOCKS.values():
        for b in blocks:
            if not b.included:
                continue
            for match in filter(None, (_SNIPPET.fullmatch(line.strip()) for line in b.code.splitlines())):
                if match["section"] is None:
                    continue
                lines = (ROOT / match["path"]).read_text(encoding="utf-8").splitlines()
                starts = [i for i, line in enumerate(lines) if line.strip() == f"# --8<-- [start:{match['section']}]"]
                ends = [i for i, line in enumerate(lines) if line.strip() == f"# --8<-- [end:{match['section']}]"]
                if len(starts) != 1 or len(ends) != 1 or not any(
                        line.strip() for line in lines[starts[0] + 1:ends[0]]):
                    wrong.append(f"{b.where}: {match['path']}:{match['section']}")
    assert not wrong, "included sections not marked once (start, code, end):\n" + "\n".join(wrong)


def test_every_page_is_in_the_nav() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))

    def entries(nav: object) -> Iterator[str]:
        if isinstance(nav, str):
            yield nav
        elif isinstance(nav, list):
            for item in nav:
                yield from entries(item)
        elif isinstance(nav, dict):
            for value in nav.values():
                yield from entries(value)

    in_nav = set(entries(config["nav"]))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages - in_nav == set(), "pages missing from the nav of mkdocs.yml"


def test_the_conventions_hold_on_a_sample(tmp_path: Path) -> None:
    """The block reader and the nameserver substitution, on a page written for the purpose."""
    page = tmp_path / "sample.md"
    page.write_text(
        "# Sample\n\n"
        "```python\nr = Resolver([\"127.0.0.1:5353\"], note='10.96.0.10 stays')\n```\n\n"
        "- a list item\n\n"
        "    ```py title=\"needs a broker\"\n    producer.send()\n    ```\n\n"
        "```pycon\n>>> 1\n```\n\n"
        "```py title=\"examples/round_robin.py\"\n--8<-- \"examples/round_robin.py\"\n```\n\n"
        "```py title=\"examples/x.py\"\n--8<-- \"examples/x.py:a\"\n--8<-- \"examples/x.py:b\"\n```\n\n"
        "````markdown\n```python\nnot a block of its own\n```\n````\n\n"
        "```console\n$ headless-client resolve web.prod \\\n    --port http\n"
        "headless-client: error: bad\n$ kubectl get pods\n```\n",
        encoding="utf-8",
    )
    blocks = read_blocks(page)
    assert [(b.lang, b.runs, b.shown_only, b.pythonish) for b in blocks] == [
        ("python", True, False, True),
        ("py", False, True, True),
        ("pycon", False, False, True),
        ("py", False, False, True),
        ("py", False, False, True),
        ("markdown", False, False, False),
        ("console", False, False, False),
    ]
    assert blocks[0].line == 4
    assert blocks[1].code == "producer.send()\n"
    assert blocks[3].included == "examples/round_robin.py" and blocks[1].included is None
    assert blocks[4].included == "examples/x.py"
    code = substitute_nameservers(blocks[0].code, "127.0.0.1:40000")
    assert code == "r = Resolver(['127.0.0.1:40000'], note='10.96.0.10 stays')\n"
    (command,) = _commands(blocks[6])
    assert command.argv == ["resolve", "web.prod", "--port", "http"]
    assert command.output == ["headless-client: error: bad"]
