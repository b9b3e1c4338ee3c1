"""Prefect's temporary local API for ``carecast run``, started by one process at a time.

Without ``PREFECT_API_URL`` each ``carecast run`` starts Prefect's temporary server on the project's Prefect home;
on a fresh home that server first creates its database, and two runs starting at once would migrate it together
and fail. So the server is started here, before the flow asks for it, under an exclusive lock on a file in the
home: the first run migrates, the next one waits and finds it done.
"""

from __future__ import annotations

import fcntl

from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, PREFECT_HOME, PREFECT_SERVER_EPHEMERAL_ENABLED

#: Seconds the temporary server may take to start: the first start on a fresh home migrates its database.
STARTUP_TIMEOUT = 120


def start_temporary_api() -> None:
    """Start the temporary API this process's flows will use (a no-op with ``PREFECT_API_URL`` set).

    Raises RuntimeError (Prefect's) when the server does not answer within ``STARTUP_TIMEOUT`` seconds.
    """
    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    home = PREFECT_HOME.value()
    home.mkdir(parents=True, exist_ok=True)
    with (home / "carecast-start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        SubprocessASGIServer().start(timeout=STARTUP_TIMEOUT)
