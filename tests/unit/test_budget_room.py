"""The budget admission rule (``room_for`` / ``headroom``): what the ledger admits and the budget trigger waits on."""

from __future__ import annotations

import pytest

from ativo.compute.budget import headroom, room_for


@pytest.mark.parametrize(
    ("limit", "spent", "reserved", "erasure_reserve", "estimate", "priority", "fits"),
    [
        (10.0, 0.0, 0.0, 0.0, 5.0, "normal", True),
        (10.0, 7.0, 0.0, 0.0, 3.0, "normal", True),
        (10.0, 7.0, 0.0, 0.0, 3.01, "normal", False),
        (10.0, 10.0, 0.0, 0.0, 0.01, "normal", False),
        (10.0, 4.0, 3.0, 0.0, 3.0, "normal", True),
        (10.0, 4.0, 3.5, 0.0, 3.0, "normal", False),
        (10.0, 0.0, 10.0, 0.0, 0.5, "normal", False),
        (10.0, 5.0, 0.0, 2.0, 3.0, "normal", True),
        (10.0, 5.0, 0.0, 2.0, 3.5, "normal", False),
        (10.0, 5.0, 0.0, 2.0, 5.0, "erasure", True),
        (10.0, 8.0, 0.0, 2.0, 2.0, "high", False),
        (10.0, 8.0, 1.0, 2.0, 1.0, "erasure", True),
        (10.0, 8.0, 1.0, 2.0, 1.5, "erasure", False),
        (0.0, 0.0, 0.0, 0.0, 0.01, "normal", False),
        (0.0, 0.0, 0.0, 0.0, 0.01, "erasure", False),
        (0.0, 0.0, 0.0, 0.0, 0.0, "normal", True),
        (0.9, 0.6, 0.0, 0.0, 0.3, "normal", True),
        (0.9, 0.6, 0.0, 0.0, 0.3 + 1e-6, "normal", False),
    ],
    ids=[
        "under-the-limit",
        "exactly-at-the-limit",
        "just-over-the-limit",
        "spent-budget",
        "reservations-count-up-to-the-limit",
        "reservations-count-over-the-limit",
        "all-reserved",
        "outside-the-erasure-reserve",
        "into-the-erasure-reserve-refused",
        "erasure-may-use-the-reserve",
        "only-erasure-priority-uses-the-reserve",
        "erasure-up-to-the-limit",
        "erasure-not-past-the-limit",
        "zero-limit-refuses",
        "zero-limit-refuses-erasure-too",
        "zero-limit-zero-estimate",
        "float-rounding-at-the-limit-fits",
        "a-micro-dollar-over-is-refused",
    ],
)
def test_room_for(limit, spent, reserved, erasure_reserve, estimate, priority, fits):
    assert (
        room_for(
            limit=limit,
            spent=spent,
            reserved=reserved,
            erasure_reserve=erasure_reserve,
            estimate=estimate,
            priority=priority,
        )
        is fits
    )


@pytest.mark.parametrize(
    ("priority", "expected"),
    [("normal", 3.0), ("high", 3.0), ("erasure", 5.0)],
    ids=["normal-keeps-the-reserve", "high-keeps-the-reserve", "erasure-gets-the-reserve"],
)
def test_headroom(priority, expected):
    room = headroom(limit=10.0, spent=4.0, reserved=1.0, erasure_reserve=2.0, priority=priority)
    assert room == pytest.approx(expected)
