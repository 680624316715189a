"""``workbench doctor`` and ``workbench chat``."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import load_config
from ..errors import ConfigError
from ..safe_text import terminal_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="show profiles, which backends answer, and the local model's status")
    p.add_argument("--profile", action="append", help="check only this profile (repeatable)")
    p.add_argument("--offline", action="store_true", help="do not contact remote backends")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=doctor)

    c = sub.add_parser("chat", help="one chat completion: the reply on stdout, usage after it (on stderr)")
    c.add_argument("prompt", help="the user message ('-' reads stdin)")
    c.add_argument("--profile", "-p", default=None, help="connection profile (default: local)")
    c.add_argument("--model", "-m", default=None, help="deployment or model (default: the profile's)")
    c.add_argument("--system", "-s", default=None, help="system message")
    c.add_argument("--temperature", "-t", type=float, default=None)
    c.add_argument("--max-tokens", type=int, default=None)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--json", action="store_true", help="print the whole Completion record as JSON")
    c.set_defaults(func=chat)


def doctor(args: argparse.Namespace) -> int:
    from ..providers import get_provider
    from ..providers.local import local_status
    from ..providers.preflight import check_target

    cfg = load_config()
    report: dict = {"config_files": [str(f) for f in cfg.files], "default_profile": cfg.default_profile, "profiles": {}}
    names = args.profile or sorted(cfg.profiles)
    for name in names:
        prof = cfg.profile(name)
        entry: dict = {"backend": prof.backend, "source": prof.source, "description": prof.description}
        if prof.backend == "local":
            entry["local_model"] = local_status()
            entry["ok"] = entry["local_model"].get("ok", False)
            entry["detail"] = (f"{entry['local_model']['model']} loaded in {entry['local_model'].get('load_s')} s"
                               if entry["ok"] else entry["local_model"].get("error"))
        else:
            # the harness's preflight, so doctor and a run never disagree about a profile
            try:
                check = check_target(get_provider(prof), timeout=8, network=not args.offline)
                ok, detail = check.ok, check.detail
                if ok is False and prof.source == "built-in" and check.stage in ("settings", "credentials"):
                    ok, detail = None, f"not configured: {detail}"  # a built-in profile nobody set up
                elif ok and args.offline:
                    ok, detail = None, f"{detail}; endpoint not checked (--offline)"
            except ConfigError as e:  # a missing setting is a finding, not a crash
                ok, detail = None, f"not configured: {e}"
            entry["ok"], entry["detail"] = ok, detail
        report["profiles"][name] = entry
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"config files: {', '.join(report['config_files']) or '(none; built-in profiles only)'}")
    print(f"default profile: {cfg.default_profile}")
    for name, e in report["profiles"].items():
        mark = {True: "ok  ", False: "FAIL", None: "--  "}[e["ok"]]
        print(f"  [{mark}] {name:<12} {e['backend']:<7} {e['detail']}")
    return 0


def _chat_params(args: argparse.Namespace) -> dict:
    """The flags as request parameters, checked by the rules every variant's ``params`` are checked by; a bad
    value is refused naming the flag, before a client is even built."""
    from ..experiment import flag_error
    from ..params import param_problems

    flags = {"--temperature": ("temperature", args.temperature), "--max-tokens": ("max_tokens", args.max_tokens),
             "--seed": ("seed", args.seed)}
    params = {name: value for name, value in flags.values() if value is not None}
    problems = dict(param_problems(params))
    bad = [(f"{flag} {value:g}", problems[name]) for flag, (name, value) in flags.items() if name in problems]
    if bad:
        raise flag_error(bad, kind="flag")
    return params


def chat(args: argparse.Namespace) -> int:
    from ..providers import get_provider

    prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    messages = ([{"role": "system", "content": args.system}] if args.system else []) + [
        {"role": "user", "content": prompt}
    ]
    params = _chat_params(args)
    provider = get_provider(args.profile)
    result = provider.complete(messages, model=args.model, **params)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    for w in result.warnings:
        print(f"note: {w}", file=sys.stderr)
    if result.outcome == "prompt_filtered":
        print(f"prompt rejected by the content filter: {', '.join(result.content_filter.flagged)}", file=sys.stderr)
        return 1
    print(terminal_text(result.text))
    u = result.usage
    extra = f", cached {u.cached_tokens}" if u.cached_tokens else ""
    extra += f", reasoning {u.reasoning_tokens}" if u.reasoning_tokens else ""
    print(
        f"[{provider.profile.name} {result.model or result.deployment} | finish {result.finish_reason} | "
        f"tokens: prompt {u.prompt_tokens}, completion {u.completion_tokens}{extra} | {result.latency_s:.2f} s]",
        file=sys.stderr,
    )
    if result.outcome == "completion_filtered":
        print(f"completion stopped by the content filter: {', '.join(result.content_filter.flagged)}", file=sys.stderr)
    return 0
