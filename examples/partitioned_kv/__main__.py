"""``python -m examples.partitioned_kv`` (from the repository root): see demo.py."""

import sys

from .demo import main

sys.exit(main())
