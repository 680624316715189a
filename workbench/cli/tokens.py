"""``workbench tokens``, ``workbench image-tokens`` and ``workbench cost``: the numbers, for scripts and checks.

All three work offline (the vocabularies ship with the package). ``--json`` prints one object with stable keys.
Azure deployment names resolve through the profiles' ``deployments`` maps (``--profile`` picks one). ``tokens``
counts for the profile's model when no ``--model`` is given (the default profile: the embedded local model).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..errors import DataError
from ..formatting import plural


def register(sub: argparse._SubParsersAction) -> None:
    t = sub.add_parser("tokens", help="count the tokens of a text for a model (offline)")
    t.add_argument("text", nargs="?", help="the text ('-' reads stdin)")
    t.add_argument("--file", "-f", type=Path, help="count the contents of this UTF-8 file instead")
    _common(t, model_required=False)
    t.set_defaults(func=tokens)

    i = sub.add_parser("image-tokens", help="token cost of an image for a vision model (offline)")
    i.add_argument("image", nargs="?", help="image file (PNG, JPEG, WEBP, GIF)")
    i.add_argument("--size", help="image size instead of a file, e.g. 2048x4096")
    i.add_argument("--detail", choices=("low", "high", "auto"), default="auto",
                   help="the request's detail setting (default auto, budgeted as high)")
    _common(i)
    i.set_defaults(func=image_tokens)

    c = sub.add_parser("cost", help="price a call from its token counts")
    c.add_argument("--input-tokens", type=int, required=True, help="prompt tokens (cached ones included)")
    c.add_argument("--output-tokens", type=int, required=True, help="completion tokens (reasoning included)")
    c.add_argument("--cached-tokens", type=int, default=0, help="prompt tokens served from the prompt cache")
    c.add_argument("--reasoning-tokens", type=int, default=0, help="part of the output tokens (shown, not added)")
    c.add_argument("--batch", action="store_true", help="Batch API price (the table's batch_discount)")
    c.add_argument("--prices", type=Path, help="price override file (default: prices_file / WORKBENCH_PRICES)")
    _common(c)
    c.set_defaults(func=cost)


def _common(p: argparse.ArgumentParser, model_required: bool = True) -> None:
    p.add_argument("--model", "-m", required=model_required,
                   help="catalog model, alias or Azure deployment name"
                        + ("" if model_required else " (default: the profile's model)"))
    p.add_argument("--profile", "-P", help="resolve deployment names with this profile (default: all profiles)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _deployments(args: argparse.Namespace) -> dict[str, str]:
    """Deployment -> model maps: the chosen profile's, or every profile's (the default profile's win)."""
    from ..config import profile_deployments

    return profile_deployments(args.profile)


def _emit(args: argparse.Namespace, payload: dict[str, Any], human: str) -> int:
    print(json.dumps(payload, indent=2, ensure_ascii=False) if args.json else human)
    return 0


def _read_text(args: argparse.Namespace) -> str:
    if args.file and args.text is not None:
        raise DataError("Give the text or --file, not both.")
    if args.file:
        try:
            return args.file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"Cannot read {args.file} as UTF-8 text: {e}") from e
    if args.text is None:
        raise DataError("Give the text to count (or '-' for stdin), or --file PATH.")
    return sys.stdin.read() if args.text == "-" else args.text


def tokens(args: argparse.Namespace) -> int:
    from ..config import resolve_model
    from ..tokens import count_text

    text = _read_text(args)
    info = resolve_model(args.model or _default_model(args), _deployments(args))
    n = count_text(text, info.name)
    payload = {"model": info.name, "encoding": info.encoding, "tokens": n, "characters": len(text)}
    human = f"{plural(n, 'token')} ({info.name}, {info.encoding}; {plural(len(text), 'character')})"
    return _emit(args, payload, human)


def _default_model(args: argparse.Namespace) -> str:
    """The model ``workbench chat`` would use: the chosen profile's, else the default profile's."""
    from ..config import get_profile

    return get_profile(args.profile).default_model


def image_tokens(args: argparse.Namespace) -> int:
    from ..images import image_tokens as count
    from ..images import parse_size

    if (args.size is None) == (args.image is None):
        raise DataError("Give an image file or --size WIDTHxHEIGHT (one of them).")
    source = parse_size(args.size) if args.size else args.image
    r = count(source, args.model, args.detail, _deployments(args))
    payload = r.as_dict()
    return _emit(args, payload, f"{plural(r.tokens, 'token')}\n{r.arithmetic}")


def cost(args: argparse.Namespace) -> int:
    from ..costs import load_prices, token_cost
    from ..formatting import usd

    prices = load_prices(args.prices)
    c = token_cost(
        args.model, args.input_tokens, args.output_tokens, cached_tokens=args.cached_tokens,
        reasoning_tokens=args.reasoning_tokens, batch=args.batch, deployments=_deployments(args), prices=prices,
    )
    human = (
        f"{usd(c.usd)} {c.model}{' (batch)' if c.batch else ''}: input {usd(c.input_usd)} "
        f"({plural(c.input_tokens, 'token')}) + cached {usd(c.cached_input_usd)} "
        f"({plural(c.cached_tokens, 'token')}) + output {usd(c.output_usd)} ({plural(c.output_tokens, 'token')})"
        f"\nprices as of {c.as_of} ({prices.source})"
    )
    return _emit(args, c.as_dict(), human)
