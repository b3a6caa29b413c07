"""The layering rule: the sans-I/O core imports no shell and calls no I/O or clock.

Read from the source (AST), not by importing: every module the service core and the DNS
exchange reach through the package's own imports is a *core* module; none of them may be
a shell module, import an I/O or event-loop module, or call a socket, file, process or
clock function. Time reaches the core as an argument, bytes as values.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "headless_client"

#: Where the core starts: the service core, and every pure module named in design.md.
ROOTS = ["core", "exchange", "lookup", "records", "wire", "refresh", "health", "connect", "request", "events"]

#: Modules that do I/O, read the clock or the environment, or own threads.
SHELLS = {
    "service", "refresher", "resolver", "transport", "sockets", "environment", "interrupt", "clock",
    "cli", "demo", "kafka_helpers", "lookup_runner", "_settings", "__main__",
}
SHELL_PACKAGES = ("aio", "contrib", "testing")

#: Standard modules the core may not import at all.
FORBIDDEN_IMPORTS = {"asyncio", "selectors", "select", "subprocess", "os", "pathlib", "io", "time"}
#: The one exception: the fork hook module registers ``os.register_at_fork`` once, at
#: import; core objects with locks register with it. Registering a hook is not I/O.
IMPORT_EXCEPTIONS = {"_forksafe": {"os"}}
#: Calls the core may not make, by module (None: none of the module's functions). ``ssl``
#: may be imported for ``isinstance`` checks of errors, never called.
FORBIDDEN_CALLS: dict[str, set[str] | None] = {
    "socket": {"socket", "socketpair", "create_connection", "getaddrinfo", "gethostbyname", "fromfd"},
    "threading": {"Thread", "Timer"},
    "ssl": None,
}
FORBIDDEN_BUILTINS = {"open", "input", "print", "exec", "eval", "__import__"}


def module_path(name: str) -> Path:
    parts = name.split(".")
    candidate = PACKAGE.joinpath(*parts).with_suffix(".py")
    if candidate.exists():
        return candidate
    return PACKAGE.joinpath(*parts, "__init__.py")


def package_imports(name: str, tree: ast.Module) -> set[str]:
    """Modules of the package that *name* imports (dotted, relative to the package)."""
    base = name.split(".")[:-1] if module_path(name).name != "__init__.py" else name.split(".")
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            anchor = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            target = [*anchor, *(node.module.split(".") if node.module else [])]
            dotted = ".".join(target)
            if dotted and module_path(dotted).exists():
                found.add(dotted)
            for alias in node.names:
                sub = ".".join([*target, alias.name])
                if module_path(sub).exists():
                    found.add(sub)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("headless_client"):
            found.add(node.module.removeprefix("headless_client").lstrip("."))
    return {f for f in found if f}


def core_modules() -> dict[str, ast.Module]:
    seen: dict[str, ast.Module] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in seen or not module_path(name).exists():
            continue
        tree = ast.parse(module_path(name).read_text(encoding="utf-8"))
        seen[name] = tree
        todo.extend(package_imports(name, tree) - seen.keys())
    return seen


CORE = core_modules()


def test_the_core_is_found() -> None:
    """The walk finds the service core, the exchange and the strategies."""
    assert {"core", "connect", "refresh", "health", "wire", "lookup", "strategies.routing"} <= CORE.keys()


@pytest.mark.parametrize("name", sorted(CORE))
def test_core_module_imports_no_shell(name: str) -> None:
    """A core module reaches no shell module and no I/O module."""
    tree = CORE[name]
    for dotted in package_imports(name, tree):
        top = dotted.split(".")[0]
        assert top not in SHELLS and top not in SHELL_PACKAGES, f"{name} imports the shell module {dotted}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                allowed = IMPORT_EXCEPTIONS.get(name, set())
                assert top not in FORBIDDEN_IMPORTS or top in allowed, f"{name} imports {alias.name}"
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            assert node.module.split(".")[0] not in FORBIDDEN_IMPORTS, f"{name} imports from {node.module}"


@pytest.mark.parametrize("name", sorted(CORE))
def test_core_module_calls_no_io_or_clock(name: str) -> None:
    """A core module calls no socket, thread, file or clock function."""
    for node in ast.walk(CORE[name]):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name):
            assert func.id not in FORBIDDEN_BUILTINS, f"{name} calls {func.id}()"
        elif isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            banned = FORBIDDEN_CALLS.get(func.value.id, set())
            assert banned is not None and func.attr not in banned, f"{name} calls {func.value.id}.{func.attr}()"
            assert not (func.value.id == "time" or func.attr in {"monotonic", "perf_counter", "sleep"}), (
                f"{name} reads the clock: {func.value.id}.{func.attr}()"
            )


def test_the_check_catches_a_violation(tmp_path: Path) -> None:
    """The checks fail on a module that imports the shell and reads the clock."""
    bad = ast.parse("import time\nfrom .service import HeadlessService\nx = time.monotonic()\n")
    assert "service" in package_imports("core", bad)
    calls = [n for n in ast.walk(bad) if isinstance(n, ast.Call)]
    assert any(isinstance(c.func, ast.Attribute) and c.func.attr == "monotonic" for c in calls)
