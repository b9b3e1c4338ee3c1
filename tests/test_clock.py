"""The time-dependent tests again, at forced hours of the sample practice's day, under libfaketime.

A test that injects its moments into the core (``now=``) still passes at any hour only if nothing on the way reads
the real clock instead: quiet hours, the practice's date, a retry's wait. Each moment below runs those test modules
in a pytest of their own whose every clock (``time``, ``datetime``, children's too) says that moment and then
runs on: 02:00, 13:00 and 23:30 in Chicago (the sample practice's zone; 23:30 is already tomorrow in UTC) and the
spring-forward night of 2027, the clock crossing 02:00 CST while the tests run. A clock leak fails here, in CI,
rather than at 2 a.m. for a practice.

libfaketime is Debian's ``faketime`` (``.ci/run`` installs it); without it these are skipped, and under
``CI=true`` they fail instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

#: Each moment in UTC (what libfaketime is given), named by the sample practice's local time.
MOMENTS = {
    "02:00 Chicago": "2026-12-08 08:00:00",
    "13:00 Chicago": "2026-12-08 19:00:00",
    "23:30 Chicago": "2026-12-09 05:30:00",
    "spring forward": "2027-03-14 07:58:00",  # 01:58 CST; at 08:00 UTC Chicago's clocks jump to 03:00 CDT
}

#: The tests whose outcome depends on the hour or the date: quiet hours, schedules, dated sources, consent and
#: authorisation expiry, claims that go stale, tokens that expire.
MODULES = [
    "tests/test_live_run.py",
    "tests/test_pipeline.py",
    "tests/test_schedule.py",
    "tests/test_compliance.py",
    "tests/sources/test_markdown.py",
    "tests/sources/test_observances.py",
    "tests/test_audience.py",
    "tests/test_unsubscribe.py",
    "tests/channels/test_sms.py",
    "tests/channels/test_sms_live.py",
    "tests/channels/test_sms_batches.py",
    "tests/channels/test_linkedin.py",
    "tests/channels/test_gbp.py",
]


@pytest.mark.parametrize("moment", list(MOMENTS.values()), ids=list(MOMENTS))
def test_time_dependent_tests_pass_at_a_forced_hour(moment: str) -> None:
    faketime = shutil.which("faketime")
    if faketime is None:
        if os.environ.get("CI") == "true":
            pytest.fail("libfaketime is missing: apt-get install faketime")
        pytest.skip("libfaketime is missing: apt-get install faketime")
    # The clock starts at the moment and runs on (DONT_RESET: one clock for the process and its children).
    env = {**os.environ, "FAKETIME_DONT_RESET": "1", "TZ": "UTC"}
    command = [faketime, "-f", f"@{moment}", sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider"]
    command += ["-m", "not prefect and not slow", "--show-capture=no", "--tb=short", *MODULES]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1700)
    assert result.returncode == 0, f"at {moment} UTC:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
