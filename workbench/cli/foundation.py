"""``workbench doctor`` and ``workbench chat``."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import load_config
from ..errors import ConfigError
from ..safe_text import terminal_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="show profiles, which backends answer, and the local model's status",
                       description="Check every profile: ok (answers), not configured (a setting is missing: "
                                   "the line says which), failing (configured but does not answer). Exits 1 "
                                   "only if a profile is failing.")
    p.add_argument("--profile", "-P", action="append", help="check only this profile (repeatable)")
    p.add_argument("--offline", action="store_true", help="do not contact remote backends")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=doctor)

    c = sub.add_parser("chat", help="one chat completion, streamed: the reply on stdout, usage after it (on stderr)")
    c.add_argument("prompt", help="the user message ('-' reads stdin)")
    c.add_argument("--profile", "-P", default=None, help="connection profile (default: local)")
    c.add_argument("--model", "-m", default=None, help="deployment or model (default: the profile's)")
    c.add_argument("--system", "-s", default=None, help="system message")
    c.add_argument("--temperature", "-t", type=float, default=None,
                   help="sampling temperature, 0 to 2 (default: the profile's)")
    c.add_argument("--max-tokens", type=int, default=None, help="longest answer, in tokens (default: the profile's)")
    c.add_argument("--seed", type=int, default=None, help="sampling seed, for repeatable answers where supported")
    c.add_argument("--json", action="store_true", help="print the whole Completion record as JSON (not streamed)")
    c.add_argument("--no-stream", action="store_true", help="print the reply when it is complete, not as it comes")
    c.set_defaults(func=chat)


DOCTOR_MARKS = {"ok": "ok  ", "not configured": "--  ", "failing": "FAIL", "not checked": "..  "}


def _check_profile(prof, offline: bool) -> tuple[str, str, dict]:
    """(status, detail, extra) for one profile: ``ok``, ``not configured``, ``failing`` or ``not checked``."""
    from ..providers import get_provider
    from ..providers.local import local_status
    from ..providers.preflight import check_target

    if prof.backend == "local":
        st = local_status()
        if st.get("ok"):
            return "ok", f"{st['model']} loaded in {st.get('load_s')} s", {"local_model": st}
        return "failing", st.get("error") or "the local model does not load", {"local_model": st}
    try:  # the harness's preflight, so doctor and a run never disagree about a profile
        check = check_target(get_provider(prof), timeout=8, network=not offline)
    except ConfigError as e:  # a setting is missing: a finding to act on, not a failure of a backend
        return "not configured", str(e), {}
    if check.ok is False and prof.source == "built-in" and check.stage in ("settings", "credentials"):
        return "not configured", check.detail, {}  # a built-in profile nobody set up
    if check.ok and offline:
        return "not checked", f"{check.detail}; endpoint not checked (--offline)", {}
    return ("ok" if check.ok else "failing"), check.detail, {}


def doctor(args: argparse.Namespace) -> int:
    cfg = load_config()
    report: dict = {"config_files": [str(f) for f in cfg.files], "default_profile": cfg.default_profile, "profiles": {}}
    names = args.profile or sorted(cfg.profiles)
    for name in names:
        prof = cfg.profile(name)
        status, detail, extra = _check_profile(prof, args.offline)
        report["profiles"][name] = {
            "backend": prof.backend, "source": prof.source, "description": prof.description, "status": status,
            "ok": {"ok": True, "failing": False}.get(status), "detail": detail, **extra,
        }
    failing = [n for n, e in report["profiles"].items() if e["status"] == "failing"]
    if args.json:
        print(json.dumps(report, indent=2))
        return 1 if failing else 0
    print(f"config files: {', '.join(report['config_files']) or '(none; built-in profiles only)'}")
    print(f"default profile: {cfg.default_profile}")
    for name, e in report["profiles"].items():
        print(f"  [{DOCTOR_MARKS[e['status']]}] {name:<12} {e['backend']:<7} {e['status']}: {e['detail']}")
    counts = {s: sum(1 for e in report["profiles"].values() if e["status"] == s) for s in DOCTOR_MARKS}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    if failing:
        print(f"failing: {', '.join(failing)} (configured, but cannot be used: see the lines above)", file=sys.stderr)
    return 1 if failing else 0


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
    stream = not (args.json or args.no_stream)
    out = _StreamWriter(sys.stdout) if stream else None
    result = provider.complete(messages, model=args.model, on_delta=out.write if out else None, **params)
    if args.json:
        print(result.model_dump_json(indent=2))
        return 0
    for w in result.warnings:
        print(f"note: {w}", file=sys.stderr)
    if result.outcome == "prompt_filtered":
        print(f"prompt rejected by the content filter: {', '.join(result.content_filter.flagged)}", file=sys.stderr)
        return 1
    if out is not None:
        out.end()
    else:
        print(terminal_text(result.text))
    print(_usage_line(provider.profile.name, result), file=sys.stderr)
    if result.outcome == "completion_filtered":
        print(f"completion stopped by the content filter: {', '.join(result.content_filter.flagged)}", file=sys.stderr)
    return 0


class _StreamWriter:
    """Text pieces to a terminal or pipe as they arrive: one write and one flush per piece."""

    def __init__(self, stream):
        self.stream = stream
        self.last = "\n"

    def write(self, text: str) -> None:
        text = terminal_text(text)  # per character, so piece by piece is the same as all at once
        self.stream.write(text)
        self.stream.flush()
        self.last = text[-1:] or self.last

    def end(self) -> None:
        if self.last != "\n":
            self.stream.write("\n")
        self.stream.flush()


def _usage_line(profile: str, result) -> str:
    """``[profile model | finish | tokens | first token, total time, tokens/s]`` for stderr."""
    u = result.usage
    extra = f", cached {u.cached_tokens}" if u.cached_tokens else ""
    extra += f", reasoning {u.reasoning_tokens}" if u.reasoning_tokens else ""
    timing = [f"first token {result.first_token_s:.2f} s"] if result.first_token_s is not None else []
    timing.append(f"{result.latency_s:.2f} s")
    if result.tokens_per_s is not None:
        timing.append(f"{result.tokens_per_s:.1f} tokens/s")
    return (f"[{profile} {result.model or result.deployment} | finish {result.finish_reason} | "
            f"tokens: prompt {u.prompt_tokens}, completion {u.completion_tokens}{extra} | {', '.join(timing)}]")
