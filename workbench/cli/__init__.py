"""The ``workbench`` command. One module per command group; each exposes ``register(subparsers)``.

Commands print results on stdout and problems on stderr (one ``error:`` line that says what to do). The exit
code says what happened, so a CI job can tell a worse prompt from a broken pipeline (:data:`EXIT_CODES`)::

    0    success; every gate passed
    1    the run failed: a backend, a credential or a setting; calls that failed; a run that stopped early
    2    bad input: a flag, spec, dataset, gate or baseline is wrong - refused before anything was sent
    3    a quality gate failed (the run itself completed)
    130  interrupted (Ctrl-C); finished calls are kept
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..errors import DataError, GatesFailed, UnknownModelError, WorkbenchError
from ..secrets import install_log_redaction, redact

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2  # argparse uses 2 for a usage error too: both mean "fix what you typed"
EXIT_GATE_FAILED = 3
EXIT_INTERRUPTED = 130

EXIT_CODES = {
    EXIT_OK: "success; every gate passed",
    EXIT_RUN_FAILED: "the run failed: a backend, a credential or a setting; calls that failed; a run stopped early",
    EXIT_BAD_INPUT: "bad input (a flag, spec, dataset, gate or baseline): refused before anything was sent",
    EXIT_GATE_FAILED: "a quality gate failed (the run itself completed)",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C); finished calls are kept",
}


def exit_code_for(error: WorkbenchError) -> int:
    """Bad input (:class:`DataError`, an unknown model) is 2, a failed gate 3, every other workbench error 1."""
    if isinstance(error, GatesFailed):
        return EXIT_GATE_FAILED
    return EXIT_BAD_INPUT if isinstance(error, (DataError, UnknownModelError)) else EXIT_RUN_FAILED


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
        return EXIT_BAD_INPUT
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
