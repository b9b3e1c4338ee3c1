"""Channel plugins, found through the ``carecast.channels`` entry-point group (built-ins the same way).

A channel's entry-point name is its ``name`` and the ``type`` a config section uses to pick it.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from carecast.errors import ChannelError, ConfigError

if TYPE_CHECKING:
    from channels.base import Channel

GROUP = "carecast.channels"


@cache
def available() -> dict[str, type[Channel]]:
    """Every installed channel class by name.

    Raises ChannelError when a plugin cannot be imported or its name differs from its entry point's.
    """
    found: dict[str, type[Channel]] = {}
    for entry in entry_points(group=GROUP):
        try:
            cls = entry.load()
        except Exception as exc:  # a third party's import error must name the plugin, whatever it is
            raise ChannelError(entry.name, f"plugin {entry.value} cannot be loaded: {exc}") from exc
        if getattr(cls, "name", None) != entry.name:
            raise ChannelError(entry.name, f"{entry.value} declares name {getattr(cls, 'name', None)!r}")
        found[entry.name] = cls
    return found


def channel_class(kind: str) -> type[Channel]:
    """The channel class registered as ``kind``.

    Raises ConfigError (for the ``type`` key) when no such channel is installed.
    """
    classes = available()
    try:
        return classes[kind]
    except KeyError:
        known = ", ".join(sorted(classes)) or "none installed"
        raise ConfigError("", [("type", f"one of the installed channels ({known}), not {kind!r}")]) from None
