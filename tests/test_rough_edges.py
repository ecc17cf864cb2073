"""Findings 9 and 10 of the trust issue: what the README promises about users, and clear
answers where the server used to answer 500 or a traceback (the rest of finding 10 is
covered by test_integrity, test_log_trust and test_buckets)."""

from __future__ import annotations

from pathlib import Path

import pytest

from s3facade.admin_client import AdminClient, AdminError
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer

README = Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_says_what_each_user_may_do() -> None:
    """Once per-user access control landed, the old warning had to go (not stay as a lie)."""
    text = " ".join(README.read_text().split())
    assert "full rights" not in text
    assert "Each user owns the buckets it creates" in text
    assert "docs/access-control.md" in text


@pytest.mark.parametrize(
    "params",
    [{"limit": "abc"}, {"limit": "0"}, {"limit": "-5"}, {"limit": "1e9"}, {"since": "yesterday"}],
)
def test_admin_log_refuses_bad_parameters(server: RunningServer, params: dict[str, str]) -> None:
    admin = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    with pytest.raises(AdminError) as refused:
        admin.json("GET", "/-/admin/log", params)
    assert (refused.value.status, refused.value.code) == (400, "InvalidArgument")
    assert admin.json("GET", "/-/admin/log", {"limit": "1"})["events"] is not None


def test_admin_verify_refuses_a_malformed_head(server: RunningServer) -> None:
    admin = AdminClient(server.endpoint, credentials=(ACCESS_KEY, SECRET_KEY))
    with pytest.raises(AdminError) as refused:
        admin.json("POST", "/-/admin/verify", {"head": "12:not-a-hash"})
    assert (refused.value.status, refused.value.code) == (400, "InvalidArgument")
