"""Settings come from the environment when a process starts; the CLI explains itself."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from earthsignature.cli import cli
from earthsignature.errors import ConfigurationError
from earthsignature.settings import load_settings
from earthsignature.storage import LocalStore, S3Store, open_store


def test_defaults_are_embedded(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("REDIS_URL", "TRITON_URL", "EARTHSIG_STORE", "EARTHSIG_REDIS_URL"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.triton_url is None
    assert settings.store == "./earthsig-data"


def test_environment_and_plain_aliases(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example:6379/1")
    monkeypatch.setenv("EARTHSIG_TRITON_URL", "triton:8001")
    monkeypatch.setenv("EARTHSIG_CLOUD_THRESHOLD", "35.5")
    settings = load_settings()
    assert settings.redis_url == "redis://example:6379/1"
    assert settings.triton_url == "triton:8001"
    assert settings.cloud_threshold == 35.5


@pytest.mark.parametrize(
    ("var", "value", "match"),
    [
        ("EARTHSIG_CLOUD_THRESHOLD", "150", "CLOUD_THRESHOLD"),
        ("EARTHSIG_MODEL_VERSION", "0", "MODEL_VERSION"),
        ("EARTHSIG_STORE", "  ", "STORE"),
    ],
)
def test_bad_settings_are_clear_errors(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, match: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigurationError, match=match):
        load_settings()


def test_store_url_selects_backend(tmp_path) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(open_store(load_settings(store=str(tmp_path))), LocalStore)
    s3 = open_store(
        load_settings(store="s3://bucket/some/prefix", s3_endpoint="http://127.0.0.1:1")
    )
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix/")
    with pytest.raises(ConfigurationError, match="names no bucket"):
        open_store(load_settings(store="s3:///nobucket"))


def test_secrets_never_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHSIG_S3_SECRET_KEY", "super-secret-value")
    result = CliRunner().invoke(cli, ["config", "--json"])
    assert result.exit_code == 0, result.output
    assert "super-secret-value" not in result.output
    assert json.loads(result.output)["s3_secret_key"] == "********"


def test_console_script_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-c", "from earthsignature.cli import main; main()", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "config" in out and "store" in out


def test_store_ls_lists_objects(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    LocalStore(tmp_path).put_bytes("catalog/a.json", b"{}")
    monkeypatch.setenv("EARTHSIG_STORE", str(tmp_path))
    result = CliRunner().invoke(cli, ["store", "ls", "catalog/"])
    assert result.exit_code == 0
    assert "catalog/a.json" in result.output


def test_package_errors_exit_2_with_a_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARTHSIG_CLOUD_THRESHOLD", "-3")
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 2
    assert "CLOUD_THRESHOLD" in result.output


def test_readme_documents_every_setting() -> None:
    from pathlib import Path

    from earthsignature.settings import ENV_PREFIX, Settings

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [n for n in Settings.model_fields if f"`{ENV_PREFIX}{n.upper()}`" not in readme]
    assert missing == []
