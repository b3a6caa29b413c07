"""The generated blocking twins match their asyncio sources (``scripts/unasync.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "unasync.py"


@pytest.fixture(name="unasync", scope="module")
def _unasync() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_twins_match_their_sources(unasync, capsys):
    """Every committed blocking twin is exactly what its asyncio source generates."""
    assert unasync.main(["--check"]) == 0, capsys.readouterr().err


def test_a_drifted_twin_fails_the_check(unasync, tmp_path, monkeypatch, capsys):
    """An edit made to a generated twin (not to its source) is reported as drift."""
    source, target, substitutions = unasync.PAIRS[0]
    (tmp_path / Path(source).parent).mkdir(parents=True)
    (tmp_path / Path(target).parent).mkdir(parents=True, exist_ok=True)
    (tmp_path / source).write_text((unasync.ROOT / source).read_text(encoding="utf-8"), encoding="utf-8")
    edited = (unasync.ROOT / target).read_text(encoding="utf-8") + "# a hand edit\n"
    (tmp_path / target).write_text(edited, encoding="utf-8")
    monkeypatch.setattr(unasync, "ROOT", tmp_path)
    monkeypatch.setattr(unasync, "PAIRS", ((source, target, substitutions),))
    assert unasync.main(["--check"]) == 1
    assert f"{target} differs" in capsys.readouterr().err
    assert (tmp_path / target).read_text(encoding="utf-8") == edited  # --check writes nothing


def test_the_sources_are_the_asyncio_side(unasync):
    """Each source is async code and its twin has none left (the substitutions worked)."""
    for source, target, _ in unasync.PAIRS:
        assert "async def" in (unasync.ROOT / source).read_text(encoding="utf-8"), source
        generated = (unasync.ROOT / target).read_text(encoding="utf-8")
        assert "async def" not in generated and "await " not in generated, target
