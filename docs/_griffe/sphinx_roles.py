"""A Griffe extension for the API reference: Sphinx roles in docstrings become links.

The library's docstrings use Sphinx cross-reference roles (``:class:`~headless_client.Resolver```,
``:meth:`scale```), which Markdown would print literally. After the package is loaded, this
rewrites each role into an *optional* autorefs cross-reference: a link when the target is
rendered on the site, plain code otherwise (never a build warning). Short targets are
looked up from the documented object outwards (its class, its module, the package).

Loaded by mkdocstrings (``extensions:`` in mkdocs.yml); not part of the library.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|meth|func|mod|attr|data|exc|obj|const):`(?P<tilde>~?)(?P<target>[^`<>]+)`")


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles in every docstring of the package."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        collection = loader.modules_collection
        seen: set[int] = set()
        stack: list[griffe.Object] = [pkg]
        while stack:  # bounded: every object once
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            docstring = obj.docstring
            if docstring is not None:
                docstring.value = _ROLE.sub(lambda m, o=obj: _reference(o, m, collection), docstring.value)
            stack.extend(m for m in obj.members.values() if not m.is_alias)


def _exists(collection: griffe.ModulesCollection, path: str) -> bool:
    try:
        collection[path]
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return False
    return True


def _reference(obj: griffe.Object, match: re.Match[str], collection: griffe.ModulesCollection) -> str:
    target = match["target"].strip().lstrip(".")
    text = target.rsplit(".", 1)[-1] if match["tilde"] else target
    identifier = target
    scope: griffe.Object | None = obj
    while scope is not None:  # bounded by the nesting depth
        candidate = f"{scope.path}.{target}"
        if _exists(collection, candidate):
            identifier = candidate
            break
        scope = scope.parent
    ref = f'<autoref identifier="{html.escape(identifier)}" optional>{html.escape(text)}</autoref>'
    return f"<code>{ref}</code>"
