"""The ``workbench`` command. One module per command group; each exposes ``register(subparsers)``.

Commands print results on stdout and problems on stderr, exit 0 on success, 1 on a failure and 2 on bad usage.
A failure - a user's mistake, a backend's refusal, or a bug - is never a traceback: it is one line starting
``error:`` (masked: no key survives it), followed by indented details only when there are several problems to
list. ``--debug`` (anywhere on the line, or ``WORKBENCH_DEBUG=1``) prints the masked traceback as well.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import traceback

from ..errors import WorkbenchError
from ..secrets import install_log_redaction, redact

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
        return 2
    debug = bool(getattr(args, "debug", False) or os.environ.get("WORKBENCH_DEBUG"))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # the one place every failure becomes a line (see the module docstring)
        if debug:
            print(redact(traceback.format_exc()), file=sys.stderr, end="")
        print(f"error: {error_line(e)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
