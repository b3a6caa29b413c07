"""Tests for the package's lazy exports (headless_client/__init__.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import headless_client


def _fresh_interpreter(code: str) -> object:
    """Run *code* in a new interpreter (so nothing is imported yet) and return what it prints as JSON."""
    # The package under test, not whichever copy the interpreter would find first.
    root = os.path.dirname(os.path.dirname(os.path.abspath(headless_client.__file__)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout)


def test_plain_import_loads_neither_asyncio_nor_tenacity_nor_any_submodule() -> None:
    """``import headless_client`` alone loads no submodule: no asyncio, tenacity, dnspython, ssl, logging."""
    loaded = _fresh_interpreter(
        """
        import json, sys
        import headless_client
        print(json.dumps(sorted(sys.modules)))
        """
    )
    assert isinstance(loaded, list)
    assert "headless_client" in loaded
    heavy = {"asyncio", "tenacity", "dns", "ssl", "logging", "typing"}
    assert heavy.isdisjoint(loaded)
    assert [name for name in loaded if name.startswith("headless_client.")] == []


def test_a_sync_service_does_not_load_asyncio_or_tenacity() -> None:
    """Importing HeadlessService loads what a sync service needs, not asyncio nor tenacity."""
    loaded = _fresh_interpreter(
        """
        import json, sys
        from headless_client import HeadlessService, RoundRobin
        print(json.dumps(sorted(sys.modules)))
        """
    )
    assert isinstance(loaded, list)
    assert "headless_client.service" in loaded
    assert {"asyncio", "tenacity"}.isdisjoint(loaded)


def test_every_name_in_all_resolves_in_a_fresh_interpreter() -> None:
    """Each name of ``__all__`` resolves on first use, to the object its defining module holds."""
    found = _fresh_interpreter(
        """
        import json
        import headless_client
        print(json.dumps({
            name: type(getattr(headless_client, name)).__name__ for name in headless_client.__all__
        }))
        """
    )
    assert isinstance(found, dict)
    assert sorted(found) == sorted(headless_client.__all__)
    assert found["errors"] == "module"
    assert found["HeadlessService"] == "type"
    assert found["pod_fqdn"] == "function"


def test_lazy_names_are_the_objects_of_their_modules() -> None:
    """A lazily loaded name is the very object its module defines (no copy, no wrapper)."""
    from headless_client import errors, service, strategies
    from headless_client.aio import AsyncHeadlessService

    assert headless_client.HeadlessService is service.HeadlessService
    assert headless_client.AsyncHeadlessService is AsyncHeadlessService
    assert headless_client.Sticky is strategies.Sticky
    assert headless_client.errors is errors
    assert headless_client.NoEndpointsAvailable is errors.NoEndpointsAvailable


def test_dir_lists_every_export() -> None:
    """``dir(headless_client)`` shows every public name, loaded or not."""
    assert set(headless_client.__all__) <= set(dir(headless_client))


def test_an_unknown_name_raises_attribute_error_naming_it() -> None:
    """A name the package does not export raises AttributeError with the name in the message."""
    with pytest.raises(AttributeError, match="no_such_thing"):
        _ = headless_client.no_such_thing  # type: ignore[attr-defined]
    with pytest.raises(ImportError, match="no_such_thing"):
        exec("from headless_client import no_such_thing", {})


@pytest.mark.parametrize(
    "statement",
    [
        "import headless_client.transport",
        "import headless_client.resolver",
        "from headless_client.service import HeadlessService",
        "from headless_client import HeadlessService",
        "import logging, headless_client",
    ],
)
def test_the_package_logger_gets_one_null_handler_once_logging_is_loaded(statement: str) -> None:
    """However a module that logs is loaded, the package's logger then has exactly one NullHandler."""
    handlers = _fresh_interpreter(
        f"""
        import json
        {statement}
        import logging
        print(json.dumps([type(h).__name__ for h in logging.getLogger("headless_client").handlers]))
        """
    )
    assert handlers == ["NullHandler"]


def test_a_module_without_logging_leaves_logging_unloaded() -> None:
    """Loading a name whose module does not log loads no logging (the handler waits for it)."""
    loaded = _fresh_interpreter(
        """
        import json, sys
        from headless_client import Request
        print(json.dumps(["logging" in sys.modules, type(sys.modules["headless_client"]).__name__]))
        """
    )
    assert loaded == [False, "_Package"]
