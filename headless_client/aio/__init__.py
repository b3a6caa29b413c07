"""The asyncio twins: :class:`AsyncResolver` and :class:`AsyncHeadlessService`.

Same arguments, methods, errors and behaviour as :class:`~headless_client.Resolver` and
:class:`~headless_client.HeadlessService`: every decision lives in the sans-I/O core
(:mod:`~headless_client.core`, :mod:`~headless_client.lookup`,
:mod:`~headless_client.connect`); this package only does the I/O, with no blocking call on
the event loop. The refresher is an :class:`asyncio.Task`, cancelled and awaited on exit.
"""

from __future__ import annotations

from .registry import AsyncClientRegistry
from .resolver import AsyncResolver
from .service import AsyncHeadlessService
from .streams import Streams, open_streams

__all__ = ["AsyncClientRegistry", "AsyncHeadlessService", "AsyncResolver", "Streams", "open_streams"]
