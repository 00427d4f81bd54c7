"""Airflow's passwords file, and the password Ativo's own processes sign in to Airflow's API with.

Airflow's simple auth manager checks logins against a JSON file of user → password (``[core]
simple_auth_manager_passwords_file``, for the users of ``[core] simple_auth_manager_users``). Before Airflow's services
start, :func:`sync` writes a random password for each user the file lacks, keeping those it has (edit one there to
change it), readable by its owner only, and hands the library the password of its Airflow user
(``ATIVO_AIRFLOW_USERNAME``, ``admin`` by default) as ``ATIVO_AIRFLOW_PASSWORD`` in the home's settings file
(:func:`ativo.config.write_settings_file`). The library reads that setting, never this file.

docker-compose's ``airflow-init`` and the Helm chart's migrate job run ``python -m ativo.airflow.passwords``; the local
platform (`make run`) calls :func:`sync` before it starts Airflow. This module imports Airflow only in :func:`main`,
and only where the environment does not name the file and the users.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from ativo.config import load_settings, write_settings_file
from ativo.errors import SettingsError
from ativo.files import make_private, replace_file

USERS_VAR = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"
FILE_VAR = "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"


def user_names(users: str) -> list[str]:
    """The user names of a ``simple_auth_manager_users`` value (``admin:admin,operator:op`` → admin, operator)."""
    return [u.split(":")[0].strip() for u in users.split(",") if u.strip()]


def ensure_passwords(path: Path, users: Sequence[str]) -> dict[str, str]:
    """The passwords file at ``path``, with a random password written for each of ``users`` it lacks; user → password.

    What the file holds is kept. It is replaced whole (never half-written) and readable by its owner only (0600).
    """
    make_private(path)  # a file written by hand, or by an older release, readable by others
    old: dict[str, str] = json.loads(path.read_text() or "{}") if path.exists() else {}
    missing = [u for u in users if u not in old]
    if missing:
        replace_file(path, json.dumps({**{u: secrets.token_urlsafe(18) for u in missing}, **old}))
        old = json.loads(path.read_text())
    return {str(k): str(v) for k, v in old.items()}


def sync(path: Path, users: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """Passwords for every user in the file at ``path``; the library's user's password goes to its settings file.

    Args:
        path: the simple auth manager's passwords file.
        users: the user names of ``simple_auth_manager_users``.
        env: the environment whose settings name the Ativo home and the user (``os.environ`` when omitted).

    Returns:
        The password of ``ATIVO_AIRFLOW_USERNAME`` (``admin``), now ``ATIVO_AIRFLOW_PASSWORD`` in
        ``<ATIVO_HOME>/ativo.env``.

    Raises:
        SettingsError: ``ATIVO_AIRFLOW_USERNAME`` is not one of ``users``.
    """
    env = os.environ if env is None else env
    settings = load_settings(env)
    if settings.airflow_username not in users:
        raise SettingsError(
            f"ATIVO_AIRFLOW_USERNAME is {settings.airflow_username!r}, which is not a user of {USERS_VAR} "
            f"({', '.join(users)}): name one of them"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:  # two starting at once: one after the other
        fcntl.flock(lock, fcntl.LOCK_EX)
        password = ensure_passwords(path, users)[settings.airflow_username]
        write_settings_file(settings.home, {"ATIVO_AIRFLOW_PASSWORD": password})
    return password


def main() -> int:
    """``python -m ativo.airflow.passwords``: :func:`sync` for the file and users Airflow's configuration names."""
    users, path = os.environ.get(USERS_VAR), os.environ.get(FILE_VAR)
    if not (users and path):  # airflow.cfg (the Helm chart's) rather than the environment (docker-compose's)
        from airflow.configuration import conf

        users = users or conf.get("core", "simple_auth_manager_users")
        path = path or conf.get("core", "simple_auth_manager_passwords_file")
    names = user_names(users)
    sync(Path(path), names)
    print(f"passwords for {', '.join(names)} in {path}; ATIVO_AIRFLOW_PASSWORD in the Ativo home's settings file")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
