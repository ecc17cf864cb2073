"""The provenance console (/-/console) on a real server with three users (tests.access_server):
sign-in and its cookie, hostile names escaped, the S3 API's rights, the verify status, and
one end-to-end run in Debian's headless Chromium driven by Selenium (tests/console_browser)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import ssl
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from s3facade.authorization import DenialBudget
from s3facade.console.session import COOKIE, SessionSigner
from tests.access_server import ALICE, BOB, SECRETS, Clients
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.test_tls import self_signed

CONSOLE = "/-/console"


def browser(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.endpoint, timeout=30, follow_redirects=False)


def sign_in(server: RunningServer, access_key: str, secret: str) -> httpx.Client:
    client = browser(server)
    answer = client.post(f"{CONSOLE}/sign-in", data={"access_key": access_key, "secret": secret})
    assert answer.status_code == 303, answer.text
    assert COOKIE in client.cookies
    return client


@pytest.fixture(scope="module")
def alice(users: Clients) -> Iterator[httpx.Client]:
    client = sign_in(users.server, ALICE.access_key, SECRETS[ALICE.access_key])
    yield client
    client.close()


@pytest.fixture(scope="module")
def bob(users: Clients) -> Iterator[httpx.Client]:
    client = sign_in(users.server, BOB.access_key, SECRETS[BOB.access_key])
    yield client
    client.close()


@pytest.fixture(scope="module")
def root(users: Clients) -> Iterator[httpx.Client]:
    client = sign_in(users.server, ACCESS_KEY, SECRET_KEY)
    yield client
    client.close()


def name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def object_page(client: httpx.Client, bucket: str, key: str, **more: str) -> httpx.Response:
    return client.get(f"{CONSOLE}/b/{bucket}/object", params={"key": key, **more})


# -- sign-in, session ----------------------------------------------------------------------


def test_sign_in_sets_a_hardened_session_cookie(users: Clients) -> None:
    client = browser(users.server)
    form = {"access_key": ALICE.access_key, "secret": SECRETS[ALICE.access_key]}
    answer = client.post(f"{CONSOLE}/sign-in", data={**form, "next": f"{CONSOLE}/buckets"})
    assert answer.status_code == 303
    assert answer.headers["location"] == f"{CONSOLE}/buckets"
    cookie = answer.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "samesite", "max-age"} <= flags, cookie
    assert "Path=/-/console" in cookie and "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie
    assert "secure" not in flags  # plain HTTP here; test_tls-style servers get Secure
    page = client.get(f"{CONSOLE}/buckets")
    assert page.status_code == 200
    assert "signed in as Alice" in page.text
    headers = page.headers
    assert "default-src 'self'" in headers["content-security-policy"]
    assert "script-src 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


def test_the_cookie_is_secure_over_https(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    args = ["--tls-cert", str(cert), "--tls-key", str(key)]
    server = RunningServer(tmp_path / "data", extra_args=args, ca_file=cert).start()
    try:
        with httpx.Client(base_url=server.endpoint, verify=ssl_context(cert)) as client:
            form = {"access_key": ACCESS_KEY, "secret": SECRET_KEY}
            answer = client.post(f"{CONSOLE}/sign-in", data=form)
            assert answer.status_code == 303
            assert "; secure" in answer.headers["set-cookie"].lower()
            assert client.get(f"{CONSOLE}/buckets").status_code == 200
    finally:
        server.stop()


def test_wrong_credentials_get_the_same_plain_403(users: Clients) -> None:
    answers = [
        browser(users.server).post(f"{CONSOLE}/sign-in", data={"access_key": key, "secret": secret})
        for key, secret in (
            (ALICE.access_key, "not-alices-secret"),
            ("AKIDNOBODY0000000000", SECRETS[ALICE.access_key]),
            (ALICE.access_key, SECRETS[BOB.access_key]),
            ("", ""),
        )
    ]
    for answer in answers:
        assert answer.status_code == 403
        assert "set-cookie" not in answer.headers
        assert answer.headers["content-type"].startswith("text/html")
    assert len({a.text for a in answers}) == 1  # no hint which part was wrong


def test_pages_redirect_to_sign_in_without_a_session(users: Clients) -> None:
    client = browser(users.server)
    for path in ("/buckets", "/b/some-bucket", "/b/some-bucket/object?key=k"):
        answer = client.get(CONSOLE + path)
        assert answer.status_code == 303, path
        assert answer.headers["location"].startswith(f"{CONSOLE}/sign-in?next=")
    assert client.get(f"{CONSOLE}/sign-in").status_code == 200


def test_forged_tampered_and_revoked_cookies_are_refused(
    users: Clients, alice: httpx.Client
) -> None:
    good = alice.cookies[COOKIE]
    payload, mac = good.split(".")
    fields = json.loads(_unb64(payload))
    as_admin = _b64(json.dumps({**fields, "k": ACCESS_KEY}).encode())
    longer = _b64(json.dumps({**fields, "e": fields["e"] + 10**6}).encode())
    other_key, _ = SessionSigner().issue(ALICE.access_key)  # another server's key
    for forged in (f"{as_admin}.{mac}", f"{longer}.{mac}", other_key, "x.y", "garbage", good + "A"):
        client = browser(users.server)
        client.cookies.set(COOKIE, forged)
        answer = client.get(f"{CONSOLE}/buckets")
        assert answer.status_code == 303, forged
        assert "/sign-in" in answer.headers["location"]
    # Signing out revokes the session: the old cookie no longer opens a page.
    session = sign_in(users.server, ALICE.access_key, SECRETS[ALICE.access_key])
    stolen = session.cookies[COOKIE]
    out = session.post(f"{CONSOLE}/sign-out")
    assert out.status_code == 303
    assert "Max-Age=0" in out.headers["set-cookie"] or "expires=" in out.headers["set-cookie"]
    replay = browser(users.server)
    replay.cookies.set(COOKIE, stolen)
    assert replay.get(f"{CONSOLE}/buckets").status_code == 303


def test_a_session_expires_after_its_lifetime() -> None:
    now = [1_000_000.0]
    signer = SessionSigner(lifetime=12 * 3600, clock=lambda: now[0])
    cookie, session = signer.issue(ALICE.access_key)
    assert signer.read(cookie) == session
    now[0] += 12 * 3600 - 1
    assert signer.read(cookie) == session
    now[0] += 1
    assert signer.read(cookie) is None


def test_sign_in_refuses_cross_site_forms_and_foreign_redirects(users: Clients) -> None:
    form = {"access_key": ALICE.access_key, "secret": SECRETS[ALICE.access_key]}
    cross = browser(users.server).post(
        f"{CONSOLE}/sign-in", data=form, headers={"sec-fetch-site": "cross-site"}
    )
    assert cross.status_code == 403
    assert "set-cookie" not in cross.headers
    for target in ("https://evil.example/", "//evil.example/x", "/-/console/../../x\\y", "/etc"):
        answer = browser(users.server).post(f"{CONSOLE}/sign-in", data={**form, "next": target})
        assert answer.status_code == 303
        assert answer.headers["location"] == f"{CONSOLE}/buckets", target


# -- hostile names -------------------------------------------------------------------------

HOSTILE_KEYS = (
    '<script>alert("k")</script>.txt',
    "../../etc/passwd",
    "line\nbreak<img src=x onerror=alert(1)>",
    "ünïcødé/日本語/\"quote'&amp;.bin",
)


def test_hostile_keys_are_escaped_everywhere(users: Clients, alice: httpx.Client) -> None:
    bucket = users.bucket(users.alice)
    for key in HOSTILE_KEYS:
        users.alice.put_object(
            Bucket=bucket, Key=key, Body=b"x", Metadata={"build-id": "<b>bold</b>"}
        )
    users.alice.copy_object(
        Bucket=bucket, Key="copy-<i>", CopySource={"Bucket": bucket, "Key": HOSTILE_KEYS[0]}
    )
    flat = alice.get(f"{CONSOLE}/b/{bucket}", params={"delimiter": ""})
    assert flat.status_code == 200
    pages = [flat.text]
    for key in HOSTILE_KEYS:
        page = object_page(alice, bucket, key)
        assert page.status_code == 200, key
        assert "Timeline" in page.text
        pages.append(page.text)
    for text in pages:
        assert "<script>" not in text and "<img" not in text and "<b>bold" not in text
        assert "<i>" not in text
    assert "&lt;script&gt;alert(&quot;k&quot;)&lt;/script&gt;.txt" in pages[0]
    assert "&lt;b&gt;bold&lt;/b&gt;" in pages[1]  # metadata, shown as text
    assert "copy-&lt;i&gt;" in pages[1]  # lineage and timeline name the copy as text
    assert "ünïcødé/日本語/&quot;quote&#x27;&amp;amp;.bin" in pages[-1]
    # A hostile bucket name in the path is a 404, shown as text.
    missing = alice.get(f"{CONSOLE}/b/%3Cscript%3E")
    assert missing.status_code == 404
    assert "<script>" not in missing.text


# -- browsing ------------------------------------------------------------------------------


def test_keys_browse_by_folder_and_page(users: Clients, alice: httpx.Client) -> None:
    bucket = users.bucket(users.alice)
    for number in range(101):
        users.alice.put_object(Bucket=bucket, Key=f"logs/{number:04d}.txt", Body=b"l")
    users.alice.put_object(Bucket=bucket, Key="top.txt", Body=b"t")
    top = alice.get(f"{CONSOLE}/b/{bucket}").text
    assert re.findall(r'class="folder">([^<]*)<', top) == ["logs/"]
    assert re.findall(r'class="key">([^<]*)<', top) == ["top.txt"]
    first = alice.get(f"{CONSOLE}/b/{bucket}", params={"prefix": "logs/", "delimiter": "/"})
    keys = re.findall(r'class="key">([^<]*)<', first.text)
    assert keys == [f"{n:04d}.txt" for n in range(100)]
    following = re.search(r'<a href="([^"]*)" id="next-page">', first.text)
    assert following is not None
    second = alice.get(following.group(1).replace("&amp;", "&"))
    assert re.findall(r'class="key">([^<]*)<', second.text) == ["0100.txt"]
    assert 'id="next-page"' not in second.text


def test_an_older_version_has_its_own_page(users: Clients, alice: httpx.Client) -> None:
    bucket = users.bucket(users.alice)
    users.alice.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    old = users.alice.put_object(Bucket=bucket, Key="v.txt", Body=b"first")["VersionId"]
    new = users.alice.put_object(Bucket=bucket, Key="v.txt", Body=b"second")["VersionId"]
    current = object_page(alice, bucket, "v.txt").text
    versions = _section(current, "versions-section")
    assert versions.index(new) < versions.index(old)  # newest first
    assert f"version={old}" in versions  # the older one links to its page
    page = object_page(alice, bucket, "v.txt", version=old)
    assert page.status_code == 200
    summary = _section(page.text, "summary-section")
    assert old in summary and hashlib.sha256(b"first").hexdigest() in summary
    assert hashlib.sha256(b"second").hexdigest() not in _section(page.text, "timeline")
    assert "Status: ok" in _section(page.text, "verify")
    assert object_page(alice, bucket, "v.txt", version="no-such-version").status_code == 404


# -- rights --------------------------------------------------------------------------------


def test_alice_cannot_see_bobs_bucket_or_object_timeline(
    users: Clients, alice: httpx.Client, bob: httpx.Client, root: httpx.Client
) -> None:
    bucket = users.bucket(users.bob)
    users.bob.put_object(Bucket=bucket, Key="bobs-secret-plan.txt", Body=b"plan")
    mine = users.bucket(users.alice)
    listed = alice.get(f"{CONSOLE}/buckets").text
    assert mine in listed and bucket not in listed
    assert bucket in bob.get(f"{CONSOLE}/buckets").text
    assert bucket in root.get(f"{CONSOLE}/buckets").text  # admins see every bucket
    keys = alice.get(f"{CONSOLE}/b/{bucket}")
    assert keys.status_code == 403
    assert "bobs-secret-plan" not in keys.text
    for params in ({}, {"version": "null"}):
        page = object_page(alice, bucket, "bobs-secret-plan.txt", **params)
        assert page.status_code == 403, params
        assert "Timeline" not in page.text and "plan" not in page.text.replace(
            "bobs-secret-plan", ""
        )
    assert object_page(alice, bucket, "no-such-key").status_code == 403  # as S3: no listing
    assert alice.get(f"{CONSOLE}/b/no-such-bucket-{uuid.uuid4().hex}").status_code == 404
    assert object_page(bob, bucket, "bobs-secret-plan.txt").status_code == 200
    assert object_page(bob, bucket, "no-such-key").status_code == 404  # bob may list
    assert object_page(root, bucket, "bobs-secret-plan.txt").status_code == 200


def test_a_policy_grant_opens_exactly_what_it_opens_in_the_s3_api(
    users: Clients, alice: httpx.Client
) -> None:
    bucket = users.bucket(users.bob)
    users.bob.put_object(Bucket=bucket, Key="shared/report.txt", Body=b"report")
    users.bob.put_object(Bucket=bucket, Key="private.txt", Body=b"private")
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam:::user/{ALICE.access_key}"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/shared/*",
            }
        ],
    }
    users.bob.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    # The S3 API and the console agree, call by call.
    assert users.alice.get_object(Bucket=bucket, Key="shared/report.txt")["Body"].read()
    shared = object_page(alice, bucket, "shared/report.txt")
    assert shared.status_code == 200
    assert "s3:ListBucketVersions" in shared.text  # versions withheld: not granted
    assert object_page(alice, bucket, "private.txt").status_code == 403
    assert object_page(alice, bucket, "private.txt", version="null").status_code == 403
    assert alice.get(f"{CONSOLE}/b/{bucket}").status_code == 403
    assert bucket not in alice.get(f"{CONSOLE}/buckets").text


def test_lineage_hides_copies_the_user_may_not_read(
    users: Clients, alice: httpx.Client, bob: httpx.Client
) -> None:
    source = users.bucket(users.alice)
    users.alice.put_object(Bucket=source, Key="tool.tar", Body=b"tool bytes")
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam:::user/{BOB.access_key}"},
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{source}/*",
            }
        ],
    }
    users.alice.put_bucket_policy(Bucket=source, Policy=json.dumps(grant))
    hidden = users.bucket(users.bob)
    users.bob.copy_object(
        Bucket=hidden, Key="bobs-private-name.tar", CopySource={"Bucket": source, "Key": "tool.tar"}
    )
    page = object_page(alice, source, "tool.tar")
    assert page.status_code == 200
    lineage = _section(page.text, "lineage")
    assert "copied to" in lineage and "an object you may not read" in lineage
    assert "bobs-private-name" not in page.text and hidden not in page.text
    # Bob, who may read both, sees the copy and where it came from.
    copy = object_page(bob, hidden, "bobs-private-name.tar")
    assert f"s3://{source}/tool.tar" in _section(copy.text, "lineage")


# -- verify status -------------------------------------------------------------------------


def test_verify_status_finds_damaged_bytes(users: Clients, alice: httpx.Client) -> None:
    bucket = users.bucket(users.alice)
    body = f"bytes to damage {uuid.uuid4()}".encode()
    users.alice.put_object(Bucket=bucket, Key="fragile.bin", Body=body)
    intact = _section(object_page(alice, bucket, "fragile.bin").text, "verify")
    assert "Status: ok" in intact
    assert "hash to the recorded sha256" in intact
    digest = hashlib.sha256(body).hexdigest()
    path = users.server.data_dir / "blobs" / "sha256" / digest[:2] / digest[2:4] / digest
    path.chmod(0o644)
    path.write_bytes(b"X" + body[1:])
    try:
        damaged = _section(object_page(alice, bucket, "fragile.bin").text, "verify")
        assert "Status: PROBLEM" in damaged
        assert "blob bytes hash to" in damaged
        assert hashlib.sha256(b"X" + body[1:]).hexdigest() in damaged
    finally:
        path.write_bytes(body)
    assert "Status: ok" in _section(object_page(alice, bucket, "fragile.bin").text, "verify")


def test_verify_status_reports_a_rewritten_verified_point(
    users: Clients, alice: httpx.Client
) -> None:
    """The last clean whole verify's head (beside the anchor) no longer matching the log
    means the log was rewritten since: the page says so."""
    bucket = users.bucket(users.alice)
    users.alice.put_object(Bucket=bucket, Key="k", Body=b"v")
    data_dir = users.server.data_dir.absolute()
    point = data_dir.parent / f"{data_dir.name}.log-anchor.verified"
    assert not point.exists()
    point.write_text(json.dumps({"seq": 1, "hash": "ab" * 32, "time": "2026-01-01T00:00:00"}))
    try:
        verify = _section(object_page(alice, bucket, "k").text, "verify")
        assert "Status: PROBLEM" in verify
        assert "reached event 1, which NO LONGER has the hash it verified" in verify
    finally:
        point.unlink()


# -- helpers -------------------------------------------------------------------------------


def _section(text: str, ident: str) -> str:
    found = re.search(rf'<section id="{ident}">(.*?)</section>', text, re.S)
    assert found is not None, ident
    return found.group(1)


def ssl_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> Any:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_the_sign_in_budget_forgets_addresses_whose_budget_grew_back() -> None:
    """Sign-ins are budgeted per client address: the table must not keep every address
    that ever tried, but an address still throttled keeps its state."""
    now = [0.0]
    budget = DenialBudget(burst=30, per_second=0.5, clock=lambda: now[0])
    assert [budget.take("attacker") for _ in range(31)] == [True] * 30 + [False]
    for n in range(DenialBudget.PRUNE_AT - 1):
        assert budget.take(f"198.51.{n // 256}.{n % 256}")
    assert len(budget) == DenialBudget.PRUNE_AT
    now[0] = 5.0  # the one-attempt addresses are whole again; the attacker has 2.5
    assert budget.take("newcomer")
    assert len(budget) == 2
    assert [budget.take("attacker") for _ in range(3)] == [True, True, False]


def test_a_user_makes_one_object_page_at_a_time(users: Clients, bob: httpx.Client) -> None:
    """An object page re-hashes the object's blob: a user cannot start many at once (the
    server's cores are not theirs to fill); other users are not held back."""
    bucket = users.bucket(users.bob)
    users.bob.put_object(Bucket=bucket, Key="big", Body=os.urandom(96 << 20))
    cookies = dict(bob.cookies)

    def fetch(_: int) -> int:
        with httpx.Client(base_url=users.server.endpoint, timeout=120, cookies=cookies) as c:
            return object_page(c, bucket, "big").status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = sorted(pool.map(fetch, range(4)))
    assert statuses[0] == 200 and statuses[-1] == 429, statuses
    assert object_page(bob, bucket, "big").status_code == 200  # free again once done
