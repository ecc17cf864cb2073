"""Configuration is checked wherever it comes from: the TOML file (errors name the file, line
and key), the S3FACADE_<KEY> environment twins, the flags; root credentials are both set or
neither, and the published development keys never guard a server beyond loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from s3facade.config import DEV_ACCESS_KEY_ID, load_config
from s3facade.config_values import SERVER_KEYS, ConfigInvalid, env_name

ROOT = {"S3FACADE_ACCESS_KEY_ID": "AKIDROOT0001", "S3FACADE_SECRET_ACCESS_KEY": "root-secret"}


def written(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s3facade.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[server]\nport = "9102"\n', "s3facade.toml:2: [server] port: expected an integer"),
        ("[server]\nport = 99999\n", "s3facade.toml:2: [server] port: expected an integer"),
        ("# x\n[sever]\nport = 1\n", "s3facade.toml:2: [sever]: unknown section"),
        ("[server]\n\nprot = 1\n", "s3facade.toml:3: [server] prot: unknown setting"),
        ("[server]\ngc_interval_seconds = -1\n", "gc_interval_seconds: expected a number"),
        ("[server]\ntest_clock = 1\n", "test_clock: expected true or false"),
        ("[server]\nhead_trusted_keys = 'k'\n", "head_trusted_keys: expected a list"),
        ('[users.ci]\ndisplay_name = "ci"\n', "s3facade.toml:1: [users.ci]: a user needs a secret"),
        ('[users.ci]\nsecret = "short"\n', "s3facade.toml:2: [users.ci] secret: a secret needs"),
        ('[users.ci]\nsecret = "long-enough"\nadmn = true\n', "[users.ci] admn: unknown"),
        ('[users.anonymous]\nsecret = "long-enough"\n', "kept for unsigned requests"),
        ("[server\nport = 1\n", "s3facade.toml: not valid TOML"),
        ("backends = 3\n", "[backends]: expected a table"),
    ],
)
def test_a_bad_file_is_refused_with_where_and_why(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigInvalid) as raised:
        load_config(written(tmp_path, text), env=ROOT)
    assert message in str(raised.value)


def test_every_setting_has_an_environment_twin_and_flags_come_last(tmp_path: Path) -> None:
    path = written(tmp_path, "[server]\nport = 9102\nsql_threads = 2\n")
    env = {**ROOT, "S3FACADE_PORT": "9103", "S3FACADE_CONFIG": str(path),
           "S3FACADE_TEST_CLOCK": "true", "S3FACADE_HEAD_TRUSTED_KEYS": "aa, bb"}  # fmt: skip
    config = load_config(None, env=env)  # the file named by S3FACADE_CONFIG
    assert (config.port, config.sql_threads, config.test_clock) == (9103, 2, True)
    assert config.head_trusted_keys == ("aa", "bb")
    assert load_config(None, {"port": 9104}, env=env).port == 9104
    assert all(env_name(key).startswith("S3FACADE_") for key in SERVER_KEYS)
    with pytest.raises(ConfigInvalid, match="environment S3FACADE_MAX_CONNECTIONS"):
        load_config(None, env={**ROOT, "S3FACADE_MAX_CONNECTIONS": "0"})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"S3FACADE_ACCESS_KEY_ID": "AKID1"}, "set both"),
        ({"S3FACADE_SECRET_ACCESS_KEY": "a-long-secret"}, "set both"),
        ({"S3FACADE_ACCESS_KEY_ID": "AKID1", "S3FACADE_SECRET_ACCESS_KEY": "short"}, "8 char"),
    ],
)
def test_root_credentials_are_both_set_or_neither(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigInvalid, match=message):
        load_config(None, env=env)
    config = load_config(None, env={})
    assert config.dev_credentials and config.root_access_key_id == DEV_ACCESS_KEY_ID


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "s3facade", *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_serve_refuses_development_keys_beyond_loopback(tmp_path: Path) -> None:
    refused = run_cli("serve", "--host", "0.0.0.0", "--data-dir", str(tmp_path / "d"), env={})
    assert refused.returncode == 2
    assert "refusing to serve on 0.0.0.0 with the development credentials" in refused.stderr
    assert not (tmp_path / "d").exists()  # nothing was created
    bad_port = run_cli("serve", "--port", "99999", env={})
    assert bad_port.returncode == 2 and "expected an integer from 1 to 65535" in bad_port.stderr


def test_config_check_prints_the_effective_configuration_without_secrets(tmp_path: Path) -> None:
    path = written(
        tmp_path, '[server]\nport = 9102\n\n[users.AKIDCI01]\nsecret = "ci-secret-value"\n'
    )
    shown = run_cli("config", "check", str(path), env={**ROOT, "S3FACADE_REGION": "eu-west-1"})
    assert shown.returncode == 0, shown.stderr
    assert "port = 9102" in shown.stdout and 'region = "eu-west-1"' in shown.stdout
    assert "[users.AKIDCI01]" in shown.stdout and "[users.AKIDROOT0001]" in shown.stdout
    assert "ci-secret-value" not in shown.stdout and "root-secret" not in shown.stdout
    broken = run_cli("config", "check", str(written(tmp_path, "[sever]\n")), env=ROOT)
    assert broken.returncode == 2 and "s3facade.toml:1: [sever]: unknown section" in broken.stderr
    assert "Traceback" not in broken.stderr


LAKE = (
    '[log]\ntype = "ducklake"\ncatalog = "dbname=lake host=127.0.0.1 port=55432"\n'
    'data_path = "s3://lake-bucket/events/"\nendpoint = "http://127.0.0.1:7480"\n'
    'gateway_id = "gw1"\n'
)
LAKE_KEYS = {"S3FACADE_LOG_ACCESS_KEY_ID": "lake-key", "S3FACADE_LOG_SECRET_ACCESS_KEY": "lk-se"}


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        (LAKE.replace('gateway_id = "gw1"\n', ""), LAKE_KEYS, "a ducklake log needs gateway_id"),
        (LAKE, {}, "needs S3FACADE_LOG_ACCESS_KEY_ID in the environment"),
        (LAKE.replace("s3://lake-bucket/events/", "/tmp/x"), LAKE_KEYS, "data_path: expected"),
        (LAKE.replace('"gw1"', '"gw 1"'), LAKE_KEYS, "gateway_id: expected a gateway id"),
        (LAKE.replace("http://127.0.0.1:7480", "127.0.0.1'"), LAKE_KEYS, "endpoint: expected"),
        ('[log]\ncatalog = "dbname=x"\n', {}, 'settings for type = "ducklake" only'),
        ('[log]\ntype = "sqlite"\n', {}, "type: expected one of duckdb, ducklake"),
    ],
)
def test_a_shared_log_needs_all_of_its_settings(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigInvalid, match=message):
        load_config(written(tmp_path, text), env={**ROOT, **env})


def test_a_shared_log_is_shown_without_its_credentials(tmp_path: Path) -> None:
    config = load_config(written(tmp_path, LAKE), env={**ROOT, **LAKE_KEYS})
    assert config.log["gateway_id"] == "gw1" and config.log["access_key_id"] == "lake-key"
    shown = run_cli("config", "check", str(written(tmp_path, LAKE)), env={**ROOT, **LAKE_KEYS})
    assert shown.returncode == 0, shown.stderr
    assert 'gateway_id = "gw1"' in shown.stdout and 'type = "ducklake"' in shown.stdout
    assert "lake-key" not in shown.stdout and "lk-se" not in shown.stdout


def test_the_readme_lists_every_setting_with_its_environment_twin() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    missing = [key for key in SERVER_KEYS if f"`{env_name(key)}` | `{key}`" not in readme]
    assert not missing, missing


def test_a_busy_port_is_not_announced_as_served(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = run_cli("serve", "--port", port, "--data-dir", str(tmp_path / "d"), env=ROOT)
    assert busy.returncode != 0
    assert "address already in use" in busy.stderr
    assert "s3facade serving" not in busy.stderr
