"""Open a practice: its configuration validated (channel sections by the channel registry), its ledger, its channels.

:func:`open_practice` is the one way code that is handed a config path (flow tasks, the webhook server) gets to the
practice. Opened again in the same process while open (a flow's tasks, running inside their flow), it hands back
the practice already open instead of reading the file and connecting again.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from carecast.channel import PracticeContext, channel_class, make_channel
from carecast.config import DEFAULT_CONFIG, ChannelSettings, ObservanceSource, Settings, parse_settings
from carecast.ledger import open_ledger
from carecast.sources.observances import load_observances


def _channel_config(kind: str) -> type[ChannelSettings]:
    return channel_class(kind).Config


def load_settings(file: Path | str = DEFAULT_CONFIG) -> Settings:
    """Read and validate ``file``, channel sections included (each by its installed plugin's ``Config``), and the
    files its sources name that can be checked without fetching anything (the observances calendar).

    Raises ConfigError listing every problem found (file, key path, expectation), and ChannelError when a channel
    plugin the file names cannot be loaded.
    """
    settings = parse_settings(file, _channel_config)
    for source in settings.sources.values():
        if isinstance(source, ObservanceSource):
            load_observances(settings.path(source.file))  # its own file, key and expectation on error
    return settings


_lock = threading.Lock()
#: The practices open in this process, by resolved config path: (the context, how many openers hold it).
_open: dict[Path, tuple[PracticeContext, int]] = {}


@contextmanager
def open_practice(config_path: Path | str) -> Iterator[PracticeContext]:
    """The practice of ``config_path``: settings, ledger and every configured channel, closed on leaving.

    Raises ConfigError or ChannelError as :func:`load_settings` does, and LedgerError when the ledger cannot be
    opened. Nested or concurrent opens of the same file share one context; the last to leave closes the ledger.
    """
    key = Path(config_path).resolve()
    with _lock:
        held = _open.get(key)
        if held is None:
            settings = load_settings(config_path)
            channels = {name: make_channel(settings, name) for name in settings.channels}
            held = (PracticeContext(settings, open_ledger(settings), channels), 0)
        context, count = held
        _open[key] = (context, count + 1)
    try:
        yield context
    finally:
        with _lock:
            context, count = _open[key]
            if count == 1:
                del _open[key]
                context.ledger.close()
            else:
                _open[key] = (context, count - 1)
