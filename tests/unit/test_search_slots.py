"""Trial slots: workers take a search's trials between them, never the same one twice, and a retry resumes its own."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def engine(tmp_path):
    from ativo.store.db import get_engine

    return get_engine(f"sqlite:///{tmp_path / 'platform.db'}")


def test_workers_racing_for_slots_take_each_slot_exactly_once(engine):
    from ativo.train.slots import claim, finish, summary, table

    taken: dict[str, list[int]] = {f"w{i}": [] for i in range(4)}

    def work(worker: str) -> None:
        while (got := claim(engine, "s", "s/run", 40, worker)) is not None:
            taken[worker].append(got["slot"])
            finish(engine, "s/run", got["slot"], "complete", value=0.9)

    threads = [threading.Thread(target=work, args=(w,)) for w in taken]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    every = sorted(s for slots in taken.values() for s in slots)
    assert every == list(range(40))  # all taken, none twice
    assert [r["slot"] for r in table(engine, "s/run")] == list(range(40))
    assert summary(engine, "s/run", 40) == "40 complete"


def test_a_retried_worker_runs_its_unfinished_slot_again_before_taking_a_new_one(engine):
    from ativo.train.slots import claim, finish, started, summary

    first = claim(engine, "s", "s/run", 3, "run/trials/0")
    assert first == {"slot": 0, "attempt": 1, "trial_number": None}
    started(engine, "s/run", 0, 7, "#7 eta=0.1", "abc")
    other = claim(engine, "s", "s/run", 3, "run/trials/1")
    assert other is not None and other["slot"] == 1
    # worker 0 died in slot 0; its retry (same worker) gets slot 0 back, with the trial it had been given
    again = claim(engine, "s", "s/run", 3, "run/trials/0")
    assert again == {"slot": 0, "attempt": 2, "trial_number": 7}
    finish(engine, "s/run", 0, "pruned")
    finish(engine, "s/run", 1, "refused", reason="budget 'x' is spent")
    assert summary(engine, "s/run", 3) == "1 not run, 1 pruned, 1 refused"
    with pytest.raises(ValueError, match="slot state 'done'"):
        finish(engine, "s/run", 0, "done")
