"""A fake wall clock for the ``clock=`` argument of LeaseManager, Ledger and ComputeSession: time passes on demand."""

from __future__ import annotations

import datetime as dt


class FakeClock:
    """Aware UTC time that moves only when told to; call it (or :meth:`now`) wherever ``utcnow`` is expected.

    Args:
        start: the first time it reads (the real now when None, so it agrees with rows other processes write).
    """

    def __init__(self, start: dt.datetime | None = None) -> None:
        self._now = start or dt.datetime.now(dt.UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock wants an aware datetime, as utcnow returns")

    def now(self) -> dt.datetime:
        """The current fake time."""
        return self._now

    __call__ = now

    def advance(self, seconds: float) -> dt.datetime:
        """Let ``seconds`` pass at once; returns the new time."""
        if seconds < 0:
            raise ValueError("time does not run backwards")
        self._now += dt.timedelta(seconds=seconds)
        return self._now

    def jump_to(self, moment: dt.datetime) -> dt.datetime:
        """Let time pass up to ``moment`` (not before now); returns it."""
        return self.advance((moment - self._now).total_seconds())
