"""The ``workbench`` command. One module per command group; each exposes ``register(subparsers)``.

Commands print results on stdout and problems on stderr, exit 0 on success, 1 on a workbench error
(with a message that says what to do) and 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys

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
    return parser


def main(argv: list[str] | None = None) -> int:
    install_log_redaction()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except WorkbenchError as e:
        print(f"error: {redact(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
