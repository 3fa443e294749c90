"""README's Quickstart is what CI runs."""

import re

from conftest import ROOT


def quickstart_commands() -> list[str]:
    """Return the command lines of the code block under '## Quickstart'."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quickstart", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "no bash code block under ## Quickstart"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_quickstart_is_two_commands_setup_and_run_then_test() -> None:
    setup_and_run, test = quickstart_commands()
    assert setup_and_run.endswith("dvc repro")
    assert test.endswith("pytest")


def test_ci_runs_the_quickstart_test_command_verbatim() -> None:
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()
    assert ci[-1] == quickstart_commands()[1]
