"""The CLI's argument handling: bad input is one line on stderr and exit 2, a DNS failure
exit 1, all before (or without) any real DNS server. Commands against BIND9 are in
tests/integration/test_cli.py."""

from __future__ import annotations

import io
import socket

import pytest

from headless_client.cli import build_parser, main


@pytest.fixture(scope="module")
def closed_port() -> str:
    """``127.0.0.1:PORT`` where nothing listens on UDP or TCP: queries are refused at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"127.0.0.1:{port}"


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def assert_usage_error(argv: list[str], *needles: str) -> str:
    code, out, err = run(argv)
    assert code == 2, (code, out, err)
    assert out == ""
    assert err.count("\n") == 1, err  # one line, no traceback
    assert err.startswith("headless-client: error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_parser_has_the_subcommands() -> None:
    parser = build_parser()
    help_text = parser.format_help()
    for command in ("resolve", "watch", "pick"):
        assert command in help_text


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watch", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--min-refresh", "--max-refresh", "--duration", "--json", "--nameserver"):
        assert option in text
    assert main(["pick", "--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--strategy", "--key", "-c", "round-robin", "least-loaded"):
        assert option in text


def test_no_command_is_a_usage_error() -> None:
    assert_usage_error([])


# -- watch ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--min-refresh", "abc"], ["--min-refresh", "'abc'"]),
        (["--min-refresh", "-1"], ["--min-refresh", "-1"]),
        (["--min-refresh", "0"], ["--min-refresh", "0"]),
        (["--min-refresh", "nan"], ["--min-refresh", "nan"]),
        (["--max-refresh", "inf"], ["--max-refresh", "inf"]),
        (["--min-refresh", "5", "--max-refresh", "2"], ["--max-refresh (2)", "--min-refresh (5)"]),
        (["--duration", "0"], ["--duration", "0"]),
        (["--duration", "-3"], ["--duration", "-3"]),
        (["--duration", "soon"], ["--duration", "'soon'"]),
        (["--empty-grace", "-1"], ["--empty-grace", "-1"]),
        (["--port", "70000"], ["70000"]),
        (["--timeout", "0"], ["timeout", "0"]),
        (["--bogus"], ["--bogus"]),
    ],
)
def test_watch_bad_options(closed_port: str, extra: list[str], needles: list[str]) -> None:
    assert_usage_error(["watch", "web.prod", "--nameserver", closed_port, *extra], *needles)


def test_watch_bad_service_name_and_nameserver(closed_port: str) -> None:
    assert_usage_error(["watch", "Bad_Name.prod", "--nameserver", closed_port], "Bad_Name")
    assert_usage_error(["watch", "web.prod", "--nameserver", "not-an-ip:x"], "not-an-ip")
    assert_usage_error(["watch"], "service")


def test_watch_dns_failure_exits_1(closed_port: str) -> None:
    code, out, err = run(["watch", "web.prod", "-p", "http", "--nameserver", closed_port, "--timeout", "0.5"])
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("headless-client: ResolutionError: ")
    assert closed_port in err


# -- pick ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "needles"),
    [
        (["--strategy", "fastest"], ["'fastest'", "round-robin"]),
        (["-c", "0"], ["--count", "0"]),
        (["-c", "-2"], ["--count", "-2"]),
        (["-c", "many"], ["'many'"]),
        (["--count", "2000000"], ["2000000"]),
        (["--strategy", "sticky"], ["sticky", "--key"]),
        (["--strategy", "sticky", "--key"], ["--key"]),
        (["--port", "99999"], ["99999"]),
    ],
)
def test_pick_bad_options(closed_port: str, extra: list[str], needles: list[str]) -> None:
    assert_usage_error(["pick", "web.prod", "--nameserver", closed_port, *extra], *needles)


def test_pick_takes_n_as_the_count_not_the_namespace(closed_port: str) -> None:
    """-n is the count for pick (the namespace is --namespace there): a namespace given
    as -n fails loudly instead of being used as one."""
    assert_usage_error(["pick", "web", "-c", "prod", "--nameserver", closed_port], "'prod'")


def test_pick_dns_failure_exits_1(closed_port: str) -> None:
    code, out, err = run(["pick", "web.prod", "--nameserver", closed_port, "--timeout", "0.5", "-c", "3"])
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "ResolutionError" in err
    assert closed_port in err


def test_resolve_dns_failure_exits_1(closed_port: str) -> None:
    code, _, err = run(["resolve", "web.prod", "--nameserver", closed_port, "--timeout", "0.5"])
    assert code == 1
    assert closed_port in err
