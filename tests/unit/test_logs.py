"""Third-party chatter is turned down to warnings, child loggers too, and calling it again changes nothing."""

from __future__ import annotations

import logging

import pytest

from ativo.logs import quiet_third_party


@pytest.fixture
def noisy_loggers():
    """A Great Expectations module logger set to INFO on import (as GX does) and an unrelated logger at DEBUG."""
    names = ("great_expectations", "great_expectations.core.test_logs", "ativo.test_logs")
    saved = {n: logging.getLogger(n).level for n in names}
    logging.getLogger("great_expectations.core.test_logs").setLevel(logging.INFO)
    logging.getLogger("ativo.test_logs").setLevel(logging.DEBUG)
    yield names
    for n, level in saved.items():
        logging.getLogger(n).setLevel(level)


def test_noisy_loggers_and_their_children_go_to_warning_and_others_are_left_alone(noisy_loggers):
    parent, child, ours = (logging.getLogger(n) for n in noisy_loggers)
    assert child.isEnabledFor(logging.INFO)
    quiet_third_party()
    assert parent.level == child.level == logging.WARNING
    assert not child.isEnabledFor(logging.INFO) and child.isEnabledFor(logging.WARNING)
    assert ours.level == logging.DEBUG  # not a third-party logger


def test_a_second_call_sets_no_level_again(noisy_loggers, monkeypatch):
    """Each setLevel clears every logger's cache in the process: a call that changes nothing must not pay that."""
    quiet_third_party()
    calls = []
    monkeypatch.setattr(logging.Logger, "setLevel", lambda self, level: calls.append(self.name))
    quiet_third_party()
    assert calls == []
    monkeypatch.undo()
    logging.getLogger(noisy_loggers[1]).setLevel(logging.INFO)  # set back, as importing GX again would
    quiet_third_party()
    assert logging.getLogger(noisy_loggers[1]).level == logging.WARNING
