"""The typed result every gate returns, and the checks it is made of.

A gate is a plain function returning a :class:`GateResult`: the values it measured, the thresholds it applied,
pass or fail, and a reason a person understands. Results are JSON-able so they travel as XCom and land in the
gate report unchanged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ativo.evaluate.intervals import Interval


INSUFFICIENT = "insufficient evidence: "
"""How the reason of a verdict the data cannot decide begins."""


@dataclass
class Check:
    """One measured value against one threshold (``limit`` None: measured and reported, not judged).

    A check measured on a sample carries its confidence interval (``low``, ``high``, on ``rows`` rows) and is judged
    on ``bound``, the end of the interval nearest the limit's good side: it fails only when the data shows the limit
    crossed at ``confidence``, so noise alone never rejects a model (:meth:`bounded`). With fewer rows than
    ``needed_rows`` the sample cannot decide either way: the check fails as insufficient evidence, saying how many
    rows it would need.
    """

    name: str
    value: float | None
    limit: float | None
    kind: str  # "max" (value must be <= limit) or "min" (value must be >= limit)
    explain: str = ""
    bound: float | None = None  # when set, judged instead of ``value``: the conservative end of its confidence interval
    confidence: float | None = None
    low: float | None = None  # the interval's lower and upper one-sided bounds at ``confidence``
    high: float | None = None
    rows: int | None = None  # the rows the value rests on
    needed_rows: int | None = None  # fewer rows than this cannot decide the check either way

    @classmethod
    def bounded(
        cls,
        name: str,
        interval: Interval,
        limit: float | None,
        kind: str,
        explain: str = "",
        *,
        needed_rows: int | None = None,
    ) -> Check:
        """A check judged on its interval: a maximum on the lower bound, a minimum on the upper one."""
        return cls(
            name,
            interval.value,
            limit,
            kind,
            explain,
            bound=interval.low if kind == "max" else interval.high,
            confidence=interval.confidence,
            low=interval.low,
            high=interval.high,
            rows=interval.rows,
            needed_rows=needed_rows,
        )

    @property
    def judged(self) -> bool:
        """Whether this check decides anything."""
        return self.limit is not None and self.value is not None

    @property
    def insufficient(self) -> bool:
        """Whether the sample is too small to decide this check either way."""
        return self.judged and None not in (self.rows, self.needed_rows) and self.rows < self.needed_rows  # type: ignore[operator]

    @property
    def passed(self) -> bool:
        """True when not judged, or not shown beyond its limit on enough rows."""
        if not self.judged:
            return True
        if self.insufficient or (self.value is not None and math.isnan(self.value)):
            return False  # too few rows, or nothing measurable (an AUC of one class): never a pass
        judged = self.bound if self.bound is not None else self.value
        assert judged is not None and self.limit is not None
        if math.isnan(judged):
            return False
        return judged <= self.limit if self.kind == "max" else judged >= self.limit

    def shown(self) -> str:
        """The value, with its interval (or the bound it is judged on) and the rows it rests on."""
        if self.low is not None and self.high is not None and self.confidence is not None:
            return f"{_fmt(self.value)} [{_fmt(self.low)}, {_fmt(self.high)}] on {self.rows} rows"
        if self.bound is None or self.confidence is None:
            return _fmt(self.value)
        side = "at least" if self.kind == "max" else "at most"
        return f"{_fmt(self.value)} ({side} {_fmt(self.bound)} with {self.confidence:.0%} confidence)"

    def failure(self) -> str:
        """Why it failed, in words."""
        if self.insufficient:
            return (
                f"{INSUFFICIENT}{self.name} rests on {self.rows} rows; deciding it against "
                f"{'at most' if self.kind == 'max' else 'at least'} {_fmt(self.limit)} needs at least "
                f"{self.needed_rows}"
            )
        rel = "above the maximum" if self.kind == "max" else "below the minimum"
        text = f"{self.name} is {self.shown()}, {rel} of {_fmt(self.limit)}"
        if self.low is not None and self.confidence is not None:
            side = "lower" if self.kind == "max" else "upper"
            text += f" even at its {side} {self.confidence:.0%} bound"
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
        measured.update({f"{c.name}_interval": [c.low, c.high] for c in checks if c.low is not None})
        measured.update({f"{c.name}_rows": c.rows for c in checks if c.rows is not None and c.low is not None})
        measured.update({f"{c.name}_confidence": c.confidence for c in checks if c.low is not None})
        insufficient = [c.failure() for c in checks if c.insufficient]
        measured.update(metrics or {})
        if insufficient and len(insufficient) == len(failures):  # nothing shown crossed: the data cannot decide
            failures = [INSUFFICIENT + "; ".join(f.removeprefix(INSUFFICIENT) for f in insufficient)]
        return cls(
            gate=gate,
            passed=not failures,
            reason="; ".join(failures) if failures else ok,
            metrics=measured,
            thresholds={c.name: {c.kind: c.limit} for c in checks if c.limit is not None},
            details={
                **(details or {}),
                **(
                    {"needed_rows": needed}
                    if (needed := {c.name: c.needed_rows for c in checks if c.needed_rows})
                    else {}
                ),
            },
        )

    def check_lines(self) -> list[str]:
        """One line per judged threshold: the value, the bound it was judged on, the limit, and the verdict."""
        lines = []
        for name, rule in self.thresholds.items():
            if not isinstance(rule, dict) or len(rule) != 1:
                lines.append(f"{name}: limit {rule}")
                continue
            check = self.check(name)
            if check is None:
                continue
            judged = f", judged on its bound {_fmt(check.bound)}" if check.bound is not None else ""
            sign = "<=" if check.kind == "max" else ">="
            verdict = "insufficient evidence" if check.insufficient else "ok" if check.passed else "FAIL"
            lines.append(f"{name} = {check.shown()}{judged}; limit {sign} {_fmt(check.limit)}: {verdict}")
        return lines

    def check(self, name: str) -> Check | None:
        """The judged check ``name`` as recorded (value, interval, rows, limit), rebuilt from the result."""
        rule = self.thresholds.get(name)
        if not isinstance(rule, dict) or len(rule) != 1:
            return None
        (kind, limit), value = next(iter(rule.items())), self.metrics.get(name)
        interval = self.metrics.get(f"{name}_interval")
        low, high = interval if isinstance(interval, list) and len(interval) == 2 else (None, None)

        def number(v: Any) -> float | None:
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

        rows = self.metrics.get(f"{name}_rows")
        return Check(
            name=name,
            value=number(value),
            limit=number(limit),
            kind=kind,
            bound=number(self.metrics.get(f"{name}_bound")),
            confidence=number(self.metrics.get(f"{name}_confidence")),
            low=number(low),
            high=number(high),
            rows=int(rows) if isinstance(rows, int) else None,
            needed_rows=self.details.get("needed_rows", {}).get(name) if isinstance(self.details, dict) else None,
        )

    @classmethod
    def error(cls, gate: str, err: BaseException) -> GateResult:
        """A gate that could not measure fails, saying why (never a silent pass)."""
        return cls(gate=gate, passed=False, reason=f"the gate could not run: {type(err).__name__}: {err}")
