"""One way to wait for something: a predicate polled until it holds, with a deadline and a named error."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from ativo.errors import AtivoError

T = TypeVar("T")


class WaitTimeout(AtivoError):
    """What was waited for did not happen in time."""


def wait_until(
    predicate: Callable[[], T | None],
    timeout: float,
    every: float,
    what: str,
    *,
    retry_on: tuple[type[BaseException], ...] = (),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``predicate`` every ``every`` seconds until it returns something truthy, and return that.

    Args:
        predicate: returns a truthy value when the wait is over (``None``/``False`` to keep waiting).
        timeout: seconds before giving up.
        every: seconds between calls.
        what: what is waited for, in words (``"a champion on the inference API"``), for the error.
        retry_on: exceptions that mean "not yet" (a server still starting) rather than a failure; the last one is
            named in the timeout error.
        clock: monotonic seconds (a test passes a fake one).
        sleep: how to pause (a test passes a fake one).

    Raises:
        WaitTimeout: ``timeout`` passed; the message names ``what`` and the last error seen.
    """
    deadline = clock() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except retry_on as err:
            value, last_error = None, err
        if value:
            return value
        if clock() >= deadline:
            why = f" (last error: {type(last_error).__name__}: {last_error})" if last_error else ""
            raise WaitTimeout(f"timed out after {timeout:.0f} s waiting for {what}{why}")
        sleep(min(every, max(0.0, deadline - clock())))
