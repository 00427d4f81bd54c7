"""`ativo COMMAND --help` answers what a person asks first: every argument explained with its default, an example to
copy for every command, and --json on every command that reads."""

from __future__ import annotations

import argparse

import pytest

from ativo.cli import _commands_of, build_parser, main

#: the commands that read and print what they read: each takes --json (`spec schema` prints JSON whatever it is given)
READ_COMMANDS = {
    "spec check",
    "summary",
    "budget status",
    "leases",
    "metrics",
    "api-key list",
    "monitor status",
    "deployments",
    "erasure status",
    "erasure receipt",
    "lineage",
    "audit",
    "db current",
}


def _visible_arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a
        for a in parser._actions
        if a.help != argparse.SUPPRESS and not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]


COMMANDS = dict(_commands_of(build_parser()))


@pytest.mark.parametrize("path", [p for p in COMMANDS if p], ids=str)
def test_every_argument_has_help_that_gives_its_default(path):
    parser = COMMANDS[path]
    formatter = parser._get_formatter()
    for action in _visible_arguments(parser):
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help.strip(), f"ativo {path}: {name} has no help"
        takes_value = action.nargs != 0 and not isinstance(action, argparse._VersionAction)
        if takes_value and not action.required and (action.option_strings or action.nargs in ("?", "*")):
            shown = formatter._expand_help(action)  # as --help prints it
            assert "default" in shown.lower(), f"ativo {path}: {name} does not say what it is without it: {shown!r}"


@pytest.mark.parametrize("path", [p for p in COMMANDS if p], ids=str)
def test_every_command_has_an_example_to_copy(path):
    epilog = COMMANDS[path].epilog or ""
    assert "examples:\n" in epilog, f"ativo {path} --help shows no example"
    lines = epilog.split("examples:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert lines and all(line.startswith("  ") for line in lines), lines
    if not any(isinstance(a, argparse._SubParsersAction) for a in COMMANDS[path]._actions):
        assert any(f"ativo {path}" in line for line in lines), f"no example runs `ativo {path}`: {lines}"


def test_every_read_command_takes_json():
    for path in READ_COMMANDS:
        options = {o for a in COMMANDS[path]._actions for o in a.option_strings}
        assert "--json" in options, f"ativo {path} has no --json"


def test_help_shows_defaults_and_examples_as_written(capsys):
    with pytest.raises(SystemExit) as done:
        main(["budget", "set", "--help"])
    text = capsys.readouterr().out
    assert done.value.code == 0
    assert "(default: fail)" in text and "(default: 0.0)" in text  # defaults argparse knows, shown
    assert "\n  ativo budget set risk --limit-usd 40 --erasure-reserve-usd 5 --policy defer\n" in text


def test_the_top_level_help_gives_the_exit_statuses_and_hides_old_spellings(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "exit status:" in text and "2    bad usage" in text and "1    refused or failed" in text
    assert "erasure" in text and "erase " not in text  # `erase` still runs, but is no longer offered


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("ativo ")
