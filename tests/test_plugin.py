"""A channel plugin from outside this repository: tests/plugin_demo, installed by pip into a folder of its own and
found only through its ``carecast.channels`` entry point. ``carecast run`` publishes through it and
``carecast webhooks`` serves the route it declares, each in a process that sees the plugin on its path.

Installed offline into a virtual environment of its own, the plugin passes its own test, CareCast's contract kit
(:mod:`carecast.testing`); a copy broken on purpose fails it, naming the rules it breaks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import write_config
from tests.test_webhooks_command import start_webhooks

DEMO = Path(__file__).parent / "plugin_demo"
PIP = ["-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index"]


def demo_copy(folder: Path) -> Path:
    """The demo's sources copied to ``folder`` (setuptools writes build/ and egg-info next to what it builds)."""
    return Path(shutil.copytree(DEMO, folder, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info")))


def plugin_venv(folder: Path, plugin: Path) -> Path:
    """A virtual environment in ``folder`` seeing this one's packages (CareCast, pytest, pip, setuptools) and with
    ``plugin`` pip-installed into it, offline; its Python."""
    venv.EnvBuilder(with_pip=False).create(folder)
    python = folder / "bin" / "python"
    # Its site-packages adds ours after its own, .pth files included (CareCast's editable install is one).
    ask = [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    inner = subprocess.run(ask, check=True, capture_output=True, text=True, timeout=60).stdout.strip()
    ours = sysconfig.get_path("purelib")
    (Path(inner) / "carecast-host.pth").write_text(f"import site; site.addsitedir({ours!r})\n", encoding="utf-8")
    subprocess.run([python, *PIP, str(plugin)], check=True, capture_output=True, timeout=240)
    return python


def run_kit(python: Path, plugin: Path, basetemp: Path) -> subprocess.CompletedProcess[str]:
    """The plugin's own test (the contract kit) run by ``python`` from the plugin's folder."""
    command = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--basetemp", str(basetemp), "-rf"]
    command.append(str(plugin / "test_carecast_demo.py"))
    return subprocess.run(command, cwd=plugin, capture_output=True, text=True, timeout=280)


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


def test_no_top_level_channels_or_flows_package_is_installed(tmp_path: Path) -> None:
    # Asked from outside the repository, whose folder would otherwise be on sys.path: `channels` belongs to Django
    # Channels, `flows` to whoever else; CareCast's plugins and flows are found under its own names only.
    names = ("channels", "flows", "carecast_channels", "carecast_flows")
    code = f"import importlib.util as u; print([u.find_spec(n) is not None for n in {names!r}])"
    found = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[False, False, True, True]"
    from importlib.metadata import entry_points

    assert {point.value.split(".")[0] for point in entry_points(group="carecast.channels")} == {"carecast_channels"}


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


#: How the broken copy breaks the contract, by the rule the kit names: (what the demo does, what the copy does).
BREAKS = {
    "test_claims_before_sending": (
        "        return send_once(self.instance, context, send, None)\n",
        "        receipt = send()  # broken on purpose: sent, and only then claimed\n"
        "        context.ledger.claim_delivery(context.publication_id, 'part 1')\n"
        "        context.ledger.finish_delivery(context.publication_id, 'part 1', 'sent')\n"
        "        return receipt\n",
    ),
    "test_no_secret_in_outputs": (
        "        token = resolve(self.config.credentials)\n",
        "        token = resolve(self.config.credentials)\n"
        "        secret = token.get_secret_value().encode()  # broken on purpose: the token written to the outbox\n"
        "        context.outbox.write(self.instance, f'{context.key}-token', '.txt', secret)\n",
    ),
}


def test_the_demo_plugin_passes_the_contract_kit(tmp_path: Path) -> None:
    plugin = demo_copy(tmp_path / "demo")
    result = run_kit(plugin_venv(tmp_path / "venv", plugin), plugin, tmp_path / "kit")
    assert result.returncode == 0, result.stdout + result.stderr
    # Every rule ran, the provider's included: none skipped.
    assert re.search(r"\b9 passed\b", result.stdout) and "skipped" not in result.stdout, result.stdout


def test_a_broken_copy_fails_the_kit_naming_the_rules_it_breaks(tmp_path: Path) -> None:
    plugin = demo_copy(tmp_path / "broken")
    source = plugin / "carecast_demo.py"
    text = source.read_text(encoding="utf-8")
    for demo, broken in BREAKS.values():
        assert demo in text
        text = text.replace(demo, broken)
    source.write_text(text, encoding="utf-8")
    result = run_kit(plugin_venv(tmp_path / "venv", plugin), plugin, tmp_path / "kit")
    failed = set(re.findall(r"^FAILED \S+::TestDemoChannel::(test_\w+)", result.stdout, re.MULTILINE))
    assert set(BREAKS) <= failed, result.stdout + result.stderr
    assert "sent before claiming" in result.stdout and "the credential is written in" in result.stdout
