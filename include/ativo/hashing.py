"""Stable hashing of request keys: the same answer on every server, every process and every restart."""

from __future__ import annotations

import hashlib


def bucket(key: str, salt: str = "") -> float:
    """Where ``key`` falls in [0, 100): a stable BLAKE2b hash of the salted key."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0
