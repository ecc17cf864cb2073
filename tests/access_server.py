"""A server with two plain users besides the admin, and clients for each of them and for
anonymous callers: the access-control suites' fixtures."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from s3facade.registry.access.principals import User
from tests.conftest import REGION, RunningServer

ALICE = User("AKIDALICE00000000001", display_name="Alice")
BOB = User("AKIDBOB0000000000002", display_name="Bob")
SECRETS = {ALICE.access_key: "alice-secret-0123456789", BOB.access_key: "bob-secret-0123456789"}

CONFIG = f"""
[users.{ALICE.access_key}]
secret = "{SECRETS[ALICE.access_key]}"
display_name = "{ALICE.display_name}"

[users.{BOB.access_key}]
secret = "{SECRETS[BOB.access_key]}"
display_name = "{BOB.display_name}"
"""


@dataclass(frozen=True)
class Clients:
    server: RunningServer
    admin: Any
    alice: Any
    bob: Any
    anonymous: Any

    def bucket(self, owner: Any, **create: Any) -> str:
        name = f"acl-{uuid.uuid4().hex[:12]}"
        owner.create_bucket(Bucket=name, **create)
        return name


def client_for(server: RunningServer, user: User | None, **config: Any) -> Any:
    if user is None:
        return boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name=REGION,
            config=Config(signature_version=UNSIGNED, **config),
        )
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=user.access_key,
        aws_secret_access_key=SECRETS[user.access_key],
        region_name=REGION,
        config=Config(**config) if config else None,
    )


@pytest.fixture(scope="module")
def users(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    """A server of its own per test module, with clients for each user and for anonymous
    callers (import this fixture by name)."""
    root = tmp_path_factory.mktemp("access")
    config = root / "s3facade.toml"
    config.write_text(CONFIG)
    server = RunningServer(root / "data", extra_args=["--config", str(config)]).start()
    yield Clients(
        server=server,
        admin=server.client(),
        alice=client_for(server, ALICE),
        bob=client_for(server, BOB),
        anonymous=client_for(server, None),
    )
    server.stop()


def denied(call: Callable[[], Any], code: str = "AccessDenied", status: int = 403) -> None:
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == status, error
    if not error.get("Error", {}).get("Code", "0").isdigit():  # HEAD answers carry no body
        assert error["Error"]["Code"] == code, error
