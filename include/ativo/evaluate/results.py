"""The typed result every gate returns, and the checks it is made of.

A gate is a plain function returning a :class:`GateResult`: the values it measured, the thresholds it applied,
pass or fail, and a reason a person understands. Results are JSON-able so they travel as XCom and land in the
gate report unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Check:
    """One measured value against one threshold (``limit`` None: measured and reported, not judged)."""

    name: str
    value: float | None
    limit: float | None
    kind: str  # "max" (value must be <= limit) or "min" (value must be >= limit)
    explain: str = ""
    bound: float | None = None  # when set, judged instead of ``value``: the conservative end of its confidence interval
    confidence: float | None = None

    @property
    def judged(self) -> bool:
        """Whether this check decides anything."""
        return self.limit is not None and self.value is not None

    @property
    def passed(self) -> bool:
        """True when not judged, or within its limit."""
        if not self.judged:
            return True
        judged = self.bound if self.bound is not None else self.value
        assert judged is not None and self.limit is not None
        if math.isnan(judged):
            return False
        return judged <= self.limit if self.kind == "max" else judged >= self.limit

    def shown(self) -> str:
        """The value, with its confidence bound when it is judged on one."""
        if self.bound is None or self.confidence is None:
            return _fmt(self.value)
        side = "at least" if self.kind == "max" else "at most"
        return f"{_fmt(self.value)} ({side} {_fmt(self.bound)} with {self.confidence:.0%} confidence)"

    def failure(self) -> str:
        """Why it failed, in words."""
        rel = "above the maximum" if self.kind == "max" else "below the minimum"
        text = f"{self.name} is {self.shown()}, {rel} of {_fmt(self.limit)}"
        return f"{text} ({self.explain})" if self.explain else text


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


@dataclass
class GateResult:
    """What one gate measured and decided."""

    gate: str
    passed: bool
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)
    thresholds: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    @classmethod
    def judge(
        cls,
        gate: str,
        checks: list[Check],
        *,
        ok: str,
        details: dict[str, Any] | None = None,
        extra_failures: list[str] | None = None,
        metrics: dict[str, Any] | None = None,
    ) -> GateResult:
        """Build a result from checks: it passes when every judged check does and there is no extra failure."""
        failures = [c.failure() for c in checks if not c.passed] + list(extra_failures or [])
        measured: dict[str, Any] = {c.name: c.value for c in checks}
        measured.update({f"{c.name}_bound": c.bound for c in checks if c.bound is not None})
        measured.update(metrics or {})
        return cls(
            gate=gate,
            passed=not failures,
            reason="; ".join(failures) if failures else ok,
            metrics=measured,
            thresholds={c.name: {c.kind: c.limit} for c in checks if c.limit is not None},
            details=details or {},
        )

    def check_lines(self) -> list[str]:
        """One line per judged threshold: the value, the bound it was judged on, the limit, and the verdict."""
        lines = []
        for name, rule in self.thresholds.items():
            if not isinstance(rule, dict) or len(rule) != 1:
                lines.append(f"{name}: limit {rule}")
                continue
            (kind, limit), value = next(iter(rule.items())), self.metrics.get(name)
            bound = self.metrics.get(f"{name}_bound")
            check = Check(
                name=name,
                value=value if isinstance(value, int | float) else None,
                limit=limit if isinstance(limit, int | float) else None,
                kind=kind,
                bound=bound if isinstance(bound, int | float) else None,
            )
            judged = f", judged on its bound {_fmt(check.bound)}" if check.bound is not None else ""
            sign = "<=" if kind == "max" else ">="
            verdict = "ok" if check.passed else "FAIL"
            lines.append(f"{name} = {_fmt(check.value)}{judged}; limit {sign} {_fmt(check.limit)}: {verdict}")
        return lines

    @classmethod
    def error(cls, gate: str, err: BaseException) -> GateResult:
        """A gate that could not measure fails, saying why (never a silent pass)."""
        return cls(gate=gate, passed=False, reason=f"the gate could not run: {type(err).__name__}: {err}")
