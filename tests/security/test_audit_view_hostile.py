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
