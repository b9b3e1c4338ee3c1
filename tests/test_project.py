"""The project root and the ledger a config leads to, whatever the working folder; a new ledger beside an earlier
one's outbox refused; ``carecast check`` printing both, a password never."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from carecast.cli import main
from carecast.errors import ConfigError
from carecast.ledger import Ledger
from carecast.practice import load_settings
from carecast.project import ledger_exists, project_root, refuse_new_ledger, resolve_ledger_url
from tests.conftest import fresh_database, write_config


def test_the_root_is_the_config_folder_with_prefect_toml_or_pyproject_else_the_one_above(tmp_path: Path) -> None:
    config = tmp_path / "clinic" / "config" / "carecast.yaml"
    practice = tmp_path / "clinic" / "config" / "practices" / "north.yaml"
    practice.parent.mkdir(parents=True)
    assert project_root(config) == tmp_path / "clinic"
    assert project_root(practice) == tmp_path / "clinic"
    (tmp_path / "pyproject.toml").write_text("")  # a folder around the project (the repository around a test's)
    assert project_root(config) == tmp_path / "clinic"
    (tmp_path / "clinic" / "config" / "prefect.toml").write_text("")  # a project whose config sits at its top
    assert project_root(config) == project_root(practice) == tmp_path / "clinic" / "config"


def test_the_ledger_is_the_same_from_any_working_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = write_config(tmp_path)
    expected = f"sqlite:///{tmp_path.resolve() / '.carecast' / 'ledger.db'}"
    places: list[tuple[Path, Path | str]] = [
        (tmp_path, "config/carecast.yaml"),
        (config.parent, "carecast.yaml"),
        (Path("/"), config),
    ]
    for folder, given in places:
        monkeypatch.chdir(folder)
        settings = load_settings(given)
        assert settings.ledger_url() == expected
        assert settings.path(settings.outbox).resolve() == tmp_path.resolve() / ".carecast" / "outbox"
        assert settings.path(settings.templates).is_absolute()
    assert resolve_ledger_url("sqlite:////abs/ledger.db", tmp_path) == "sqlite:////abs/ledger.db"
    assert resolve_ledger_url("sqlite:///:memory:", tmp_path) == "sqlite:///:memory:"


def test_a_ledger_exists_once_made(ledger_url: str) -> None:
    assert not ledger_exists(ledger_url)
    Ledger(ledger_url).close()
    assert ledger_exists(ledger_url)


def test_a_new_ledger_is_refused_beside_an_earlier_outbox_or_prefect_state(tmp_path: Path) -> None:
    url, outbox, home = f"sqlite:///{tmp_path / 'new.db'}", tmp_path / "outbox", tmp_path / "prefect"
    refuse_new_ledger(tmp_path / "carecast.yaml", url, outbox, None)  # nothing before: a first run
    (outbox / "x").mkdir(parents=True)
    refuse_new_ledger(tmp_path / "carecast.yaml", url, outbox, None)  # empty folders are nothing
    (outbox / "x" / "000001.json").write_text("{}")
    with pytest.raises(ConfigError) as refused:
        refuse_new_ledger(tmp_path / "carecast.yaml", url, outbox, home)
    [(key, why)] = refused.value.problems
    assert key == "ledger.url" and str(tmp_path / "new.db") in why and str(outbox) in why and "--new-ledger" in why
    Ledger(url).close()
    refuse_new_ledger(tmp_path / "carecast.yaml", url, outbox, home)  # the ledger exists: nothing to refuse


def test_check_prints_the_resolved_ledger_and_outbox_without_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path)
    monkeypatch.chdir(config.parent)
    assert main(["check", "--config", "carecast.yaml"]) == 0
    shown = capsys.readouterr().out
    assert f"ledger: sqlite:///{tmp_path.resolve() / '.carecast' / 'ledger.db'}" in shown
    assert f"outbox: {tmp_path.resolve() / '.carecast' / 'outbox'}" in shown

    data = yaml.safe_load(config.read_text())
    data["ledger"] = {"url": "postgresql+psycopg://carecast:s3cret-pw@db.example/carecast"}
    config.write_text(yaml.safe_dump(data))
    assert main(["check", "--config", "carecast.yaml"]) == 0
    shown = capsys.readouterr().out
    assert "ledger: postgresql+psycopg://carecast:***@db.example/carecast" in shown and "s3cret" not in shown


@pytest.mark.postgres
def test_each_practice_schema_on_one_postgresql_database_is_its_own_ledger() -> None:
    with fresh_database("project") as url:
        north, south = (f"{url}?options=-csearch_path%3Dcarecast_{slug}" for slug in ("north", "south"))
        assert not ledger_exists(north)
        Ledger(north).close()
        assert ledger_exists(north) and not ledger_exists(south)


@pytest.mark.parametrize("full", ["prefect home", "ledger"])
def test_a_run_with_its_state_on_a_full_disk_is_refused_naming_where_and_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], full: str
) -> None:
    config = write_config(tmp_path)
    ledger_file = Path(load_settings(config).ledger_url().removeprefix("sqlite:///"))
    # The disk is seen full at the operating system's boundary: for Prefect's home, or for the ledger only.
    real = shutil.disk_usage
    home = tmp_path / "state" / "prefect"
    home.mkdir(parents=True)
    monkeypatch.setenv("PREFECT_HOME", str(home))  # the command sets it only when unset, for the rest of the session

    def disk_usage(path: str | Path) -> Any:
        crowded = (Path(path) == home) is (full == "prefect home")
        return real(path)._replace(free=2**20) if crowded else real(path)

    monkeypatch.setattr(shutil, "disk_usage", disk_usage)

    assert main(["run", "--config", str(config)]) == 1

    said = capsys.readouterr().err
    named = home if full == "prefect home" else ledger_file
    assert f"error: {named}: the disk holding it is full (1 MiB free): free space there" in said, said
    assert "nothing was sent" in said and not ledger_file.exists()
