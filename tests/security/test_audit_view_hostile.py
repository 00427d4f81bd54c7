"""The Ativo page's audit log view against hostile values: an actor, ref or reason that is markup renders as text;
a filter that is too long or holds a control character is refused with 400 naming it; the view is behind the login
and says so, loudly, when the chain is broken."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from tests.component.test_ativo_page import airflow_app  # noqa: F401  # a fixture: Airflow's api-server with logins

SCRIPT = "<script>alert(document.cookie)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'


@pytest.fixture
def hostile_log(settings):
    """An audit log whose rows carry markup where a caller chose the value: actor, ref and reason."""
    from ativo import audit
    from ativo.store.db import get_engine

    engine = get_engine(settings.db_url)
    audit.append(engine, "cli_promote", "key:ops", "adult_income", {"version": "3", "reason": "quarter end"})
    audit.append(engine, "page_refused", SCRIPT, "budget", {"role": "user", "reason": BREAKOUT})
    audit.append(engine, "page_budget", "operator", BREAKOUT, {"limit_usd": 60.0, "reason": "x" * 300})
    return engine


def test_hostile_values_render_as_text(airflow_app, hostile_log):  # noqa: F811
    client, token = airflow_app
    page = client.get("/ativo/audit", headers=token("analyst"))
    assert page.status_code == 200, page.text
    assert "<script>" not in page.text and "<img" not in page.text and "onerror=alert(1)>" not in page.text
    assert "&lt;script&gt;alert(document.cookie)&lt;/script&gt;" in page.text
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "chain intact: 3 rows verified" in page.text
    long_cell = 'title="limit_usd=60.0 reason=' + "x" * 300 + '"'  # cut in the cell, whole in its title
    assert long_cell in page.text

    # the filter is echoed back in the form: still text, and it finds the hostile actor's row only
    found = client.get("/ativo/audit", params={"actor": SCRIPT}, headers=token("analyst"))
    assert found.status_code == 200 and "<script>" not in found.text
    assert 'value="&lt;script&gt;alert(document.cookie)&lt;/script&gt;"' in found.text
    kinds = [k for k in ("cli_promote", "page_refused", "page_budget") if f"<td>{k}</td>" in found.text]
    assert kinds == ["page_refused"]
    echoed = client.get("/ativo/audit", params={"spec": BREAKOUT}, headers=token("analyst"))
    assert echoed.status_code == 200 and "<img" not in echoed.text and "<td>page_budget</td>" in echoed.text


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"actor": "a" * 201}, "actor"),
        ({"kind": "k" * 5000}, "kind"),
        ({"spec": "adult_income\x00"}, "spec"),
        ({"actor": "ops\r\nSet-Cookie: x=1"}, "actor"),
    ],
    ids=["actor-201", "kind-5000", "spec-nul", "actor-crlf"],
)
@pytest.mark.parametrize("path", ["/ativo/audit", "/ativo/api/audit"])
def test_a_bad_filter_is_refused_naming_it(airflow_app, hostile_log, params, field, path):  # noqa: F811
    client, token = airflow_app
    refused = client.get(path, params=params, headers=token("analyst"))
    assert refused.status_code == 400
    assert refused.json()["detail"].startswith(f"field '{field}': ")
    assert "Set-Cookie" not in refused.headers


def test_the_view_needs_a_login_and_is_linked_from_the_page(airflow_app, hostile_log):  # noqa: F811
    client, token = airflow_app
    anonymous = client.get("/ativo/audit", headers={"accept": "text/html"}, follow_redirects=False)
    assert anonymous.status_code == 303 and "login" in anonymous.headers["location"]
    assert client.get("/ativo/api/audit").status_code == 401
    assert 'href="audit"' in client.get("/ativo/", headers=token("analyst")).text
    doc = client.get("/ativo/api/audit", params={"kind": "page_refused"}, headers=token("analyst")).json()
    assert [r["actor"] for r in doc["rows"]] == [SCRIPT] and doc["chain"]["ok"]


def test_a_broken_chain_is_shown_at_the_top_as_a_warning(airflow_app, hostile_log):  # noqa: F811
    from ativo.store.db import audit_log

    client, token = airflow_app
    with hostile_log.begin() as conn:  # a reason rewritten behind the platform's back
        conn.execute(update(audit_log).where(audit_log.c.seq == 1).values(payload={"version": "4"}))
    page = client.get("/ativo/audit", params={"kind": "page_budget"}, headers=token("analyst"))
    assert page.status_code == 200
    verdict = page.text.split("<h1>Audit log</h1>", 1)[1].split("<form", 1)[0]  # above the filters and the rows
    assert 'class="note bad" role="alert"' in verdict and "chain BROKEN at row 1" in verdict
    assert "chain intact" not in page.text


def test_a_row_changed_after_a_verified_view_is_broken_on_the_next_one(airflow_app, hostile_log):  # noqa: F811
    from ativo.store.db import audit_log

    client, token = airflow_app
    first = client.get("/ativo/api/audit", headers=token("analyst")).json()["chain"]
    assert first == {"ok": True, "rows": 3, "first_bad": None, "problems": []}
    with hostile_log.begin() as conn:  # the max seq is unchanged: only the row's content says it was edited
        conn.execute(update(audit_log).where(audit_log.c.seq == 2).values(payload={"role": "op", "reason": "ok"}))
    chain = client.get("/ativo/api/audit", headers=token("analyst")).json()["chain"]
    assert not chain["ok"] and chain["first_bad"] == 2 and chain["rows"] == 3
    assert "chain BROKEN at row 2" in client.get("/ativo/audit", headers=token("analyst")).text


@pytest.fixture
def no_role(airflow_app, monkeypatch, tmp_path):  # noqa: F811
    """Headers of a user who signs in but holds no role (``nobody:``): the auth manager grants such a user nothing."""
    import json
    import os
    from pathlib import Path

    client, _ = airflow_app
    users = os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"]
    passwords = json.loads(Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]).read_text())
    (tmp_path / "with-nobody.json").write_text(json.dumps({**passwords, "nobody": "n-pass"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", f"{users},nobody:")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(tmp_path / "with-nobody.json"))
    signed_in = client.post("/auth/token", json={"username": "nobody", "password": "n-pass"})
    assert signed_in.status_code == 201, signed_in.text
    return {"Authorization": f"Bearer {signed_in.json()['access_token']}"}


@pytest.mark.parametrize("path", ["/ativo/audit", "/ativo/api/audit"])
def test_a_user_without_the_audit_permission_gets_403(airflow_app, hostile_log, no_role, path):  # noqa: F811
    client, token = airflow_app
    refused = client.get(path, headers=no_role)
    assert refused.status_code == 403
    assert refused.json()["detail"] == "the audit log needs the permission to read audit logs; nobody lacks it"
    assert "cli_promote" not in refused.text and "chain" not in refused.text
    assert client.get(path, headers=token("analyst")).status_code == 200  # the same view, for a reader
