"""``workbench finetune-data RUN --where ... --out DIR``: fine-tuning JSONL from a run's approved cells.

The same call as :func:`workbench.finetune.export_finetune_data`; every flag is checked by its validation (a bad
value exits 1 with one ``error:`` line naming the flag) before anything is read or written.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import SpecError

EPILOG = """--where terms (all must hold; default human=approved):
  human=approved      a reviewer passed the output or corrected it   human=pass | fail | corrected | reviewed
  exact=pass          a scorer's verdict (pass, fail, ambiguous, refused, filtered, error)
  variant=NAME  target=LABEL  case=ID  repeat=N  expected  ok

--answer: auto (a corrected output if any, else the output), output, corrected, expected (the case's answer)

Writes DIR/train.jsonl, DIR/validation.jsonl (split by case, seeded) and DIR/finetune.json (what was selected,
left out and why, where each line came from, tokens and training cost per base model, prices dated).
"""

FLAGS = {"where": "--where", "answer": "--answer", "base_model": "--model", "validation": "--validation",
         "seed": "--seed", "epochs": "--epochs", "system": "--system"}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("finetune-data", help="fine-tuning JSONL (chat format) from a run's reviewed cells",
                       description="Export the cells of a run you select (human-approved, corrected, a scorer's "
                                   "passes, expected answers) as OpenAI / Azure OpenAI fine-tuning data: checked "
                                   "against the format rules, split train/validation, with a token count and a "
                                   "training-cost estimate per base model.",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="the run folder (holding results.sqlite)")
    p.add_argument("--where", action="append", metavar="TERM", help="a selection term (repeatable; see below)")
    p.add_argument("--answer", default="auto", help="what the assistant message is (default auto)")
    p.add_argument("--model", "-m", default="gpt-4o-mini", help="the base model to fine-tune (token limit, cost)")
    p.add_argument("--validation", type=float, default=0.2, help="share of cases held out (default 0.2; 0: none)")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/validation split")
    p.add_argument("--epochs", type=int, help="epochs for the estimate (default: the service's default)")
    p.add_argument("--system", default="keep", help="keep or drop the system message, or a system message's text")
    p.add_argument("--out", "-o", required=True, type=Path, help="folder for the files")
    p.add_argument("--strict", action="store_true", help="refuse if any selected cell would be left out")
    p.add_argument("--json", action="store_true", help="print finetune.json instead of the summary")
    p.set_defaults(func=finetune_data)


def finetune_data(args: argparse.Namespace) -> int:
    from ..finetune import export_finetune_data
    from ..finetune.export import FinetuneOptions

    try:  # the options' own validation (the one the Python call runs), reported with the flags' names
        opts = FinetuneOptions(where=args.where, answer=args.answer, base_model=args.model,
                               validation=args.validation, seed=args.seed, epochs=args.epochs, system=args.system)
    except SpecError as e:
        lines = [f"{FLAGS.get(path.split('.')[0].split('[')[0], path)}: {msg}" for path, msg in e.problems]
        raise SpecError("bad flag" + ("s" if len(lines) > 1 else "") + ": " + "; ".join(lines), e.problems) from None
    data = export_finetune_data(args.run, args.out, strict=args.strict, **opts.model_dump())
    if args.json:
        print(json.dumps(data.as_dict(), indent=2, ensure_ascii=False))
    else:
        print(data.summary())
        print(f"wrote {args.out}")
    return 0
