"""wait_until: the first truthy value, or a timeout naming what was waited for; with a fake clock, no sleeping."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ativo.errors import AtivoError
from ativo.waiting import WaitTimeout, wait_until


class FakeTime:
    """A clock that only moves when slept on; records the pauses."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.pauses: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def answers(*values: Any) -> Callable[[], Any]:
    """A predicate returning ``values`` one per call (an exception instance is raised), then the last forever."""
    it: Iterator[Any] = iter(values)
    last: list[Any] = [None]

    def predicate() -> Any:
        last[0] = next(it, last[0])
        if isinstance(last[0], BaseException):
            raise last[0]
        return last[0]

    return predicate


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def wait(fake: FakeTime, predicate: Callable[[], Any], **kw: Any) -> Any:
    args: dict[str, Any] = {"timeout": 10.0, "every": 2.0, "what": "the thing"} | kw
    return wait_until(
        predicate, args.pop("timeout"), args.pop("every"), args.pop("what"), clock=fake.clock, sleep=fake.sleep, **args
    )


@pytest.mark.parametrize(
    ("values", "expected", "pauses"),
    [
        (["ready"], "ready", []),
        ([None, False, 0, "", {"champion": "3"}], {"champion": "3"}, [2.0] * 4),
        ([None, None, 42], 42, [2.0, 2.0]),
        ([[], [1]], [1], [2.0]),
    ],
    ids=["at-once", "falsy-values-keep-waiting", "after-two-polls", "empty-list-is-not-yet"],
)
def test_returns_the_first_truthy_value(fake, values, expected, pauses):
    assert wait(fake, answers(*values)) == expected
    assert fake.pauses == pauses


@pytest.mark.parametrize(
    ("timeout", "every", "polls", "pauses"),
    [
        (10.0, 2.0, 6, [2.0] * 5),
        (5.0, 2.0, 4, [2.0, 2.0, 1.0]),
        (0.0, 2.0, 1, []),
    ],
    ids=["even-steps", "last-pause-shortened-to-the-deadline", "zero-timeout-polls-once"],
)
def test_times_out_naming_what_it_waited_for(fake, timeout, every, polls, pauses):
    calls: list[int] = []

    def never() -> None:
        calls.append(1)

    with pytest.raises(WaitTimeout, match=rf"timed out after {timeout:.0f} s waiting for a champion on the API$"):
        wait(fake, never, timeout=timeout, every=every, what="a champion on the API")
    assert len(calls) == polls and fake.pauses == pauses
    assert issubclass(WaitTimeout, AtivoError)


@pytest.mark.parametrize(
    ("values", "retry_on", "expected"),
    [
        ([ConnectionRefusedError("refused"), ConnectionResetError("reset"), "up"], (OSError,), "up"),
        ([KeyError("versions"), {"v": 1}], (OSError, KeyError), {"v": 1}),
    ],
    ids=["os-errors-are-not-yet", "several-kinds"],
)
def test_retry_on_exceptions_mean_not_yet(fake, values, retry_on, expected):
    assert wait(fake, answers(*values), retry_on=retry_on) == expected


def test_the_timeout_names_the_last_retried_error(fake):
    predicate = answers(ConnectionRefusedError("first"), None, TimeoutError("still starting"))
    with pytest.raises(WaitTimeout) as info:
        wait(fake, predicate, timeout=6, retry_on=(OSError,), what="MLflow")
    assert str(info.value) == "timed out after 6 s waiting for MLflow (last error: TimeoutError: still starting)"


@pytest.mark.parametrize(
    ("error", "retry_on"),
    [
        (ValueError("bad answer"), ()),
        (RuntimeError("MLflow exited during start-up; see var/logs/mlflow.log"), (OSError,)),
        (KeyError("state"), (OSError,)),
    ],
    ids=["no-retry-on", "not-in-retry-on", "key-error-not-listed"],
)
def test_other_exceptions_propagate_at_once(fake, error, retry_on):
    with pytest.raises(type(error)) as info:
        wait(fake, answers(None, error, "never reached"), retry_on=retry_on)
    assert info.value is error and fake.pauses == [2.0]
