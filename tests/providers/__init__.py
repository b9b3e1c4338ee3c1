"""Real local servers that speak the providers' contracts, for tests and for trying a channel by hand.

Their shared plumbing (a recording, fault-injecting HTTP server on a free loopback port) is part of the plugin
kit, :mod:`carecast.testing.providers`, so a third-party channel's author builds their fakes on the same parts.
"""

from carecast.testing.providers import (
    DROP,
    LOOPBACK,
    LocalHttpServer,
    RecordedRequest,
    Reply,
    Serving,
    Storm,
    UploadedFile,
    parse_body,
    serve_by_hand,
)

__all__ = [
    "DROP",
    "LOOPBACK",
    "LocalHttpServer",
    "RecordedRequest",
    "Reply",
    "Serving",
    "Storm",
    "UploadedFile",
    "parse_body",
    "serve_by_hand",
]
