"""``python -m headless_client``: the same as the ``headless-client`` command."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
