"""The ``workbench`` command. One module per command group; each exposes ``register(subparsers)``.

Commands print results on stdout and problems on stderr. A failure - a user's mistake, a backend's refusal, or a
bug - is never a traceback: it is one line starting ``error:`` that says what to do (masked: no key survives it),
followed by indented details only when there are several problems to list. ``--debug`` (anywhere on the line,
or ``WORKBENCH_DEBUG=1``) prints the masked traceback as well. The exit code says what happened, so a CI job can
tell a worse prompt from a broken pipeline (:data:`EXIT_CODES`)::

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
import os
import sys
import traceback

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
COMMAND_MODULES = ["foundation", "tokens", "evaluate", "batch", "runs", "finetune"]


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
    parser.add_argument("--debug", action="store_true", help="on a failure, also print the traceback")
    for command in sub.choices.values():  # `workbench chat --debug ...` works as well as `workbench --debug chat`
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def error_line(e: BaseException) -> str:
    """What the user reads after ``error:``, masked: the workbench's own message, or a backend's refusal with
    its status and what to check, or the file a read failed on; anything else is called a bug."""
    if isinstance(e, WorkbenchError):
        return redact(e)
    if "openai" in sys.modules:  # (an SDK error is only possible once the SDK is loaded; the CLI loads it lazily)
        import openai

        from ..providers import error_text
        from ..providers.provider import STATUS_ADVICE

        if isinstance(e, openai.APIStatusError):
            advice = STATUS_ADVICE.get(e.status_code) or ("the backend failed; try again later"
                                                          if e.status_code >= 500 else "the backend refused it")
            return redact(f"{advice} ({error_text(e)})")
        if isinstance(e, openai.APIError):
            return redact(f"cannot reach the backend: {error_text(e)}")
    if isinstance(e, OSError) and e.filename is not None:
        return redact(f"{e.filename}: {e.strerror or e}")
    if isinstance(e, UnicodeDecodeError):
        return redact(f"not UTF-8 text ({e.reason} at byte {e.start}); save the file as UTF-8")
    return redact(f"unexpected {type(e).__name__}: {e} - this is a bug in the workbench; run the command again "
                  "with --debug and report the traceback")


def main(argv: list[str] | None = None) -> int:
    install_log_redaction()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_USAGE
    debug = bool(getattr(args, "debug", False) or os.environ.get("WORKBENCH_DEBUG"))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # the one place every failure becomes a line (see the module docstring)
        if debug:
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
        print(f"error: {error_line(e)}", file=sys.stderr)
        return exit_code_for(e) if isinstance(e, WorkbenchError) else EXIT_BAD_INPUT


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
