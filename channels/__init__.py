"""Channel plugins, found through the ``carecast.channels`` entry-point group (built-ins the same way).

A channel's entry-point name is its ``name`` and the ``type`` a config section uses to pick it. Only the channels a
config uses are imported, so one broken third-party plugin cannot break the others.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

from carecast.errors import ChannelError, ConfigError

if TYPE_CHECKING:
    from channels.base import Channel

GROUP = "carecast.channels"


def _registered() -> dict[str, EntryPoint]:
    return {entry.name: entry for entry in entry_points(group=GROUP)}


def installed() -> list[str]:
    """The names of every installed channel, without importing any."""
    return sorted(_registered())


@cache
def channel_class(kind: str) -> type[Channel]:
    """The channel class registered as ``kind``.

    Raises ConfigError (for the ``type`` key) when no such channel is installed, and ChannelError when its plugin
    cannot be imported or declares another name than its entry point's.
    """
    registered = _registered()
    if kind not in registered:
        known = ", ".join(sorted(registered)) or "none installed"
        raise ConfigError("", [("type", f"one of the installed channels ({known}), not {kind!r}")])
    entry = registered[kind]
    try:
        cls = entry.load()
    except Exception as exc:  # a third party's import error must name the plugin, whatever it is
        raise ChannelError(kind, f"plugin {entry.value} cannot be loaded: {exc}") from exc
    if getattr(cls, "name", None) != kind:
        raise ChannelError(kind, f"{entry.value} declares name {getattr(cls, 'name', None)!r}")
    return cls
