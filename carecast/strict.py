"""The base of every configuration model: unknown keys are errors, values are immutable once loaded."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    """Base of every config model (carecast.yaml, channel sections, slots, observances, front matter)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
