"""The example scripts' rnnkit commands parse with today's command line: no stale or misspelt flag.

Each `python -m rnnkit ...` line of examples/*.sh (continuation lines joined) is parsed, not run:
shell variables become "0" (a placeholder that reads as a number or a path), except flag lists set as NAME=${OTHER:---flag ...} (such
as sst2.sh's FLAGS), which expand to their default.
"""
import pathlib
import re
import shlex

import pytest

from rnnkit.cli import build_parser

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.sh"))


def rnnkit_commands(text):
    """The argument lists of the script's `python -m rnnkit` commands, variables expanded."""
    text = re.sub(r"\\\n\s*", " ", text)                                     # join continuations
    defaults = dict(re.findall(r"^(\w+)=\$\{\w+:-(--.*)\}\s*$", text, re.M))  # NAME=${OTHER:---flags ...}
    commands = []
    for m in re.finditer(r"python -m rnnkit (.*)", text):
        cmd = re.split(r"\s+(?:\||>|#)", m.group(1))[0]                     # up to a pipe, redirect, comment
        cmd = cmd.replace('"$@"', "")
        cmd = re.sub(r"\$\([^)]*\)|\$\{[^}]*\}", "0", cmd)                # $(command), ${name...}
        cmd = re.sub(r"\$(\w+)", lambda v: defaults.get(v.group(1), "0"), cmd)
        commands.append(shlex.split(cmd))
    return commands


def test_every_example_is_found():
    names = {p.name for p in SCRIPTS}
    assert {"airline_forecast.sh", "digit_addition.sh", "shakespeare.sh", "sst2.sh"} <= names
    assert all(rnnkit_commands(p.read_text()) for p in SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_commands_parse(script, capsys):
    parser = build_parser()
    for argv in rnnkit_commands(script.read_text()):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{script.name}: `rnnkit {' '.join(argv)}` does not parse: "
                        f"{capsys.readouterr().err.strip()}")
        assert callable(args.func)


def test_sst2_example_marks_negation_scopes():
    train = [a for a in rnnkit_commands((EXAMPLES / "sst2.sh").read_text()) if a[:2] == ["train", "classify"]]
    assert len(train) == 1
    args = build_parser().parse_args(train[0])
    assert args.negation_scope and args.embedding_init == "nb" and args.cell == "gru"
