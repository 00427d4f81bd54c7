"""``python -m devtools up|down|status``: the launcher behind `make run`, `make stop` and `make status`."""

from __future__ import annotations

import sys

from devtools.launcher import main

sys.exit(main())
