"""Many practices on workers: a real ``prefect server start`` on PostgreSQL (a fresh database on the shared
127.0.0.1:5432), ``carecast deploy`` into a process work pool, two ``prefect worker`` processes, and 20 generated
practices (each in its own time zone, eight sharing one SMS sender) whose ledgers share one PostgreSQL database.

One test, in steps that build on each other (a Prefect server on PostgreSQL and two workers are too dear to start
twice): ``practice new`` and ``check``; a broken practice fails only itself; ``deploy`` twice changes nothing; a
triggered publish of every practice completes, every post and text reaching the local provider servers exactly
once and the shared sender's limit never exceeded (measured where the texts arrive); a worker killed mid-run: its
run is marked Crashed by the heartbeat automation and reported to the practice's webhook once, and the next run
resumes its publication, texting those never reached and nobody twice; a sender whose limit is missing fails its
run before anything is claimed.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from carecast import pipeline
from carecast.ledger import Ledger
from carecast.model import now_utc
from carecast.practice import load_settings
from tests.conftest import SAMPLE_CONFIG, fresh_database
from tests.flows.conftest import Webhook
from tests.prefect_server import BIN, NotReached, PrefectServer, start_prefect, stop, wait_for
from tests.providers import RecordedRequest, Reply
from tests.providers.twilio import TwilioServer
from tests.providers.xapi import XApiServer
from tests.test_live_run import ENV, TWILIO, X_SECRETS

pytestmark = [pytest.mark.prefect, pytest.mark.postgres, pytest.mark.timeout(900)]

POOL = "carecast-test"
PRACTICES = 20
SHARED_SENDER = "+13125550100"
SHARING = 8  # the first eight practices text from SHARED_SENDER
SUBSCRIBERS = 2
SLOW_SENDER = "+13125559900"  # the practice whose run is killed texts from a number of its own
SLOW_SUBSCRIBERS = 3
ZONES = [
    "America/New_York", "America/Chicago", "America/Denver", "America/Phoenix", "America/Los_Angeles",
    "America/Anchorage", "Pacific/Honolulu", "America/Puerto_Rico", "America/Detroit", "America/Boise",
    "America/Indiana/Indianapolis", "America/Kentucky/Louisville", "America/Halifax", "America/Toronto",
    "America/Vancouver", "America/Edmonton", "America/Winnipeg", "America/Regina", "America/St_Johns",
    "Europe/London",
]  # fmt: skip
HEARTBEAT = 30  # Prefect's smallest heartbeat
CRASHED_AFTER = 60
#: Seconds before a dead run's claims are resumed: shorter than the crash's detection, so the next run resumes.
CLAIM_TIMEOUT = 30


class TimedTwilio(TwilioServer):
    """The Twilio fake, also noting when each message request arrived (monotonic) and from which sender."""

    def __init__(self) -> None:
        super().__init__(credentials=TWILIO)
        self.arrivals: list[tuple[str, float]] = []

    def handle(self, request: RecordedRequest) -> Reply:
        if request.method == "POST" and request.path.endswith("/Messages.json"):
            self.arrivals.append((str(request.body.get("From")), time.monotonic()))
        return super().handle(request)


def midday_zone() -> str:
    """A fixed-offset zone where it is about noon now, so no text waits for quiet hours to end."""
    offset = (12 - now_utc().hour + 12) % 24 - 12
    return f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC"


def write_practice(
    config: Path, slug: str, number: int, ledger_url: str, sender: str, subscribers: int, twilio: str, x: str, hook: str
) -> None:
    """``config/practices/<slug>.yaml`` with X and SMS to the local servers, one news item, its subscribers, and
    its own X template (the SMS one is the shared one)."""
    own = config / "practices" / slug
    (own / "content").mkdir(parents=True)
    (own / "content" / "news.md").write_text(
        # The date says its zone: without one it is read in the practice's, where it may be tomorrow already.
        f"---\ntitle: Open house at clinic {number}\ndate: {now_utc() - timedelta(minutes=1):%Y-%m-%d %H:%M:%S}+00:00\n"
        "kind: recognition\n---\n"
        "Come and meet the team on Saturday.\n"
    )
    (own / "audience").mkdir()
    zone = midday_zone()
    rows = [
        f"+1312555{number:02d}{k:02d},Subscriber {k},2025-01-14T09:15:00-06:00,web form,I agree to texts.,subscribed,"
        f"{zone}"
        for k in range(subscribers)
    ]
    (own / "audience" / "sms.csv").write_text(
        "phone,name,consent_at,consent_method,consent_text,status,timezone\n" + "\n".join(rows) + "\n"
    )
    (own / "templates" / "x").mkdir(parents=True)
    (own / "templates" / "x" / "post.txt.j2").write_text("{{ practice.short_name }}: {{ item.title }}\n")
    data = {
        "practice": {
            "name": f"Practice {number}",
            "short_name": f"Clinic {number}",
            "timezone": ZONES[number % len(ZONES)],
            "website": f"https://clinic{number}.example.com",
            "email": f"hello@clinic{number}.example.com",
            "phone": "+1 312 555 0142",
            "address": {"street": "1 Main St", "city": "Chicago", "region": "IL", "postal_code": "60614"},
            "utm": {"campaign": f"clinic_{number}"},
        },
        "ledger": {"url": ledger_url, "claim_timeout": CLAIM_TIMEOUT},
        "sources": {"news": {"type": "markdown", "path": f"practices/{slug}/content"}},
        "channels": {
            "x": {
                "type": "x",
                "account": f"@clinic{number}",
                "api_base": x,
                "credentials": {name: {"env": f"X_{name.upper()}"} for name in X_SECRETS.client_kwargs()},
            },
            "sms": {
                "type": "sms",
                "account": sender,
                "from_number": sender,
                "credentials": {
                    "account_sid": TWILIO.account_sid,
                    "auth_token": {"env": "TWILIO_AUTH_TOKEN"},
                    "api_base": twilio,
                },
            },
        },
        "notify": {"webhook": hook, "allow_private": True},
    }
    (config / "practices" / f"{slug}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def carecast(project: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "carecast"), *args], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )


def snapshot(server: PrefectServer) -> dict[str, Any]:
    """What ``deploy`` registers, without ids and timestamps: deployments, limits, automations."""
    api = server.api
    deployments = sorted(
        (
            d["name"],
            d["work_pool_name"],
            d["description"],
            tuple(d["tags"]),
            repr(d["parameters"]),
            repr(d["job_variables"]),
            d["entrypoint"],
            tuple(sorted(repr(s["schedule"]) for s in d["schedules"])),
        )
        for d in api("POST", "/deployments/filter", {"limit": 200})
    )
    limits = sorted(
        (limit["name"], limit["limit"], limit["slot_decay_per_second"], limit["active"])
        for limit in api("POST", "/v2/concurrency_limits/filter", {"limit": 200})
    )
    automations = sorted(
        (a["name"], repr({**a["trigger"], "id": None}), repr(a["actions"]))
        for a in api("POST", "/automations/filter", {"limit": 200})
    )
    return {"deployments": deployments, "limits": limits, "automations": automations}


@contextmanager
def worker(project: Path, env: dict[str, str], name: str) -> Iterator[subprocess.Popen[bytes]]:
    """``prefect worker start`` for the pool, in a session of its own (so its flow-run processes die with it)."""
    with (project / f"{name}.log").open("wb") as log:
        process = subprocess.Popen(
            [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--name", name],
            cwd=project,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                stop(process)


def heartbeat_seen(server: PrefectServer, run_id: str) -> bool:
    events = server.api(
        "POST",
        "/events/filter",
        {
            "filter": {
                "event": {"name": ["prefect.flow-run.heartbeat"]},
                "any_resource": {"id": [f"prefect.flow-run.{run_id}"]},
            }
        },
    )
    return bool(events["events"])


def test_many_practices_on_two_workers(tmp_path: Path, webhook: Webhook) -> None:
    hook_url, received = webhook
    with ExitStack() as stack:
        prefect_db = stack.enter_context(fresh_database("prefect"))
        ledger_db = stack.enter_context(fresh_database("ledger"))
        twilio = stack.enter_context(TimedTwilio())
        x = stack.enter_context(XApiServer(credentials=X_SECRETS, rate_limit=10_000))
        server = stack.enter_context(
            start_prefect(
                tmp_path,
                PREFECT_API_DATABASE_CONNECTION_URL=prefect_db.replace("+psycopg", "+asyncpg"),
                PREFECT_SERVER_UI_ENABLED="false",
                PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false",
                PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED="true",
                PREFECT_WORKER_QUERY_SECONDS="1",
            )
        )
        env = {**server.env, **ENV}
        project = tmp_path / "project"
        config = project / "config"
        config.mkdir(parents=True)
        shutil.copy(SAMPLE_CONFIG / "observances.yaml", config)  # for the practice the starter writes
        shutil.copytree(SAMPLE_CONFIG / "templates", config / "templates")  # shared: every practice's SMS template
        slugs = [f"clinic-{n:02d}" for n in range(1, PRACTICES + 1)]
        for number, slug in enumerate(slugs, start=1):
            sender = SHARED_SENDER if number <= SHARING else f"+1312555{number:02d}99"
            write_practice(config, slug, number, ledger_db, sender, SUBSCRIBERS, twilio.url, x.url, hook_url)
        write_practice(config, "zz-slow", 99, ledger_db, SLOW_SENDER, SLOW_SUBSCRIBERS, twilio.url, x.url, hook_url)

        # Adding a practice: the starter passes check as written (no terminal here: nothing is asked).
        made = carecast(
            project, env, "practice", "new", "lakeside", "--name", "Lakeside PT", "--timezone", "Asia/Tokyo"
        )
        assert made.returncode == 0, made.stderr
        checked = carecast(project, env, "check")
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.count(": OK") == PRACTICES + 2

        # A broken practice fails only itself, in check and in deploy.
        broken = config / "practices" / "broken.yaml"
        broken.write_text("practice: {name: Broken}\nchannels: {}\n")
        checked = carecast(project, env, "check")
        assert checked.returncode == 2 and checked.stdout.count(": OK") == PRACTICES + 2
        assert "broken.yaml" in checked.stderr and "clinic-" not in checked.stderr
        deploy = ["deploy", "--pool", POOL, "--heartbeat", str(HEARTBEAT), "--crashed-after", str(CRASHED_AFTER)]
        first = carecast(project, env, *deploy)
        assert first.returncode == 2 and "broken.yaml" in first.stderr, first.stderr
        broken.unlink()

        # Deploying again changes nothing.
        registered = snapshot(server)
        # ingest, resolve, review, metrics, report, x, sms; lakeside: the same five and 3 channels
        assert len(registered["deployments"]) == (PRACTICES + 1) * 7 + 8
        shared_limit = f"carecast-sms-{TWILIO.account_sid.lower()}-{SHARED_SENDER.lstrip('+')}"
        assert (shared_limit, 1, 1.0, True) in registered["limits"]
        again = carecast(project, env, *deploy)
        assert again.returncode == 0, again.stderr
        assert snapshot(server) == registered

        # Each practice's items and subscribers are in its ledger (its own schema of the shared database).
        for slug in [*slugs, "zz-slow"]:
            settings = load_settings(config / "practices" / f"{slug}.yaml")
            ledger = Ledger(settings.ledger_url())
            pipeline.sync_audience(settings, ledger)
            assert pipeline.ingest(settings, ledger, "news").error is None
            ledger.close()

        # Two workers; a triggered publish of every practice completes.
        api = server.api
        with worker(project, env, "worker-a") as worker_a, worker(project, env, "worker-b") as worker_b:
            runs = {
                slug: str(
                    api(
                        "POST",
                        f"/deployments/{api.deployment('publish', f'{slug}-sms')['id']}/create_flow_run",
                        {"parameters": {"channels": ["x", "sms"]}},
                    )["id"]
                )
                for slug in slugs
            }
            for run_id in runs.values():
                api.finished(run_id, timeout=400)

            tweets = Counter(tweet.text for tweet in x.tweets)
            assert sorted(tweets) == sorted(f"Clinic {n}: Open house at clinic {n}" for n in range(1, PRACTICES + 1))
            assert set(tweets.values()) == {1}
            texts = Counter((m["from"], m["to"], m["body"]) for m in twilio.messages)
            assert len(texts) == PRACTICES * SUBSCRIBERS and set(texts.values()) == {1}
            shared = [moment for sender, moment in twilio.arrivals if sender == SHARED_SENDER]
            assert len(shared) == SHARING * SUBSCRIBERS
            # One text a second: n texts span at least n - 1 seconds, less a second for the wire (on a loaded
            # machine a process paced on time may be descheduled before its request arrives: 0.27 s was seen).
            # Unpaced, the 16 texts would arrive within about a second and fail every pair further than 2 apart.
            for first_text, last_text in itertools.combinations(range(len(shared)), 2):
                span = shared[last_text] - shared[first_text]
                assert span >= (last_text - first_text) - 1.0, (
                    f"texts {first_text}-{last_text} came within {span:.2f} s"
                )

            # A worker killed mid-run with its run: the run is marked Crashed and the practice is told once.
            # Its sender's limit slowed to a text per 100 s, the run is still sending when its worker dies.
            stop(worker_b)
            slow_limit = f"carecast-sms-{TWILIO.account_sid.lower()}-{SLOW_SENDER.lstrip('+')}"
            api("PATCH", f"/v2/concurrency_limits/{slow_limit}", {"slot_decay_per_second": 0.01})
            slow = str(api.start("publish", "zz-slow-sms"))
            wait_for("a heartbeat of the slow run", lambda: heartbeat_seen(server, slow), 120, worker_a)
            # The worker's machine dies: the worker and the run's process (a session of its own) are killed.
            run_process = int(str(api.flow_run(slow)["infrastructure_pid"]).rsplit(":", 1)[-1])
            os.killpg(worker_a.pid, signal.SIGKILL)
            os.killpg(run_process, signal.SIGKILL)
            worker_a.wait()
            api.finished(slow, "CRASHED", timeout=CRASHED_AFTER + 120)

            def about_slow() -> list[dict[str, Any]]:
                return [payload for payload in received if payload["flow_run_id"] == slow]

            wait_for("the crash report", about_slow, 60)
            time.sleep(5)
            (report,) = about_slow()
            assert report["state"] == "CRASHED" and (report["practice"], report["slug"]) == ("Practice 99", "zz-slow")
            assert len(twilio.messages) < PRACTICES * SUBSCRIBERS + SLOW_SUBSCRIBERS
            api("PATCH", f"/v2/concurrency_limits/{slow_limit}", {"slot_decay_per_second": 1.0})

        # The next run, on a new worker, resumes the dead run's publication (its claim went stale): it texts the
        # subscribers never reached, nobody twice, and settles the one whose text was in hand by asking Twilio.
        with worker(project, env, "worker-c") as worker_c:
            before = sum(m["from"] == SLOW_SENDER for m in twilio.messages)
            api.finished(api.start("publish", "zz-slow-sms"), process=worker_c, timeout=300)
            assert sum(m["from"] == SLOW_SENDER for m in twilio.messages) > before
            texts = Counter((m["from"], m["to"], m["body"]) for m in twilio.messages)
            assert set(texts.values()) == {1}

            # A sender whose limit is gone: its run fails before it claims or sends anything, naming the limit.
            api("DELETE", f"/v2/concurrency_limits/{shared_limit}")
            sent = len(twilio.requests)
            with pytest.raises(NotReached, match=f"rate limit {shared_limit} is missing"):
                api.finished(api.start("publish", "clinic-02-sms"), process=worker_c, timeout=300)
            assert len(twilio.requests) == sent
