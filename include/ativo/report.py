"""Report helpers every HTML page a person reads shares: charts drawn headless, inlined as SVG.

The model card, the monitoring report and the console use them, so every picture has one look.
"""

from __future__ import annotations

import io
from typing import Any


def svg(fig: Any) -> str:
    """A matplotlib figure as inline SVG markup (the figure is closed)."""
    import matplotlib.pyplot as plt

    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.find("<svg") :]


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the headless Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
