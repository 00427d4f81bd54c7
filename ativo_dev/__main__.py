"""``python -m ativo_dev up|down|status``: the launcher behind `make run`, `make stop` and `make status`."""

from __future__ import annotations

import sys

from ativo_dev.launcher import main

sys.exit(main())
