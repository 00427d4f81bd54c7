"""A monitoring run with no champion live is recorded with a reason that stays true when it is read later."""

from __future__ import annotations

import datetime as dt


def test_a_window_judged_before_any_champion_says_so_in_words_that_stay_true(ativo_home, spec):
    from ativo.config import load_settings
    from ativo.monitor.decide import history
    from ativo.monitor.run import monitor_window
    from ativo.store.db import get_engine

    settings = load_settings()
    end = dt.datetime(2026, 6, 2, tzinfo=dt.UTC)
    out = monitor_window(spec, settings, end - dt.timedelta(days=1), end)
    why = f"no version of {spec.registered_model_name} was champion when this window was judged"
    assert out["assessment"]["judged"] is False and out["assessment"]["reasons"] == [why]
    [row] = history(get_engine(settings.db_url), spec.name, limit=1)
    assert why in row["decision_reason"] and row["reasons"] == [why]  # what the Ativo page shows as its last run
