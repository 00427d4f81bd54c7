"""The command-line reference (docs/cli.md), rendered from `ativo`'s own argument parser.

`make docs` writes it before building the site; `tests/unit/test_cli_docs.py` fails when the checked-in page differs
from what the parser says, so the reference cannot drift from the commands.

    python -m ativo_dev.cli_docs            # write docs/cli.md
    python -m ativo_dev.cli_docs --check    # exit 1 if docs/cli.md is out of date
"""

from __future__ import annotations

import argparse
import html
import sys
from collections.abc import Iterator
from pathlib import Path

CLI_PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
# Usage lines are wrapped at a fixed width, so the page does not depend on the terminal it was written from.
_WIDTH = 100


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...], help_text: str | None
) -> Iterator[tuple[tuple[str, ...], str | None, argparse.ArgumentParser]]:
    """Every parser under ``parser``, depth first, in the order the commands were added.

    A command without a help line is hidden (``--help`` does not list it: an old spelling kept for scripts), and so
    is it here.
    """
    yield path, help_text, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, child in action.choices.items():
                if name in helps:
                    yield from _commands(child, (*path, name), helps[name])


def _inline(text: str, *, cell: bool = False) -> str:
    """``text`` on one line, made safe for Markdown (and for a table cell): shown as written, code spans kept."""
    parts = " ".join(text.split()).split("`")
    for i in range(0, len(parts), 2):  # the even parts lie outside backticks
        parts[i] = html.escape(parts[i], quote=False).replace("*", "\\*")
        if cell:
            parts[i] = parts[i].replace("|", "\\|")
    return "`".join(parts)


def _cell(text: str) -> str:
    """``text`` made safe for one Markdown table cell (code spans in backticks stay code)."""
    return _inline(text, cell=True)


def _expanded_help(action: argparse.Action, prog: str) -> str:
    """The argument's help with argparse's ``%(default)s``-style references filled in, as ``--help`` shows it."""
    text = action.help or ""
    if "%(" in text:
        params = {k: v for k, v in vars(action).items() if v is not argparse.SUPPRESS}
        params["prog"] = prog
        if params.get("choices") is not None:
            params["choices"] = ", ".join(str(c) for c in params["choices"])
        text = text % params
    return text


def _metavar(action: argparse.Action, fallback: str) -> str:
    """The placeholder ``--help`` shows for the argument's value: its metavar, its choices, else ``fallback``."""
    if action.metavar is not None:
        return str(action.metavar) if isinstance(action.metavar, str) else " ".join(action.metavar)
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return fallback


def _argument_row(action: argparse.Action, prog: str) -> str | None:
    """One table row for ``action``, or None for arguments the help hides and for sub-command lists."""
    if action.help == argparse.SUPPRESS or isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
        return None
    if action.option_strings:
        name = ", ".join(action.option_strings)
        if action.nargs != 0:
            name += f" {_metavar(action, action.dest.upper())}"
    else:
        name = _metavar(action, action.dest)
        if action.nargs in ("*", "?"):
            name = f"[{name}]"
        elif action.nargs == "+":
            name = f"{name} …"
    notes = []
    if action.required and action.option_strings:
        notes.append("required")
    if action.choices is not None:
        notes.append("one of " + ", ".join(f"`{c}`" for c in action.choices))
    default = action.default
    if (
        action.nargs != 0
        and default is not None
        and default is not argparse.SUPPRESS
        and default != []
        and not isinstance(action, argparse._VersionAction)
    ):
        notes.append(f"default `{default}`")
    return f"| `{name}` | {_cell(_expanded_help(action, prog))} | {_cell('; '.join(notes))} |"


def _prose(parser: argparse.ArgumentParser, text: str) -> list[str]:
    """A description or epilog as ``--help`` lays it out: prose paragraphs, and examples as code.

    A parser that keeps its layout (``RawDescriptionHelpFormatter``) is shown as written; otherwise the lines that
    start with a space (examples, commands to copy) are code and the others prose.
    """
    if isinstance(parser._get_formatter(), argparse.RawDescriptionHelpFormatter):
        return ["```text", text.strip(), "```", ""]
    from ativo.cli import text_blocks

    out: list[str] = []
    for paragraph in text_blocks(text):
        for kind, body in paragraph:
            out += ["```text", body.rstrip(), "```", ""] if kind == "verbatim" else [_inline(body), ""]
    return out


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(prog=parser.prog, width=_WIDTH)  # the formatter classes differ in prose only
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def render(parser: argparse.ArgumentParser) -> str:
    """The Markdown reference of every command of ``parser``: its help, usage, arguments, defaults and notes."""
    out = [
        "# Command-line reference",
        "",
        "<!-- Generated from the argument parser (include/ativo/cli.py) by `python -m ativo_dev.cli_docs`"
        " (run by `make docs`); do not edit by hand. -->",
        "",
        "Every `ativo` command, as `ativo COMMAND --help` shows it. Run it from the repository as `.venv/bin/ativo`.",
        "",
    ]
    for path, help_text, sub in _commands(parser, (parser.prog,), None):
        depth = min(len(path), 4)
        out += [f"{'#' * (depth + 1)} {' '.join(path)}", ""]
        if help_text:
            out += [_inline(help_text[0].upper() + help_text[1:]) + ".", ""]
        if sub.description and (not help_text or " ".join(sub.description.split()) != " ".join(help_text.split())):
            out += _prose(sub, sub.description)
        out += ["```text", _usage(sub), "```", ""]
        rows = [r for r in (_argument_row(a, sub.prog) for a in sub._actions) if r]
        if rows:
            out += ["| argument | what it does | notes |", "|---|---|---|", *rows, ""]
        if sub.epilog:
            out += _prose(sub, sub.epilog)
    return "\n".join(out).rstrip() + "\n"


def current() -> str:
    """The page as the parser renders it now."""
    from ativo.cli import build_parser

    return render(build_parser())


def main(argv: list[str] | None = None) -> int:
    """Write docs/cli.md, or with ``--check`` say whether it is out of date."""
    ap = argparse.ArgumentParser(prog="python -m ativo_dev.cli_docs", description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md differs from the parser")
    args = ap.parse_args(argv)
    text = current()
    if args.check:
        if not CLI_PAGE.is_file() or CLI_PAGE.read_text(encoding="utf-8") != text:
            print(f"{CLI_PAGE} is out of date: run `python -m ativo_dev.cli_docs` (or `make docs`)", file=sys.stderr)
            return 1
        return 0
    if not CLI_PAGE.is_file() or CLI_PAGE.read_text(encoding="utf-8") != text:
        CLI_PAGE.write_text(text, encoding="utf-8")
        print(f"wrote {CLI_PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
