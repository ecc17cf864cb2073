"""What authorising a request costs, against the lookup every GET makes anyway.

Runs the registry as a library on a temp dir with a bucket holding objects, a bucket policy
of `--statements` statements (each with conditions) and a public-read object ACL. Times, per
request, in one run:

- baseline: `head_object`, the views lookup a GET or HEAD makes for its object;
- the owner's request (bucket settings read, no policy statement reached);
- another user granted by the policy's last statement, through its conditions;
- an anonymous reader granted by the object's ACL (policy, then bucket and object ACLs);
- a refusal (every statement and both ACLs consulted).

Figures are microseconds per decision and ratios to the baseline.

    .venv/bin/python -m bench.authorization [--requests 5000] [--statements 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from s3facade.authorization import RequestAuthorizer, RequestFacts
from s3facade.backends import BackendSet
from s3facade.backends.local import LocalCAS
from s3facade.registry import ObjectSpec, Provenance, Registry
from s3facade.registry.access.acl import canned_acl
from s3facade.registry.access.principals import User
from s3facade.registry.access.settings import BucketSetting

OWNER = User("AKIDBENCHOWNER000001")
GUEST = User("AKIDBENCHGUEST000002")
STRANGER = User("AKIDBENCHSTRANGER003")
WHO = Provenance(OWNER.access_key, "127.0.0.1:1", "bench/1.0", "BENCH")


async def body() -> AsyncIterator[bytes]:
    yield b"x" * 1024


def policy(bucket: str, statements: int) -> str:
    """Statements for other users first; the guest's grant is the last one reached."""
    listed = [
        {
            "Effect": "Allow",
            "Principal": {"AWS": User(f"AKIDBENCHOTHER{n:06d}").arn},
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"arn:aws:s3:::{bucket}/team-{n}/*",
            "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}},
        }
        for n in range(statements - 1)
    ]
    listed.append(
        {
            "Effect": "Allow",
            "Principal": {"AWS": GUEST.arn},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
            "Condition": {
                "IpAddress": {"aws:SourceIp": "127.0.0.0/8"},
                "StringLike": {"aws:UserAgent": "bench/*"},
                "Bool": {"aws:SecureTransport": "false"},
            },
        }
    )
    return json.dumps({"Version": "2012-10-17", "Statement": listed})


def timed(requests: int, call: Callable[[], Any]) -> float:
    """Microseconds per call."""
    call()  # warm caches (the parsed policy, SQLite pages)
    started = time.perf_counter()
    for _ in range(requests):
        call()
    return (time.perf_counter() - started) / requests * 1e6


async def run(root: Path, requests: int, statements: int) -> dict[str, Any]:
    registry = Registry.open(root, BackendSet({"local": LocalCAS(root / "blobs")}, "local"))
    await registry.create_bucket("bench", "us-east-1", WHO)
    for n in range(100):
        await registry.put_object("bench", f"k/{n}", body(), spec=ObjectSpec(), provenance=WHO)
    public = canned_acl("public-read", OWNER.canonical_id)
    spec = ObjectSpec(acl=public.as_dict())
    await registry.put_object("bench", "public", body(), spec=spec, provenance=WHO)
    text = policy("bench", statements)
    await registry.put_bucket_access("bench", BucketSetting.POLICY, text, WHO)
    authorizer = RequestAuthorizer(registry, lambda: None)
    headers = {"user-agent": "bench/1.0"}

    def facts(user: User | None) -> RequestFacts:
        return RequestFacts(
            user, headers, {}, "127.0.0.1", False, "v4", False,
            registry.clock().replace(tzinfo=UTC), lambda: None,
        )  # fmt: skip

    def decide(user: User | None, key: str, allowed: bool) -> Callable[[], None]:
        def call() -> None:
            decision = authorizer.decide(user, "s3:GetObject", "bench", key, facts(user))
            assert decision is not None and decision.allowed is allowed, decision

        return call

    results = {
        "baseline head_object": timed(requests, lambda: registry.head_object("bench", "k/7")),
        "owner": timed(requests, decide(OWNER, "k/7", True)),
        f"policy grant (statement {statements} of {statements})": timed(
            requests, decide(GUEST, "k/7", True)
        ),
        "anonymous, object ACL grant": timed(requests, decide(None, "public", True)),
        "refused": timed(requests, decide(STRANGER, "k/7", False)),
    }
    await registry.close()
    baseline = results["baseline head_object"]
    return {
        "requests": requests,
        "statements": statements,
        "microseconds": {name: round(value, 1) for name, value in results.items()},
        "ratio_to_baseline": {name: round(value / baseline, 2) for name, value in results.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--statements", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        report = asyncio.run(run(Path(directory), args.requests, args.statements))
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
