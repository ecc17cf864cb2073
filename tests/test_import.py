"""`s3facade import`: a local tree and an upstream bucket (moto) imported offline, then served
by a real server; resumable after SIGKILL; a source that changes or vanishes; hostile keys;
verify and rebuild after an import."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import duckdb
import pytest
from boto3.s3.transfer import TransferConfig

from s3facade.backends.catalog import build_backend_set
from s3facade.backends.s3source import S3Source, ServerSideCopier, SourceObject
from s3facade.backends.upstream import UpstreamCAS
from s3facade.registry import Provenance, Registry
from s3facade.registry.audit import object_history
from s3facade.registry.errors import ObjectLocked
from s3facade.registry.import_run import (
    ImportTarget,
    import_bucket,
    import_tree,
    list_bucket,
    list_tree,
)
from s3facade.registry.model import LockMode
from s3facade.registry.retention import RetentionPolicy
from tests.conftest import ACCESS_KEY, SECRET_KEY, RunningServer
from tests.test_console import object_page, sign_in
from tests.upstream_services import Upstream, config_file

MiB = 1 << 20
ENV = {**os.environ, "S3FACADE_ACCESS_KEY_ID": ACCESS_KEY, "S3FACADE_SECRET_ACCESS_KEY": SECRET_KEY}


def s3facade(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "s3facade", *args], capture_output=True, text=True, env=ENV
    )
    if check and done.returncode not in (0, 1):
        raise AssertionError(f"s3facade {args}: {done.returncode}\n{done.stderr}")
    return done


def import_json(*args: str) -> dict[str, Any]:
    done = s3facade("import", *args, "--json")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def imported_events(data_dir: Path) -> list[tuple[str, str, dict[str, Any]]]:
    with duckdb.connect(str(data_dir / "registry.duckdb"), read_only=True) as db:
        rows = db.execute(
            "SELECT bucket, key, data FROM events WHERE type = 'ObjectImported' ORDER BY seq"
        ).fetchall()
    return [(bucket, key, json.loads(data)) for bucket, key, data in rows]


def verify_and_rebuild(data_dir: Path, *extra: str) -> None:
    verified = json.loads(s3facade("verify", "--data-dir", str(data_dir), *extra, "--json").stdout)
    assert verified["ok"] is True and verified["findings"] == [], verified
    assert verified["blobs_checked"] > 0
    rebuilt = json.loads(s3facade("rebuild", "--data-dir", str(data_dir), *extra, "--json").stdout)
    assert rebuilt["identical"] is True and rebuilt["live"] == rebuilt["rebuilt"], rebuilt


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- a local tree -----------------------------------------------------------------------------


def test_a_local_tree_is_imported_served_and_explained(tmp_path: Path) -> None:
    tree, data_dir = tmp_path / "tree", tmp_path / "data"
    files = {
        "a.txt": b"hello\n",
        "empty": b"",
        "sub/deeper/big.bin": os.urandom(3 * MiB + 17),
        "new\nline.txt": b"a newline in the name",
        "ünï cødé.json": b"{}",
        "copy-of-a.txt": b"hello\n",  # the same bytes: one blob
    }
    for name, body in files.items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes(body)
    (tree / "inside-link").symlink_to("a.txt")  # a file inside the tree: its bytes
    (tree / "outside-link").symlink_to("/etc/passwd")  # out of the tree: never followed
    (tree / "dir-link").symlink_to("sub")  # a directory: not followed (no loops)
    os.mkfifo(tree / "fifo")
    (tree / os.fsdecode(b"latin-\xe9")).write_bytes(b"not UTF-8")
    deep = tree.joinpath(*(["d" * 250] * 5))  # a key over 1024 bytes: S3 refuses it
    deep.mkdir(parents=True)
    (deep / "too-long").write_bytes(b"x")

    summary = import_json(
        str(tree), "--to", "imported/pre/", "--data-dir", str(data_dir), "--create-bucket"
    )
    assert summary["imported"] == len(files) + 1
    assert summary["already_imported"] == 0
    failed = {row["key"]: row["reason"] for row in summary["failed"]}
    assert list(failed) == [f"pre/{deep.relative_to(tree)}/too-long"]
    assert "KeyTooLong" in failed[next(iter(failed))]
    skipped = {row["key"]: row["reason"] for row in summary["skipped"]}
    assert set(skipped) == {
        "pre/outside-link", "pre/dir-link", "pre/fifo", "pre/latin-\ufffd",
    }  # fmt: skip
    assert "out of the tree" in skipped["pre/outside-link"]
    assert summary["bytes_through_gateway"] == summary["bytes_hashed"]
    assert summary["bytes_hashed"] == sum(map(len, files.values())) + len(files["a.txt"])
    assert summary["bytes_copied_server_side"] == 0

    expected = {f"pre/{name}": body for name, body in files.items()}
    expected["pre/inside-link"] = files["a.txt"]
    server = RunningServer(data_dir).start()
    try:
        s3 = server.client()
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket="imported")
        listed = {o["Key"]: o for page in pages for o in page.get("Contents", [])}
        assert set(listed) == set(expected)
        for key, body in expected.items():
            got = s3.get_object(Bucket="imported", Key=key)
            assert got["Body"].read() == body, key
            assert got["ETag"] == f'"{md5(body)}"' == listed[key]["ETag"]
        assert s3.head_object(Bucket="imported", Key="pre/a.txt")["ContentType"] == "text/plain"
    finally:
        server.stop()

    provenance = json.loads(
        s3facade(
            "provenance", "s3://imported/pre/a.txt", "--data-dir", str(data_dir), "--json"
        ).stdout
    )
    current = provenance["current"]
    assert current["type"] == "ObjectImported"
    assert current["data"]["source"] == str((tree / "a.txt").resolve())
    assert current["data"]["transfer"] == "through-gateway"
    assert current["data"]["source_etag"] is None and current["data"]["source_modified"]
    assert current["data"]["tool"]["name"] == "s3facade-import"
    assert current["data"]["principal"] == ACCESS_KEY  # the root user made the bucket
    verify_and_rebuild(data_dir)

    again = import_json(str(tree), "--to", "imported/pre/", "--data-dir", str(data_dir))
    assert (again["imported"], again["already_imported"]) == (0, len(expected))
    assert len(imported_events(data_dir)) == len(expected)

    (tree / "a.txt").write_bytes(b"changed\n")  # a new size and mtime: a new version (of
    changed = import_json(str(tree), "--to", "imported/pre/", "--data-dir", str(data_dir))
    assert (changed["imported"], changed["already_imported"]) == (2, len(expected) - 2)  # +link

    collected = json.loads(s3facade("gc", "--data-dir", str(data_dir), "--json").stdout)
    assert collected["collected_count"] == 0  # every imported blob is referenced
    verify_and_rebuild(data_dir)


def test_the_target_bucket_must_exist_unless_asked_to_create_it(tmp_path: Path) -> None:
    tree, data_dir = tmp_path / "tree", tmp_path / "data"
    tree.mkdir()
    (tree / "f").write_bytes(b"f")
    import_json(str(tree), "--to", "first", "--data-dir", str(data_dir), "--create-bucket")
    done = s3facade(
        "import", str(tree), "--to", "missing", "--data-dir", str(data_dir), check=False
    )
    assert done.returncode == 2 and "NoSuchBucket" in done.stderr
    dry = import_json(str(tree), "--to", "first/x/", "--data-dir", str(data_dir), "--dry-run")
    assert (dry["dry_run"], dry["imported"]) == (True, 1)
    assert len(imported_events(data_dir)) == 1  # the dry run recorded nothing


def test_an_import_killed_midway_and_run_again_imports_each_file_once(tmp_path: Path) -> None:
    tree, data_dir = tmp_path / "tree", tmp_path / "data"
    count = 400
    for n in range(count):
        (tree / f"d{n % 7}").mkdir(parents=True, exist_ok=True)
        (tree / f"d{n % 7}" / f"f{n:04}").write_bytes(os.urandom(32 * 1024) + n.to_bytes(4))
    args = [sys.executable, "-m", "s3facade", "import", str(tree), "--to", "resumed"]
    args += ["--data-dir", str(data_dir), "--create-bucket", "--json"]
    child = subprocess.Popen(args, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    blobs = data_dir / "blobs" / "sha256"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and child.poll() is None:
        if blobs.exists() and sum(1 for p in blobs.rglob("*") if p.is_file()) >= 40:
            break
        time.sleep(0.01)
    assert child.poll() is None, "the import ended before it could be killed"
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    before = imported_events(data_dir)
    assert 0 < len(before) < count

    rerun = import_json(str(tree), "--to", "resumed", "--data-dir", str(data_dir))
    assert rerun["failed"] == []
    assert rerun["already_imported"] == len(before)
    assert rerun["imported"] == count - len(before)
    keys = [key for _, key, _ in imported_events(data_dir)]
    assert len(keys) == len(set(keys)) == count
    verify_and_rebuild(data_dir)


# -- an upstream bucket (moto) --------------------------------------------------------------


@pytest.fixture
def source_bucket(moto_upstream: Upstream) -> str:
    name = f"legacy-{uuid.uuid4().hex[:10]}"
    moto_upstream.client().create_bucket(Bucket=name)
    return name


def test_an_upstream_bucket_is_copied_server_side_and_served(
    moto_upstream: Upstream, source_bucket: str, tmp_path: Path
) -> None:
    s3 = moto_upstream.client()
    bodies = {
        "rel/small.txt": b"small text",
        "rel/six.bin": os.urandom(6 * MiB),
        "rel/again.txt": b"small text",  # the same bytes: stored once, copied once
        "rel/odd ünï+%?#&=.txt": b"odd characters",  # (moto cannot hold a newline in a key)
        "rel/long/" + "k" * 1010: b"key too long once under the target prefix",
        "elsewhere/not-imported": b"outside the source prefix",
    }
    for key, body in bodies.items():
        s3.put_object(
            Bucket=source_bucket, Key=key, Body=body, ContentType="text/x-test",
            Metadata={"source-commit": "9f3c2e1"},
        )  # fmt: skip
    parts = os.urandom(11 * MiB)  # uploaded in parts: its ETag is not an MD5
    s3.upload_fileobj(
        io.BytesIO(parts), source_bucket, "rel/parts.bin",
        Config=TransferConfig(multipart_threshold=5 * MiB, multipart_chunksize=5 * MiB),
    )  # fmt: skip
    bodies["rel/parts.bin"] = parts
    listed_etag = s3.head_object(Bucket=source_bucket, Key="rel/parts.bin")["ETag"].strip('"')
    assert "-" in listed_etag

    prefix = f"imp-{uuid.uuid4().hex[:8]}/"
    config = config_file(
        tmp_path / "s3facade.toml",
        {"ceph": moto_upstream.table(prefix=prefix)},
        {"default": "ceph"},
    )
    data_dir = tmp_path / "data"
    summary = import_json(
        f"s3://{source_bucket}/rel", "--to", "target/imported-here/", "--config", str(config),
        "--data-dir", str(data_dir), "--create-bucket",
    )  # fmt: skip
    imported = {"rel/small.txt", "rel/six.bin", "rel/again.txt", "rel/odd ünï+%?#&=.txt"}
    imported.add("rel/parts.bin")
    assert summary["imported"] == len(imported)
    failed = {row["source"]: row["reason"] for row in summary["failed"]}
    assert set(failed) == {f"s3://{source_bucket}/rel/long/" + "k" * 1010}
    assert "KeyTooLong" in failed[f"s3://{source_bucket}/rel/long/" + "k" * 1010]
    unique = {sha(bodies[k]): len(bodies[k]) for k in imported}
    assert summary["bytes_through_gateway"] == 0
    assert summary["bytes_copied_server_side"] == sum(unique.values())
    assert summary["bytes_already_stored"] == len(b"small text")
    assert summary["bytes_hashed"] == sum(len(bodies[k]) for k in imported)
    stored = moto_upstream.keys(prefix)
    assert stored == sorted(f"{prefix}sha256/{d[:2]}/{d[2:4]}/{d}" for d in unique)

    server = RunningServer(data_dir, extra_args=["--config", str(config)]).start()
    try:
        client = server.client()
        for key in imported:
            target = "imported-here/" + key.removeprefix("rel/")
            got = client.get_object(Bucket="target", Key=target)
            assert got["Body"].read() == bodies[key], key
            assert got["ETag"] == f'"{md5(bodies[key])}"'
            assert got["ContentType"] == "text/x-test" or key == "rel/parts.bin"
        small = client.head_object(Bucket="target", Key="imported-here/small.txt")
        assert small["Metadata"] == {"source-commit": "9f3c2e1"}
    finally:
        server.stop()

    events = {key: data for _, key, data in imported_events(data_dir)}
    parts_event = events["imported-here/parts.bin"]
    assert parts_event["source"] == f"s3://{source_bucket}/rel/parts.bin"
    assert parts_event["source_endpoint"] == moto_upstream.endpoint
    assert parts_event["source_etag"] == listed_etag
    assert parts_event["transfer"] == "server-side-copy"
    assert parts_event["backend_id"] == "ceph"
    assert parts_event["attached"] == {}  # upload_fileobj sent no metadata
    assert events["imported-here/small.txt"]["attached"] == {"source_commit": "9f3c2e1"}
    transfers = {
        events["imported-here/small.txt"]["transfer"],
        events["imported-here/again.txt"]["transfer"],
    }
    assert transfers == {"server-side-copy", "already-stored"}
    verify_and_rebuild(data_dir, "--config", str(config))
    source_keys = moto_upstream.client().list_objects_v2(Bucket=source_bucket)["Contents"]
    assert sorted(o["Key"] for o in source_keys) == sorted(bodies)  # read, never changed

    again = import_json(
        f"s3://{source_bucket}/rel/", "--to", "target/imported-here/", "--config", str(config),
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert (again["imported"], again["already_imported"]) == (0, len(imported))


def test_a_source_that_changes_or_vanishes_after_listing_is_reported_not_recorded(
    moto_upstream: Upstream, source_bucket: str, tmp_path: Path
) -> None:
    s3 = moto_upstream.client()
    for key in ("keep", "change", "vanish"):
        s3.put_object(Bucket=source_bucket, Key=key, Body=f"first {key}".encode())

    async def scenario() -> dict[str, Any]:
        backends = build_backend_set({}, {}, tmp_path / "data")
        registry = Registry.open(tmp_path / "data", backends)
        who = Provenance(ACCESS_KEY, "", "s3facade-import/1", "R1")
        await registry.create_bucket("target", "us-east-1", who)
        source = S3Source.connect(
            moto_upstream.endpoint, source_bucket,
            (moto_upstream.access_key, moto_upstream.secret_key),
        )  # fmt: skip
        listed = await list_bucket(source, "")
        # A key HTTP clients would normalise (moto cannot even store one): refused unread.
        when = listed[0].last_modified
        listed.append(SourceObject("dots/../escape", 1, "0" * 32, when, None))
        s3.put_object(Bucket=source_bucket, Key="change", Body=b"second, after the listing")
        s3.delete_object(Bucket=source_bucket, Key="vanish")
        report = await import_bucket(
            registry, source, "", listed, ImportTarget("target", "", who), copier=None
        )
        await source.aclose()
        await registry.close()
        return report.as_dict()

    report = asyncio.run(scenario())
    assert report["imported"] == 1
    reasons = {row["key"]: row["reason"] for row in report["failed"]}
    assert set(reasons) == {"change", "vanish", "dots/../escape"}
    assert "'..'" in reasons["dots/../escape"]
    assert "SourceChanged" in reasons["change"] and "changed since" in reasons["change"]
    assert "gone since" in reasons["vanish"]
    assert [key for _, key, _ in imported_events(tmp_path / "data")] == ["keep"]
    reopened = Registry.open(
        tmp_path / "data", build_backend_set({}, {}, tmp_path / "data"), read_only=True
    )
    try:
        assert object_history(reopened.log, "target", "change").events == []
        assert [o.key for o in reopened.list_objects("target").objects] == ["keep"]
    finally:
        reopened.close_offline()


def test_retention_policies_apply_to_imported_versions(tmp_path: Path) -> None:
    tree, data_dir = tmp_path / "tree", tmp_path / "data"
    tree.mkdir()
    (tree / "kept.bin").write_bytes(b"under retention")
    policy = RetentionPolicy(
        "keep", bucket="kept", prefix="in/", lock_mode=LockMode.GOVERNANCE, lock_days=1
    )
    who = Provenance(ACCESS_KEY, "", "s3facade-import/1", "R2")

    async def scenario() -> tuple[dict[str, Any], dict[str, Any]]:
        backends = build_backend_set({}, {}, data_dir)
        registry = Registry.open(data_dir, backends, policies=[policy])
        try:
            await registry.create_bucket("kept", "us-east-1", who)
            target = ImportTarget("kept", "in/", who)
            files, problems = list_tree(tree)
            first = await import_tree(registry, tree, files, problems, target)
            version = registry.head_object("kept", "in/kept.bin")
            assert version.lock_mode is LockMode.GOVERNANCE
            assert version.retention_source == "policy:keep"
            with pytest.raises(ObjectLocked):
                await registry.delete_object("kept", "in/kept.bin", who, version_id="null")
            (tree / "kept.bin").write_bytes(b"changed: would replace the protected version")
            files, problems = list_tree(tree)
            second = await import_tree(registry, tree, files, problems, target)
            assert registry.head_object("kept", "in/kept.bin").size == len(b"under retention")
            return first.as_dict(), second.as_dict()
        finally:
            await registry.close()

    first, second = asyncio.run(scenario())
    assert (first["imported"], first["failed"]) == (1, [])
    assert second["imported"] == 0
    assert [row["key"] for row in second["failed"]] == ["in/kept.bin"]
    assert "ObjectLocked" in second["failed"][0]["reason"]


def test_a_versioned_source_is_imported_as_listed_and_copied_by_parts(
    moto_upstream: Upstream, source_bucket: str, tmp_path: Path
) -> None:
    """The listed version is the one hashed and copied (pinned by its version id), also when
    the copy goes in UploadPartCopy parts (here above 5 MiB instead of 5 GiB)."""
    s3 = moto_upstream.client()
    s3.put_bucket_versioning(Bucket=source_bucket, VersioningConfiguration={"Status": "Enabled"})
    first = os.urandom(11 * MiB)
    put = s3.put_object(Bucket=source_bucket, Key="model.bin", Body=first)
    prefix = f"ver-{uuid.uuid4().hex[:8]}/"
    tables = {"ceph": moto_upstream.table(prefix=prefix)}
    who = Provenance(ACCESS_KEY, "", "s3facade-import/1", "R3")

    async def scenario() -> dict[str, Any]:
        registry = Registry.open(
            tmp_path / "data", build_backend_set(tables, {"default": "ceph"}, tmp_path)
        )
        backend = registry.backends["ceph"]
        assert isinstance(backend, UpstreamCAS)
        small_copies = replace(backend.config, max_single_copy=5 * MiB, copy_part_size=5 * MiB)
        backend.config = small_copies  # the copies, not the client, read these two
        source = S3Source.connect(
            moto_upstream.endpoint, source_bucket,
            (moto_upstream.access_key, moto_upstream.secret_key),
        )  # fmt: skip
        try:
            await registry.create_bucket("models", "us-east-1", who)
            listed = await list_bucket(source, "")
            s3.put_object(Bucket=source_bucket, Key="model.bin", Body=b"a newer version")
            copier = ServerSideCopier(backend)
            target = ImportTarget("models", "", who)
            report = await import_bucket(registry, source, "", listed, target, copier)
            version = registry.head_object("models", "model.bin")
            stored = b"".join([block async for block in registry.stream_bytes(version)])
            assert stored == first
            await copier.aclose()
            return report.as_dict()
        finally:
            await source.aclose()
            await registry.close()
            await backend.aclose()

    report = asyncio.run(scenario())
    assert (report["imported"], report["failed"]) == (1, [])
    assert report["bytes_copied_server_side"] == len(first)
    (_, _, event), *_ = imported_events(tmp_path / "data")
    assert event["source_version_id"] == put["VersionId"]
    assert event["transfer"] == "server-side-copy" and event["sha256"] == sha(first)
    assert moto_upstream.uploads(prefix) == []  # the multipart copy completed


def test_a_file_changed_or_swapped_after_the_walk_is_reported_not_recorded(
    tmp_path: Path,
) -> None:
    tree, data_dir = tmp_path / "tree", tmp_path / "data"
    tree.mkdir()
    for name in ("same", "grown", "swapped", "gone"):
        (tree / name).write_bytes(b"as walked")
    files, problems = list_tree(tree)
    with (tree / "grown").open("ab") as grown:
        grown.write(b" and more")
    (tree / "other").write_bytes(b"as walked")
    walked = {file.relative: file for file in files}
    os.utime(tree / "other", ns=(0, walked["swapped"].mtime_ns))  # same size and mtime
    os.replace(tree / "other", tree / "swapped")
    (tree / "gone").unlink()
    who = Provenance(ACCESS_KEY, "", "s3facade-import/1", "R4")

    async def scenario() -> dict[str, Any]:
        registry = Registry.open(data_dir, build_backend_set({}, {}, data_dir))
        try:
            await registry.create_bucket("files", "us-east-1", who)
            target = ImportTarget("files", "", who)
            return (await import_tree(registry, tree, files, problems, target)).as_dict()
        finally:
            await registry.close()

    report = asyncio.run(scenario())
    assert report["imported"] == 1
    reasons = {row["key"]: row["reason"] for row in report["failed"]}
    assert set(reasons) == {"grown", "swapped", "gone"}
    assert "changed since" in reasons["grown"] and "another file" in reasons["swapped"]
    assert "gone since" in reasons["gone"]
    assert [key for _, key, _ in imported_events(data_dir)] == ["same"]


def test_a_running_server_imports_a_bucket_but_no_directory_of_its_host(
    moto_upstream: Upstream, source_bucket: str, tmp_path: Path
) -> None:
    """`--endpoint`: the same command runs in the server (no need to stop it), with the
    upstream backend's credentials; a directory is refused, since the server would read its
    own host's files for a client."""
    s3 = moto_upstream.client()
    s3.put_object(Bucket=source_bucket, Key="a.txt", Body=b"from before")
    prefix = f"online-{uuid.uuid4().hex[:8]}/"
    config = config_file(
        tmp_path / "s3facade.toml",
        {"ceph": moto_upstream.table(prefix=prefix)},
        {"default": "ceph"},
    )
    server = RunningServer(tmp_path / "data", extra_args=["--config", str(config)]).start()
    try:
        endpoint = ("--endpoint", server.endpoint)
        summary = import_json(f"s3://{source_bucket}", "--to", "live", "--create-bucket", *endpoint)
        assert (summary["imported"], summary["bytes_through_gateway"]) == (1, 0)
        got = server.client().get_object(Bucket="live", Key="a.txt")
        assert got["Body"].read() == b"from before"
        history = json.loads(s3facade("provenance", "s3://live/a.txt", *endpoint, "--json").stdout)
        assert history["current"]["type"] == "ObjectImported"
        assert history["current"]["data"]["source"] == f"s3://{source_bucket}/a.txt"
        assert history["current"]["data"]["principal"] == ACCESS_KEY  # the admin who asked
        with socket.socket() as elsewhere:  # an endpoint the server was not configured for
            elsewhere.bind(("127.0.0.1", 0))
            elsewhere.listen()
            other = f"http://127.0.0.1:{elsewhere.getsockname()[1]}"
            for extra in (["--source-endpoint", other], ["--owner", "AKIDSOMEONEELSE00001"]):
                asked = ["import", f"s3://{source_bucket}", "--to", "live", *extra, *endpoint]
                refused = s3facade(*asked, check=False)
                assert refused.returncode == 2 and "offline" in refused.stderr, refused.stderr
            elsewhere.setblocking(False)
            with pytest.raises(BlockingIOError):
                elsewhere.accept()  # the server never called it
        console = sign_in(server, ACCESS_KEY, SECRET_KEY)  # the console's timeline says so too
        page = object_page(console, "live", "a.txt")
        assert page.status_code == 200 and "imported from" in page.text
        assert f"s3://{source_bucket}/a.txt" in page.text
        (tmp_path / "tree").mkdir()
        (tmp_path / "tree" / "secret").write_bytes(b"the host's")
        refused = s3facade("import", str(tmp_path / "tree"), "--to", "live", *endpoint, check=False)
        assert refused.returncode == 2 and "offline" in refused.stderr
        listed = server.client().list_objects_v2(Bucket="live")["Contents"]
        assert [o["Key"] for o in listed] == ["a.txt"]
    finally:
        server.stop()
