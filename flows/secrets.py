"""Lets config name credentials as Prefect ``Secret`` blocks (``{block: name}``): importing this registers the reader.

The core resolves references without importing Prefect; the flows (and ``carecast check --live``) import this
module so that ``{block: ...}`` references are read from the Prefect API the run talks to.
"""

from __future__ import annotations

from typing import cast

from prefect.blocks.system import Secret

from carecast.secrets import register_resolver


def read_secret_block(name: str) -> str:
    """The value of the Prefect Secret block ``name``; raises whatever Prefect raises when it cannot be read."""
    # Called from synchronous code (tasks, the CLI), where Prefect's sync-compatible load returns the block itself.
    block = cast(Secret[str], Secret.load(name))
    return str(block.get())


register_resolver(read_secret_block)
