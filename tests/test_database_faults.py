"""The ledger's database goes away mid-publish and comes back within ``ledger.retry_budget``: every send the
provider accepted is recorded, nothing is sent twice.

The database is a private PostgreSQL cluster started for the test (initdb and pg_ctl, as the ``postgres`` user, on
a free port), never the shared server on 5432: it is stopped right after Twilio accepted the second text, before
CareCast hears the answer, and started again two seconds later.
"""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from carecast import pipeline
from carecast.ledger import open_ledger
from carecast.practice import load_settings
from tests.conftest import write_config
from tests.providers import RecordedRequest, Reply
from tests.providers.twilio import TwilioServer
from tests.test_live_run import ALL_OPEN, ENV, SMS_RECIPIENTS, TWILIO

pytestmark = pytest.mark.postgres

DOWN_FOR = 2.0


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    return Path(found[-1]).parent if found and shutil.which("runuser") else None


class PrivatePostgres:
    """A PostgreSQL cluster of its own in a temporary folder, run as the ``postgres`` user on a free port."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        # Not under pytest's tmp_path: the postgres user cannot enter root's private folders.
        self.folder = Path(tempfile.mkdtemp(prefix="carecast-pg-"))
        shutil.chown(self.folder, "postgres")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.data = self.folder / "data"
        self._as_postgres("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._as_postgres("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"), "-w", "start")

    def stop(self) -> None:
        self._as_postgres("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        subprocess.run(
            [
                "runuser",
                "-u",
                "postgres",
                "--",
                str(self.bin / "pg_ctl"),
                "-D",
                str(self.data),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)

    def _as_postgres(self, program: str, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", str(self.bin / program), *args],
            capture_output=True,
            check=True,
            timeout=120,
        )


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    cluster = PrivatePostgres(bin_dir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()


class DatabaseGoesDown(TwilioServer):
    """Twilio, except that once it accepted the second text it stops the ledger's database before answering,
    and starts it again ``DOWN_FOR`` seconds later."""

    def __init__(self, cluster: PrivatePostgres) -> None:
        super().__init__(credentials=TWILIO)
        self.cluster = cluster
        self.restarted = threading.Event()

    def finish(self, request: RecordedRequest, reply: Reply) -> Reply:
        if request.method == "POST" and len(self.messages) == 2 and not self.restarted.is_set():
            self.cluster.stop()
            threading.Timer(DOWN_FOR, self._start_again).start()
        return super().finish(request, reply)

    def _start_again(self) -> None:
        self.cluster.start()
        self.restarted.set()


def test_a_database_restarted_mid_publish_loses_no_record_and_sends_nothing_twice(
    private_postgres: PrivatePostgres, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", ENV["TWILIO_AUTH_TOKEN"])
    with DatabaseGoesDown(private_postgres) as twilio:
        credentials = {"account_sid": TWILIO.account_sid, "auth_token": {"env": "TWILIO_AUTH_TOKEN"}}
        config = write_config(
            tmp_path,
            {
                "ledger": {"url": private_postgres.url, "retry_budget": 30},
                "channels": {"sms": {"credentials": {**credentials, "api_base": twilio.url}}},
            },
        )
        settings = load_settings(config)
        ledger = open_ledger(settings)
        pipeline.sync_audience(settings, ledger)
        for source in settings.sources:
            pipeline.ingest(settings, ledger, source)
        pipeline.adapt(settings, ledger, "sms")
        [outcome] = pipeline.publish(settings, ledger, "sms", now=ALL_OPEN)
        assert twilio.restarted.is_set(), "the database went down mid-publish"
        assert outcome.state == "published", outcome.detail
        assert Counter(message["to"] for message in twilio.messages) == dict.fromkeys(SMS_RECIPIENTS, 1)
        [publication] = ledger.publications()
        recorded = {address: d.provider_id for address, d in ledger.deliveries(publication.id).items()}
        assert recorded == {message["to"]: message["sid"] for message in twilio.messages}, "nothing unrecorded"
        assert pipeline.publish(settings, ledger, "sms", now=ALL_OPEN) == []
        ledger.close()
