"""How people review an experiment's cells: the ``review:`` section of a spec (light: the spec imports it).

::

    review:
      scale: [1, 5]          # reviewers give 1..5 instead of pass/fail (pass/fail still works)
      pass_at: 4             # a value of 4 or more counts as a pass (default: the top of the scale)
      labels: {1: wrong, 3: partly right, 5: perfect}
      instructions: Is the label right for the review's overall tone?
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from ..schema import Model


class ReviewSpec(Model):
    """The experiment's review scale and instructions (all optional: without a scale, reviewers say pass/fail)."""

    model_config = ConfigDict(extra="forbid")
    _spec_noun = "review spec"

    scale: tuple[int, int] | None = Field(None, description="lowest and highest value a reviewer can give")
    pass_at: float | None = Field(None, description="the value from which a review counts as a pass")
    labels: dict[int, str] = Field(default_factory=dict, description="what some values mean, shown to reviewers")
    instructions: str = Field("", description="what reviewers should look for, shown above each cell")

    @model_validator(mode="after")
    def _consistent(self) -> ReviewSpec:
        if self.scale is None:
            if self.pass_at is not None or self.labels:
                raise ValueError("pass_at and labels need a scale, e.g. scale: [1, 5]")
            return self
        low, high = self.scale
        if low >= high:
            raise ValueError(f"scale [{low}, {high}]: the first value is the lowest, the second the highest")
        if high - low > 20:
            raise ValueError(f"scale [{low}, {high}] has {high - low + 1} steps; use at most 21 (e.g. 0..10)")
        if self.pass_at is not None and not low <= self.pass_at <= high:
            raise ValueError(f"pass_at {self.pass_at:g} is outside the scale [{low}, {high}]")
        outside = sorted(k for k in self.labels if not low <= k <= high)
        if outside:
            raise ValueError(f"labels for {outside} are outside the scale [{low}, {high}]")
        return self

    @property
    def threshold(self) -> float | None:
        """The value from which a review passes (``pass_at``, else the top of the scale)."""
        if self.scale is None:
            return None
        return float(self.pass_at if self.pass_at is not None else self.scale[1])

    def values(self) -> list[int]:
        return list(range(self.scale[0], self.scale[1] + 1)) if self.scale else []
