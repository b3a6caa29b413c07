"""The error every integration raises when its optional dependency is missing, worded once."""

from __future__ import annotations

__all__ = ["missing_extra"]


def missing_extra(what: str, needs: str, extra: str) -> ImportError:
    """The ImportError for *what* (a module, or a part of one) when *needs* (the package,
    as pip names it) is not installed, saying which extra of headless-client brings it."""
    return ImportError(f"{what} needs {needs}: pip install 'headless-client[{extra}]'")
