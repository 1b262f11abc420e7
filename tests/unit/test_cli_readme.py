"""The README's command table is the CLI's reference: every command it writes parses as written.

Each synopsis in the table (`| \\`dagwatch …\\``) is read the way a user reads it: optional parts
included, the first of `a|b` alternatives, placeholders as values. It is parsed by the real
CLI's parser (typer's `make_context`: unknown options, missing values and arguments fail),
never run, so a renamed option or a positional that became an option fails here.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer
from typer.exceptions import TyperException

from monitor.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


#: A value of the type an option takes, where its placeholder (S, T, K) would not parse.
EXAMPLES = {"--status": "firing", "--tier": "P1", "--kind": "task_failed"}


def synopses() -> list[str]:
    found = []
    for line in README.read_text().splitlines():
        if line.startswith("| `dagwatch"):
            first_cell = line.split(" | ")[0]
            found += re.findall(r"`(dagwatch [^`]+)`", first_cell)
    return found


def as_typed(synopsis: str) -> list[list[str]]:
    """`dagwatch up [--log-format text\\|json]` → each way to type it: every first alternative,
    then each other alternative in turn."""
    text = synopsis.replace("\\|", "|").replace("[", " ").replace("]", " ").replace("…", "")
    words = shlex.split(text)[1:]
    lines = [_line(words, {})]
    for at, word in enumerate(words):
        lines += [_line(words, {at: other}) for other in word.split("|")[1:]]
    return lines


def _line(words: list[str], choose: dict[int, str]) -> list[str]:
    """Word `at` typed as `choose[at]`, every other `a|b` as a. Where an alternative is an option
    (`ID|-m key=matcher`), the words up to the next option are its values: typed with it, left
    out without it."""
    typed, skipping = [], False
    for at, word in enumerate(words):
        if skipping and not word.startswith("-"):
            continue
        alternatives = word.split("|")
        chosen = choose.get(at, alternatives[0])
        typed.append(chosen)
        skipping = any(a.startswith("-") for a in alternatives) and not chosen.startswith("-")
    return [EXAMPLES.get(before, "42" if word == "ID" else word) for before, word in zip(["", *typed], typed)]


def parse(args: list[str]) -> None:
    """Typer's own parser (its vendored click): walk the groups, then parse the command's args."""
    command = typer.main.get_command(app)
    while hasattr(command, "commands") and args and args[0] in command.commands:
        command, args = command.commands[args[0]], args[1:]
    assert not hasattr(command, "commands"), f"{args} names no command"
    command.make_context(command.name or "", list(args))


def test_the_table_lists_the_commands():
    assert len(synopses()) >= 12


@pytest.mark.parametrize("typed", [line for s in synopses() if "--version" not in s for line in as_typed(s)], ids=" ".join)
def test_each_command_in_the_readme_parses_as_written(typed: list[str]):
    parse(typed)


def test_every_alternative_is_a_line_of_its_own():
    assert as_typed("dagwatch alerts silence ID\\|-m key=matcher… --for 1h [--comment C]") == [
        ["alerts", "silence", "42", "--for", "1h", "--comment", "C"],
        ["alerts", "silence", "-m", "key=matcher", "--for", "1h", "--comment", "C"],
    ]
    assert [line[-1] for line in as_typed("dagwatch token create --name N --role ingest\\|viewer\\|operator\\|admin")] == [
        "ingest",
        "viewer",
        "operator",
        "admin",
    ]


def test_a_stale_synopsis_would_fail():
    with pytest.raises(TyperException, match="name"):
        parse(["token", "revoke", "grafana"])  # what the README once said; revoke takes --name
    with pytest.raises(TyperException, match="alert"):
        parse(["runbook", "run", "retry-failed"])  # --alert is required
    with pytest.raises(TyperException, match="No such option"):
        parse(["alerts", "list", "--colour", "red"])
