"""The plugin kit: what a channel's author runs with pytest on their own plugin.

- :class:`ChannelContract` (:mod:`carecast.testing.contract`): the channel contract as tests, one per rule;
  subclass it in a test module, set ``channel_type``, and give a fake provider to run the provider rules (any
  :class:`FakeProvider`: a ``with`` block with a ``url`` and ``watch``);
- :mod:`carecast.testing.providers`: the parts to build that fake provider, a real local HTTP server that records
  each request and can be told to fail (:class:`LocalHttpServer`, :class:`Reply`, :class:`RecordedRequest`).

CareCast runs the same kit on its own channels (``tests/channels/test_contract.py``). Requires pytest.
"""

from __future__ import annotations

from carecast.testing.contract import (
    ITEM,
    SECRET_ENV,
    ChannelContract,
    FakeProvider,
    Publishing,
    practice_config,
    sends,
)
from carecast.testing.providers import DROP, LocalHttpServer, RecordedRequest, Reply, Storm, UploadedFile

__all__ = [
    "DROP",
    "ITEM",
    "SECRET_ENV",
    "ChannelContract",
    "FakeProvider",
    "LocalHttpServer",
    "Publishing",
    "RecordedRequest",
    "Reply",
    "Storm",
    "UploadedFile",
    "practice_config",
    "sends",
]
