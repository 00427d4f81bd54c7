"""`/health` needs no key: an invalid spec file it reports names the file and where it is broken, never the folder's
host path nor the broken line itself (which may hold anything an operator typed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.security

SECRET = "hunter2-typed-by-mistake"


def test_a_broken_spec_file_shows_no_host_path_and_no_quoted_line(tmp_path):
    from ativo.api.app import _public_reason
    from ativo.errors import SpecError
    from ativo.spec import load_spec

    path = tmp_path / "credit.yaml"
    path.write_text(f"name: credit\npassword: {SECRET}\nbad: [\n  x: y\n")
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    reason = _public_reason(caught.value.problems, path)
    assert str(tmp_path) not in reason and SECRET not in reason and "\n" not in reason
    assert "credit.yaml" in reason and "YAML" in reason and "line " in reason
