"""A channel plugin from outside this repository: tests/plugin_demo, installed by pip into a folder of its own and
found only through its ``carecast.channels`` entry point. ``carecast run`` publishes through it and
``carecast webhooks`` serves the route it declares, each in a process that sees the plugin on its path."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import write_config
from tests.test_webhooks import start_webhooks

DEMO = Path(__file__).parent / "plugin_demo"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the demo plugin is pip-installed into (its module and its dist-info with the entry point)."""
    source = tmp_path_factory.mktemp("source") / "plugin_demo"
    # Built from a copy: setuptools writes build/ and egg-info next to the sources it builds.
    shutil.copytree(DEMO, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    site = tmp_path_factory.mktemp("site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*pip, "--target", str(site), str(source)], check=True, capture_output=True, timeout=240)
    assert list(site.glob("carecast_plugin_demo-*.dist-info"))
    return site


@pytest.fixture
def demo_config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {"channels": {"demo": {"type": "demo", "max_age_days": 3650}}})


def environment(site: Path, **more: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]), **more}


def test_the_plugin_is_not_installed_here() -> None:
    from carecast.channel import installed

    assert "demo" not in installed()  # so what follows proves the entry point, nothing imported by name


@pytest.mark.prefect
def test_carecast_run_publishes_through_the_plugin(
    plugin_site: Path, demo_config: Path, tmp_path: Path, prefect_api: None
) -> None:
    from prefect.settings import PREFECT_API_URL

    command = [sys.executable, "-m", "carecast.cli", "run", "--config", str(demo_config), "--channel", "demo"]
    env = environment(plugin_site, PREFECT_API_URL=str(PREFECT_API_URL.value()))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    posts = sorted((tmp_path / ".carecast" / "outbox" / "demo").glob("*.txt"))
    assert posts, result.stdout
    assert "utm_source=demo" in posts[0].read_text()
    assert re.search(r"\bdemo\s+published\b", result.stdout)


@pytest.fixture
def webhooks(plugin_site: Path, demo_config: Path, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """``carecast webhooks`` on a free port: its base URL and the endpoints it listed."""
    process, local = start_webhooks(demo_config, tmp_path, environment(plugin_site))
    try:
        assert process.stdout is not None
        yield local, [process.stdout.readline().strip()]
    finally:
        process.terminate()
        process.communicate(timeout=20)


def test_carecast_webhooks_serves_the_plugins_route(webhooks: tuple[str, list[str]]) -> None:
    base, endpoints = webhooks
    # The sample's SMS channel has no credentials and its newsletter no unsubscribe secret: the demo's is the one.
    assert endpoints == [f"GET {base}/demo/hello"]
    answer = requests.get(f"{base}/demo/hello", params={"name": "Ana"}, timeout=10)
    assert answer.status_code == 200
    assert answer.text == "Hello Ana, from Oakview Physical Therapy (demo)\n"
    assert requests.post(f"{base}/demo/hello", timeout=10).status_code == 405
