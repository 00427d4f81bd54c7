"""The command-line reference (docs/cli.md) is the parser's own account of the commands, and cannot drift from it."""

from __future__ import annotations

import argparse
import re

from ativo_dev import cli_docs


def test_the_checked_in_reference_is_what_the_parser_says():
    written = cli_docs.CLI_PAGE.read_text(encoding="utf-8")
    assert written == cli_docs.current(), (
        "docs/cli.md is out of date with include/ativo/cli.py: run `python -m ativo_dev.cli_docs` (or `make docs`)"
    )
    assert cli_docs.main(["--check"]) == 0


def test_every_command_and_every_option_has_its_place():
    from ativo.cli import build_parser

    page = cli_docs.current()
    headings = set(re.findall(r"^#{2,5} (ativo(?: [\w-]+)*)$", page, flags=re.MULTILINE))
    seen = 0
    for path, _, parser in cli_docs._commands(build_parser(), ("ativo",), None):
        assert " ".join(path) in headings, path
        section = page.split(f" {' '.join(path)}\n", 1)[1].split("\n#", 1)[0]
        for action in parser._actions:
            if action.option_strings and action.help != argparse.SUPPRESS and "-h" not in action.option_strings:
                assert f"`{action.option_strings[0]}" in section, (path, action.option_strings)
        seen += 1
    assert seen > 20  # land, spec check, serve, promote, erase, api-key create, …


def test_help_text_cannot_break_the_table_or_inject_markup():
    parser = argparse.ArgumentParser(prog="tool")
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("run", help="run <it> & more")
    s.add_argument("--mode", choices=["a", "b"], default="a", help="a|b, *bold*? <script>x</script> `a|b`")
    s.add_argument("--count", type=int, default=3, help="how many (default %(default)s)")
    s.add_argument("--flag", action="store_true", help="a switch")
    page = cli_docs.render(parser)
    row = next(line for line in page.splitlines() if line.startswith("| `--mode"))
    # Three cells exactly: a pipe outside code is escaped, one inside a code span is left as code.
    assert len(re.split(r"(?<!\\)\|", row.replace("`a|b`", "CODE"))) == 5, row
    assert "<script>" not in page and "&lt;script&gt;" in page and "\\*bold\\*" in page and "`a|b`" in row
    assert "Run &lt;it&gt; &amp; more." in page
    assert "| `--count COUNT` | how many (default 3) | default `3` |" in page
    assert "| `--flag` | a switch |  |" in page  # a switch has no default to show
    assert "`--mode {a,b}`" in row and "default `a`" in row


def test_check_says_what_to_run_when_the_page_is_stale(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "cli.md"
    stale.write_text("# Command-line reference\n\nold\n", encoding="utf-8")
    monkeypatch.setattr(cli_docs, "CLI_PAGE", stale)
    assert cli_docs.main(["--check"]) == 1
    assert "python -m ativo_dev.cli_docs" in capsys.readouterr().err
    assert stale.read_text(encoding="utf-8").endswith("old\n")  # --check never writes
    assert cli_docs.main([]) == 0
    assert stale.read_text(encoding="utf-8") == cli_docs.current()
