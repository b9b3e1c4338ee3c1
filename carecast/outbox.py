"""The outbox: a folder holding exactly what each publication would have sent, for channels without credentials.

A file appears whole or not at all (written to a ``.partial-*`` file, then renamed). A write that fails for the
disk's sake (full: ENOSPC, EDQUOT; read-only: EROFS; permissions) is transient: the publication is retried once
space is freed or the folder made writable, and the partial file is removed. Only a file that exists already is
refused for good: what was "sent" is never overwritten.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import suppress
from pathlib import Path
from typing import Any

from carecast.errors import PublishError
from carecast.model import Receipt, now_utc


class Outbox:
    """A folder holding exactly what each publication would have sent: ``<root>/<channel>/<key><suffix>``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, channel: str, key: str, suffix: str, payload: bytes) -> Path:
        """Write one publication's payload atomically and return its path.

        Raises PublishError: permanent when the file exists already (never overwrite what was "sent"); transient
        when it cannot be written (a full or read-only disk: retried once that is fixed), leaving no partial file.
        """
        folder = self.root / channel
        target = folder / f"{key}{suffix}"
        temporary: str | None = None
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if target.exists():
                raise PublishError(channel, f"outbox file {target} exists already", transient=False)
            handle, temporary = tempfile.mkstemp(dir=folder, prefix=".partial-")
            with os.fdopen(handle, "wb") as stream:
                stream.write(payload)
            os.replace(temporary, target)
        except OSError as exc:
            if temporary is not None:
                with suppress(OSError):  # gone already, or the folder forbids even this: nothing more to do
                    os.unlink(temporary)
            why = exc.strerror or type(exc).__name__
            reason = f"cannot write to the outbox {folder} ({why}): free space or make it writable; retried next run"
            raise PublishError(channel, reason, transient=True) from exc
        return target

    def write_json(self, channel: str, key: str, payload: Any) -> Path:
        """Write a provider API's request bodies as readable JSON; raises PublishError as ``write`` does."""
        return self.write(channel, key, ".json", json.dumps(payload, ensure_ascii=False, indent=2).encode())

    def receipt(self, path: Path) -> Receipt:
        return Receipt(location=str(path), sent_at=now_utc())
