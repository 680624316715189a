"""The ``workbench`` command. One module per command group; each exposes ``register(subparsers)``.

Commands print results on stdout and problems on stderr (one ``error:`` line that says what to do). The exit
code says what happened, so a CI job can tell a worse prompt from a broken pipeline (:data:`EXIT_CODES`)::

    0    success; every gate passed
    1    refused: bad input (a flag, spec, dataset, gate, baseline) or setup (a profile, a credential, a backend
         that refused or cannot be reached) - nothing was run; the message says what to fix
    2    usage: the command line itself is malformed (argparse's own code)
    3    a quality gate failed (the run itself completed)
    4    the run failed: it started but did not complete (calls that failed, a run stopped early, a notebook
         cell that raised, a re-run that did not reproduce); finished work is kept - run the same command again
    130  interrupted (Ctrl-C); finished calls are kept
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import GatesFailed, HarnessError, NotebookFailed, WorkbenchError
from ..secrets import install_log_redaction, redact

EXIT_OK = 0
EXIT_BAD_INPUT = 1  # refused before anything ran: fix what you typed or configured
EXIT_USAGE = 2  # argparse exits with 2 for a malformed command line
EXIT_GATE_FAILED = 3
EXIT_RUN_FAILED = 4
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success; every gate passed",
    EXIT_BAD_INPUT: "refused: bad input (flag, spec, dataset, gate, baseline) or setup (profile, credential, "
                    "backend) - nothing was run",
    EXIT_USAGE: "usage: the command line is malformed",
    EXIT_GATE_FAILED: "a quality gate failed (the run itself completed)",
    EXIT_RUN_FAILED: "the run failed: calls failed, it stopped early, or a notebook cell raised; finished work is "
                     "kept, run the same command again",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); finished calls are kept",
}


def exit_code_for(error: WorkbenchError) -> int:
    """A failed gate is 3; a run that started and broke (a notebook cell, the harness) is 4; every other workbench
    error was raised before anything ran (bad input, a setting, a credential, a refusing backend) and is 1."""
    if isinstance(error, GatesFailed):
        return EXIT_GATE_FAILED
    if isinstance(error, (NotebookFailed, HarnessError)):
        return EXIT_RUN_FAILED
    return EXIT_BAD_INPUT


def exit_codes_help() -> str:
    """The exit codes as a ``--help`` epilog."""
    return "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES.items())

# Command groups, in the order they appear in --help. Add a module here to add commands.
COMMAND_MODULES = ["foundation", "tokens", "evaluate", "runs"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Prompt Workbench: prompts, tokens, costs and evaluations for Azure OpenAI, OpenAI and a "
                    "local model.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"{__name__}.{name}":  # group not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    install_log_redaction()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as e:
        print(f"error: {redact(e)}", file=sys.stderr)
        return exit_code_for(e)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
