"""Build a data dir of N object versions through the library, as the server writes them.

    .venv/bin/python -m bench.load_versions --data-dir DIR --versions N [--groups 1000]

One bucket `scale` with keys `g<group>/<n>.bin`: --groups common prefixes at the root,
N/groups keys under each. Every version holds the same 16 bytes (so one blob: the registry
is what scales here, not the disk), written the way boto3's default PutObject is: a CRC32
checksum, `binary/octet-stream`, an aws-cli user agent. The events are the server's own
(registry.object_written, then Registry.settle_write for the version and lock), appended
in batches through the log: anchored, applied to the views, the head signed every few
seconds, as a server would have. tests/test_scale.py checks that they match what a real
server records for the same PUTs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import secrets
import sys
import time
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

from s3facade.config import load_config
from s3facade.registry import ObjectSpec, Provenance, Registry
from s3facade.registry.registry import object_written
from s3facade.workspace import open_registry

BUCKET = "scale"
BODY = b"scale test body\n"
USER_AGENT = "aws-cli/2.15.0 Python/3.11.7 Linux/6.1 exe/x86_64.debian.12 command/s3api.put-object"
BATCH = 5000
SIGN_EVERY = 5.0  # seconds: well inside the signing interval the start-up check allows


def key_of(n: int, groups: int) -> str:
    return f"g{n % groups:04d}/{n // groups:08d}.bin"


async def _body() -> AsyncIterator[bytes]:
    yield BODY


async def load(data_dir: Path, versions: int, groups: int, config: Path | None = None) -> None:
    registry = open_registry(load_config(config, {"data_dir": data_dir}))
    try:
        await _load(registry, versions, groups)
    finally:
        await registry.close()


async def _load(registry: Registry, versions: int, groups: int) -> None:
    who = Provenance("AKIDSCALELOADER00001", "127.0.0.1:40000", USER_AGENT, "")
    if registry.views.bucket(BUCKET) is None:
        await registry.create_bucket(BUCKET, "us-east-1", who)
    backend = registry.backend_for(BUCKET)
    receipt = await backend.put(_body())
    md5 = hashlib.md5(BODY).hexdigest()
    checksums = {"CRC32": base64.b64encode(zlib.crc32(BODY).to_bytes(4, "big")).decode()}
    spec = ObjectSpec()
    started = signed = time.monotonic()
    for first in range(0, versions, BATCH):
        batch = []
        for n in range(first, min(first + BATCH, versions)):
            request = Provenance(who.principal, who.client_address, USER_AGENT, _request_id())
            key = key_of(n, groups)
            written = object_written(spec, request, receipt, md5, checksums, backend)
            batch.append(registry.settle_write(BUCKET, key, written, spec).event(BUCKET, key))
        await registry.log.append(batch)
        if registry.head_signer is not None and time.monotonic() - signed > SIGN_EVERY:
            await registry.head_signer.sign_now()
            signed = time.monotonic()
        done = min(first + BATCH, versions)
        rate = done / max(time.monotonic() - started, 1e-9)
        print(f"\r{done}/{versions} versions, {rate:,.0f}/s", end="", file=sys.stderr)
    print(file=sys.stderr)


def _request_id() -> str:
    return secrets.token_hex(8).upper()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--versions", type=int, required=True)
    parser.add_argument("--groups", type=int, default=1000)
    parser.add_argument("--config", type=Path, default=None)
    args = parser.parse_args()
    asyncio.run(load(args.data_dir, args.versions, args.groups, args.config))


if __name__ == "__main__":
    main()
