"""Tokens and training cost of a fine-tuning file, per base model, before anything is uploaded.

- Tokens per example: :func:`workbench.tokens.count_messages` over the example's messages (and its ``tools``) with
  the base model's tokenizer - the OpenAI cookbook's method (3 tokens a message, the values, 3 for the reply).
  The service's own count is the bill; this is the estimate people budget with.
- Epochs: the ``epochs`` you will ask for, else the service's default as the cookbook describes it: 3, raised so
  that ``examples x epochs`` reaches 100 (at most 25 epochs) and lowered so it stays under 25,000 (at least 1).
- Cost: training tokens (file tokens x epochs) x the training price per 1M tokens of the base model
  (``[fine_tuning.models]`` in ``data/prices.toml``, dated). A model without a public training price gets no
  figure - "unknown", never $0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..costs import PER_TOKENS, TrainingPrice, load_training_prices
from ..errors import DataError, UnknownModelError

TARGET_EPOCHS, MIN_TARGET_EXAMPLES, MAX_TARGET_EXAMPLES, MIN_EPOCHS, MAX_EPOCHS = 3, 100, 25_000, 1, 25
MIN_TRAINING_EXAMPLES = 10  # OpenAI and Azure OpenAI refuse a training file with fewer examples


def training_price(model: str, prices: Mapping[str, TrainingPrice] | None = None) -> TrainingPrice:
    """The fine-tuning figures of a base model; DataError naming the fine-tunable models when it has none."""
    from ..catalog import load_catalog

    table = prices if prices is not None else load_training_prices()
    try:
        name = load_catalog().resolve(model).name
    except UnknownModelError:
        name = model
    if name not in table:
        raise DataError(f"{model!r} is not a fine-tunable base model in the price table; use one of "
                        f"{', '.join(table)} (or add it under [fine_tuning.models] in a price override file)")
    return table[name]


def example_tokens(example: Mapping[str, Any], model: str) -> int:
    """Tokens of one example for ``model`` (``weight`` marks are not text and are not counted)."""
    from ..tokens import count_messages

    messages = [{k: v for k, v in m.items() if k != "weight"} for m in example.get("messages") or []]
    return count_messages(messages, model, tools=example.get("tools") or None).total


def default_epochs(n_examples: int) -> int:
    if n_examples <= 0:
        return TARGET_EPOCHS
    if n_examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
        return min(MAX_EPOCHS, MIN_TARGET_EXAMPLES // n_examples)
    if n_examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
        return max(MIN_EPOCHS, MAX_TARGET_EXAMPLES // n_examples)
    return TARGET_EPOCHS


@dataclass(frozen=True)
class TrainingEstimate:
    """What training on a file would take for one base model."""

    model: str
    n_examples: int
    file_tokens: int  # tokens in the training file
    epochs: int
    epochs_default: bool  # the service's default (not asked for)
    price_per_1m: float | None  # USD per 1M training tokens; None: no public price
    validation_tokens: int
    over_limit: int  # examples longer than the model's per-example limit (left out of the file)
    example_limit: int | None
    as_of: str
    source: str

    @property
    def training_tokens(self) -> int:
        return self.file_tokens * self.epochs

    @property
    def usd(self) -> float | None:
        return None if self.price_per_1m is None else self.training_tokens * self.price_per_1m / PER_TOKENS

    def as_dict(self) -> dict[str, Any]:
        return {"model": self.model, "examples": self.n_examples, "file_tokens": self.file_tokens,
                "epochs": self.epochs, "epochs_default": self.epochs_default,
                "training_tokens": self.training_tokens, "price_per_1m_training_tokens": self.price_per_1m,
                "usd": self.usd, "validation_tokens": self.validation_tokens, "over_limit": self.over_limit,
                "example_limit": self.example_limit, "as_of": self.as_of, "source": self.source}

    def describe(self) -> str:
        from ..formatting import count, usd

        cost = usd(self.usd) if self.usd is not None else "unknown (no public training price)"
        epochs = f"{self.epochs} epochs" + (" (the service's default)" if self.epochs_default else "")
        return (f"{self.model}: {count(self.file_tokens)} tokens x {epochs} = {count(self.training_tokens)} "
                f"training tokens -> {cost} (prices as of {self.as_of})")


def estimate_training(train: Sequence[Mapping[str, Any]], model: str, *, epochs: int | None = None,
                      validation: Sequence[Mapping[str, Any]] = (),
                      prices: Mapping[str, TrainingPrice] | None = None) -> TrainingEstimate:
    """Tokens and cost of training ``model`` on ``train`` (examples over its limit are counted apart)."""
    if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int) or not 1 <= epochs <= 50):
        raise DataError(f"epochs={epochs!r}: a whole number of epochs from 1 to 50")
    price = training_price(model, prices)
    counts = [example_tokens(ex, price.model) for ex in train]
    limit = price.example_tokens
    kept = [n for n in counts if limit is None or n <= limit]
    n = len(kept)
    return TrainingEstimate(
        model=price.model, n_examples=n, file_tokens=sum(kept), epochs=epochs or default_epochs(n),
        epochs_default=epochs is None, price_per_1m=price.training,
        validation_tokens=sum(example_tokens(ex, price.model) for ex in validation),
        over_limit=len(counts) - n, example_limit=limit, as_of=price.as_of, source=price.source)


def estimate_all(train: Sequence[Mapping[str, Any]], *, epochs: int | None = None,
                 validation: Sequence[Mapping[str, Any]] = (),
                 models: Sequence[str] | None = None) -> list[TrainingEstimate]:
    """:func:`estimate_training` for every fine-tunable base model in the price table (or ``models``)."""
    prices = load_training_prices()
    return [estimate_training(train, m, epochs=epochs, validation=validation, prices=prices)
            for m in (models or list(prices))]
