"""Files that hold secrets: never readable by others, never half-written, whatever was there before.

The attacker here is another local user of the machine (or a container sharing the volume): a passwords file, a
settings file or an API-keys file that is world-readable for a moment, or stays so after an upgrade, hands them the
platform.
"""

from __future__ import annotations

import json
import stat

import pytest

from ativo.airflow.passwords import ensure_passwords, sync
from ativo.config import read_settings_file, settings_file, write_settings_file
from ativo.files import replace_file


def mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_passwords_file_left_readable_by_others_becomes_private_and_keeps_its_passwords(tmp_path):
    path = tmp_path / "passwords.json"
    path.write_text(json.dumps({"admin": "kept-by-the-operator"}))
    path.chmod(0o644)  # written by hand, or by an older release
    got = ensure_passwords(path, ["admin"])
    assert got == {"admin": "kept-by-the-operator"} and mode(path) == 0o600
    got = ensure_passwords(path, ["admin", "operator"])  # a new user: the file is rewritten, still private
    assert got["admin"] == "kept-by-the-operator" and len(got["operator"]) >= 16 and mode(path) == 0o600


def test_the_settings_file_is_private_even_under_a_permissive_umask(tmp_path, monkeypatch):
    import os

    old = os.umask(0)
    try:
        monkeypatch.setenv("ATIVO_HOME", str(tmp_path))
        monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "admin:admin")
        password = sync(tmp_path / "airflow" / "passwords.json", ["admin"])
    finally:
        os.umask(old)
    path = settings_file(tmp_path)
    assert f"ATIVO_AIRFLOW_PASSWORD={password}" in path.read_text()
    assert mode(path) == 0o600 and mode(tmp_path / "airflow" / "passwords.json") == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_a_hostile_value_cannot_add_a_setting_to_the_settings_file(tmp_path):
    from ativo.errors import SettingsError

    write_settings_file(tmp_path, {"ATIVO_AIRFLOW_PASSWORD": "good"})
    for brk in ("\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e"):  # every line break
        with pytest.raises(SettingsError, match="ATIVO_AIRFLOW_PASSWORD: a value in the settings file"):
            write_settings_file(tmp_path, {"ATIVO_AIRFLOW_PASSWORD": f"x{brk}ATIVO_AIRFLOW_URL=http://evil:1/"})
    for padded in (" secret", "secret\t"):  # would not read back as written
        with pytest.raises(SettingsError, match="begin or end with a space"):
            write_settings_file(tmp_path, {"ATIVO_AIRFLOW_PASSWORD": padded})
    assert read_settings_file(settings_file(tmp_path)) == {"ATIVO_AIRFLOW_PASSWORD": "good"}


def test_a_value_with_unicode_reads_back_as_it_was_written(tmp_path):
    value = "pä§s=wörd#1"
    write_settings_file(tmp_path, {"ATIVO_AIRFLOW_PASSWORD": value})
    assert read_settings_file(settings_file(tmp_path)) == {"ATIVO_AIRFLOW_PASSWORD": value}


def test_a_hand_written_line_separator_does_not_start_a_setting(tmp_path):
    settings_file(tmp_path).write_text("ATIVO_AIRFLOW_PASSWORD=abc\u2028ATIVO_AIRFLOW_URL=http://evil:1/\n")
    assert read_settings_file(settings_file(tmp_path)) == {
        "ATIVO_AIRFLOW_PASSWORD": "abc\u2028ATIVO_AIRFLOW_URL=http://evil:1/"
    }


def test_a_failed_write_leaves_the_old_file_whole_and_no_temporary_file(tmp_path):
    path = tmp_path / "api_keys.json"
    replace_file(path, '{"keys": []}')

    with pytest.raises(TypeError):
        replace_file(path, 12345)  # type: ignore[arg-type]  # not bytes: fails while writing
    assert path.read_text() == '{"keys": []}' and sorted(p.name for p in tmp_path.iterdir()) == ["api_keys.json"]


def test_a_redacted_data_file_keeps_the_mode_it_had(tmp_path):
    path = tmp_path / "predictions.jsonl"
    path.write_text("x\n")
    path.chmod(0o640)
    replace_file(path, "[erased]\n", mode=None)
    assert path.read_text() == "[erased]\n" and mode(path) == 0o640


def test_launchers_starting_at_once_agree_on_the_password_airflow_checks(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    env = {"ATIVO_HOME": str(tmp_path)}
    path = tmp_path / "airflow" / "passwords.json"
    with ThreadPoolExecutor(8) as pool:
        got = set(pool.map(lambda _: sync(path, ["admin", "operator"], env), range(16)))
    assert len(got) == 1
    [password] = got
    assert json.loads(path.read_text())["admin"] == password
    assert read_settings_file(settings_file(tmp_path))["ATIVO_AIRFLOW_PASSWORD"] == password
