"""What every store's ``forget`` shares: the values to find, how text and CSV lose them, and the counts returned.

An erasure names subject ids, their pseudonyms and the record ids found for them. A store's owner removes them in
its own format (:func:`ativo.data.lake.forget`, :func:`ativo.serve.predlog.forget_predictions`, …); the matching
rules are the same everywhere and live here: a value is found as a whole id (:class:`Needles`), free text is
redacted only for long values (:func:`text_needles`), a CSV loses the lines whose id columns name one
(:func:`csv_without`). Each forget returns a :class:`Forgotten`: where it changed something and how much.
"""

from __future__ import annotations

import fcntl
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ativo.files import replace_file

if TYPE_CHECKING:
    from ativo.store.objects import ObjectStore

ERASED = "[erased]"
"""What a redacted value becomes."""

TOKEN = re.compile(rb"[A-Za-z0-9_\-]+")
"""What an id looks like inside text: a run of letters, digits, ``_`` and ``-`` (the boundary of a whole id)."""


class Needles:
    """The strings to find, as whole tokens: one pass of a simple regex and a set lookup, however many there are.

    (An alternation of thousands of ids made each search of a file cost seconds.) A needle with characters outside
    :data:`TOKEN`'s class is searched as a substring.
    """

    def __init__(self, needles: Iterable[str]) -> None:
        words = {n.encode() for n in needles if n}
        self.tokens = {w for w in words if TOKEN.fullmatch(w)}
        self.others = sorted(words - self.tokens)

    def __bool__(self) -> bool:
        return bool(self.tokens or self.others)

    def words(self) -> set[str]:
        """Every needle, as text."""
        return {w.decode() for w in self.tokens} | {o.decode() for o in self.others}

    def found(self, data: bytes) -> set[bytes]:
        """The needles ``data`` holds."""
        hits = set(TOKEN.findall(data)) & self.tokens if self.tokens else set()
        hits.update(o for o in self.others if o in data)
        return hits

    def search(self, data: bytes) -> bool:
        """Whether ``data`` holds a needle."""
        return bool(self.found(data))

    def subn(self, repl: bytes, data: bytes) -> tuple[bytes, int]:
        """``data`` with every needle replaced by ``repl``; (bytes, replacements)."""
        count = 0

        def swap(m: re.Match[bytes]) -> bytes:
            nonlocal count
            if m.group(0) in self.tokens:
                count += 1
                return repl
            return m.group(0)

        out = TOKEN.sub(swap, data) if self.tokens else data
        for o in self.others:
            count += out.count(o)
            out = out.replace(o, repl)
        return out, count

    def sub(self, repl: bytes, data: bytes) -> bytes:
        """``data`` with every needle replaced by ``repl``."""
        return self.subn(repl, data)[0]


def pattern(needles: Iterable[str]) -> Needles | None:
    """The needles as a :class:`Needles` (None when there are none)."""
    found = Needles(needles)
    return found if found else None


MIN_TEXT_NEEDLE = 8
"""Free text (logs, reports, a CSV without id columns) is redacted only for needles this long: an id such as
``cust-…`` or a record id, never a short value such as ``40`` or ``Male`` that a request may name by mistake."""


def text_needles(needles: Needles) -> Needles:
    """The needles long enough to be searched in free text (see :data:`MIN_TEXT_NEEDLE`)."""
    found = Needles([])
    found.tokens = {t for t in needles.tokens if len(t) >= MIN_TEXT_NEEDLE}
    found.others = [o for o in needles.others if len(o) >= MIN_TEXT_NEEDLE]
    return found


def redact_text(data: bytes, needles: Needles) -> tuple[bytes, int]:
    """Text with every needle replaced by ``[erased]``; (bytes, replacements)."""
    return needles.subn(ERASED.encode(), data)


def csv_without(data: bytes, needles: Needles, id_columns: tuple[str, ...] = ()) -> tuple[bytes, int]:
    """A CSV's bytes without the rows whose id columns hold a needle (the header is kept); (bytes, rows removed).

    Only the named id columns are compared, exactly; a CSV without them (a malformed batch) loses the lines that
    name a long needle anywhere (:func:`text_needles`). Every other line keeps its bytes.
    """
    import csv

    lines = data.splitlines(keepends=True)
    if not lines:
        return data, 0
    try:
        header = next(csv.reader([lines[0].decode("utf-8-sig")]))
    except (UnicodeDecodeError, csv.Error, StopIteration):
        header = []
    cols = [header.index(c) for c in id_columns if c in header]
    if cols:
        words = needles.words()

        def keep(line: bytes) -> bool:
            try:
                row = next(csv.reader([line.decode("utf-8")]))
            except (UnicodeDecodeError, csv.Error, StopIteration):
                return not text_needles(needles).search(line)
            return not any(i < len(row) and row[i].strip() in words for i in cols)

    else:
        long = text_needles(needles)

        def keep(line: bytes) -> bool:
            return not long.search(line)

    kept = [lines[0]] + [ln for ln in lines[1:] if keep(ln)]
    return b"".join(kept), len(lines) - len(kept)


@dataclass
class Forgotten:
    """What one store's ``forget`` changed.

    Attributes:
        places: each place rewritten or removed (an object key, a partition, a file, a row of a table) → the rows
            removed or values redacted there. A second call finds nothing left and returns none.
        found: which of the given values the store held (subjects, pseudonyms).
        ids: the ids of the rows removed (the record ids of lake rows, the prediction ids of logged decisions):
            what the next store is asked to forget.
    """

    places: dict[str, int] = field(default_factory=dict)
    found: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    @property
    def count(self) -> int:
        """Rows removed and values redacted, in every place."""
        return sum(self.places.values())


@dataclass
class Held:
    """What a store holds of some subjects, read before anything changes (an erasure's find step).

    Attributes:
        places: each place holding them (a partition, an object key) → their rows there.
        found: which of the given values the store held.
        ids: the ids of their rows (record ids, prediction ids).
    """

    places: dict[str, int] = field(default_factory=dict)
    found: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        """Their rows, in every place."""
        return sum(self.places.values())


def forget_in_objects(store: ObjectStore, prefix: str, needles: Needles, id_columns: tuple[str, ...]) -> Forgotten:
    """Every object under ``prefix`` without the needles.

    A CSV loses its lines (:func:`csv_without`); any other object (a report, a log) has its long needles redacted
    (:func:`redact_text`).

    Each object that changes is replaced whole (an object-store write is atomic); the others are not written, and
    a second call finds nothing left.

    Returns:
        ``places``: object key → lines removed or values redacted.
    """
    out = Forgotten()
    text = text_needles(needles)
    for key in store.list(prefix):
        data = store.get_bytes(key)
        if not needles.search(data):
            continue
        new, n = csv_without(data, needles, id_columns) if key.endswith(".csv") else redact_text(data, text)
        if n:
            store.put_bytes(key, new)
            out.places[key] = n
    return out


TEXT_SUFFIXES = (".log", ".jsonl", ".json", ".txt", ".html", ".csv", ".md")
"""The local files searched as free text."""


def forget_in_text_files(roots: Iterable[Path], needles: Needles) -> Forgotten:
    """Replace every long needle (:func:`text_needles`) with ``[erased]`` in the text files below ``roots``.

    Each file that changes is rewritten whole, keeping its mode (:func:`ativo.files.replace_file`); the others are
    not written.

    Returns:
        ``places``: file path → values redacted.
    """
    out = Forgotten()
    long = text_needles(needles)
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or not path.name.endswith(TEXT_SUFFIXES):
                continue
            with open(path, "rb") as fh:  # a writer that appends under the file's lock (the alert sink) waits
                fcntl.flock(fh, fcntl.LOCK_EX)
                new, n = redact_text(fh.read(), long)
                if n:
                    replace_file(path, new, mode=None)
                    out.places[str(path)] = n
    return out
