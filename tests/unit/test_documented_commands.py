"""Every `ativo` and `make` command a reader copies from a shell block of the README or the docs is one the code
knows: each `ativo …` line parses with the CLI's own parser (the command, its options and their values' types), and
each `make …` target exists in the Makefile. A line that is not a command to copy as it stands is listed here with the
reason. (What each command then does is tested where its feature is.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if p.name != "cli.md")]
SHELL_BLOCK = re.compile(r"```(?:bash|sh|shell|console)\n(.*?)```", re.S)
NOT_RUNNABLE = {
    "api-key list | revoke NAME": "two commands in one line, a reader's shorthand",
}
"""Documented lines that are not a command as they stand, by a part of them: why."""


def _commands() -> list[tuple[str, str]]:
    found = []
    for path in DOCS:
        for block in SHELL_BLOCK.findall(path.read_text()):
            for line in block.replace("\\\n", " ").splitlines():
                line = re.sub(r"^\$ ", "", line.strip())
                if re.match(r"(\.venv/bin/)?ativo |make ", line):
                    found.append((str(path.relative_to(ROOT)), line))
    return found


COMMANDS = _commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) > 30  # the extraction still finds them


@pytest.mark.parametrize(("where", "line"), COMMANDS, ids=[f"{w}:{i}" for i, (w, _) in enumerate(COMMANDS)])
def test_a_documented_command_is_one_the_code_knows(where, line):
    from ativo.cli import build_parser

    if any(part in line for part in NOT_RUNNABLE):
        return
    words = shlex.split(line, comments=True)
    if words[0] == "make":
        targets = set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))
        targets |= {f"test-{t}" for t in ("unit", "security", "dags", "model", "component", "e2e")}
        named = [w for w in words[1:] if "=" not in w]
        assert named and set(named) <= targets, f"{where}: `{line}` names a make target the Makefile lacks"
        return
    try:
        build_parser().parse_args(words[1:])
    except SystemExit as err:  # --help and --version exit 0 once printed
        if err.code == 0:
            return
        pytest.fail(f"{where}: `{line}` does not parse with ativo's parser (exit {err.code})")
