"""Credentials, named in config by reference and resolved only when a channel sends.

A config never holds a secret's value: it names where the value lives, ``{env: X_API_KEY}`` (an environment
variable) or ``{block: x-api-key}`` (a Prefect ``Secret`` block). The core reads the environment itself; Prefect
blocks are read through a resolver that the Prefect side registers (``register_resolver``), since the core never
imports Prefect. A resolved value is a ``SecretStr``: it prints as ``**********`` in logs, artifacts and errors.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import Field, SecretStr

from carecast.errors import CredentialError
from carecast.strict import Strict


class EnvSecret(Strict):
    env: str = Field(pattern=r"^[A-Z_][A-Z0-9_]*$", description="the environment variable holding the value")

    @property
    def kind(self) -> Literal["env"]:
        return "env"

    @property
    def where(self) -> str:
        return f"environment variable {self.env}"


class BlockSecret(Strict):
    block: str = Field(pattern=r"^[a-z0-9-]+$", description="the name of a Prefect Secret block")

    @property
    def kind(self) -> Literal["block"]:
        return "block"

    @property
    def where(self) -> str:
        return f"Prefect Secret block {self.block!r}"


SecretRef = Annotated[EnvSecret | BlockSecret, Field(union_mode="left_to_right")]

#: Reads a Prefect Secret block by name; registered by the flows, absent when the core runs without Prefect.
_block_resolver: Callable[[str], str] | None = None


def register_resolver(resolver: Callable[[str], str] | None) -> None:
    """Install how ``{block: NAME}`` references are read (the flows install Prefect's ``Secret.load``)."""
    global _block_resolver
    _block_resolver = resolver


def resolve(ref: EnvSecret | BlockSecret) -> SecretStr:
    """The value ``ref`` names.

    Raises CredentialError naming where the value was looked for (never the value) when it is absent or empty,
    or when a block is named but no block resolver is registered.
    """
    if isinstance(ref, EnvSecret):
        value = os.environ.get(ref.env)
    elif _block_resolver is None:
        raise CredentialError(ref.where, "Prefect Secret blocks are read only when CareCast runs on Prefect")
    else:
        try:
            value = _block_resolver(ref.block)
        except Exception as exc:  # whatever Prefect raises, say where we looked and keep the cause
            raise CredentialError(ref.where, f"cannot be read ({type(exc).__name__})") from exc
    if not value:
        raise CredentialError(ref.where, "is not set")
    return SecretStr(value)
