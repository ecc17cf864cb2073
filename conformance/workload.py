"""The files the clients transfer, generated once per run with their SHA-256 digests."""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

from conformance.harness import MiB, sha256_file

# A name that breaks naive signing, routing and listing encoders (COMPATIBILITY rule 14).
UNICODE_NAME = "rapport 1+1 ü é 日本 %41.bin"
TREE_FILES = 300
# Names inside the synced tree that need encoding in paths, signatures and listings.
TREE_SPECIAL = (
    "special/space name.txt",
    "special/plus+sign.txt",
    "special/ünïcødé ✓.txt",
    "special/percent%41.txt",
    "special/empty.txt",
)


@dataclass
class Workload:
    root: Path
    digests: dict[Path, str] = field(default_factory=dict)
    tree_digests: dict[str, str] = field(default_factory=dict)  # tree-relative path -> sha256

    @property
    def small(self) -> Path:  # 1 KiB
        return self.root / "small.bin"

    @property
    def unicode(self) -> Path:  # 3 KiB, a hostile name
        return self.root / "names" / UNICODE_NAME

    @property
    def empty(self) -> Path:
        return self.root / "empty.bin"

    @property
    def huge(self) -> Path:  # 100 MiB: aws cli multipart upload and ranged download
        return self.root / "huge-100MiB.bin"

    @property
    def large(self) -> Path:  # 20 MiB: boto3 managed transfers (3 parts of 8 MiB)
        return self.root / "large-20MiB.bin"

    @property
    def medium(self) -> Path:  # 12 MiB: rclone above a 5 MiB upload cutoff
        return self.root / "medium-12MiB.bin"

    @property
    def tree(self) -> Path:  # a few hundred small files for sync
        return self.root / "tree"

    def sha256(self, path: Path) -> str:
        return self.digests[path]

    def generate(self, huge_size: int = 100 * MiB) -> Workload:
        self.digests[self.small] = write_random(self.small, 1024)
        self.digests[self.unicode] = write_random(self.unicode, 3 * 1024)
        self.digests[self.empty] = write_random(self.empty, 0)
        self.digests[self.huge] = write_random(self.huge, huge_size)
        self.digests[self.large] = write_random(self.large, 20 * MiB)
        self.digests[self.medium] = write_random(self.medium, 12 * MiB)
        sizes = random.Random(20261125)
        count = TREE_FILES - len(TREE_SPECIAL)
        names = [f"d{i % 6}/e{i % 4}/file-{i:03d}.dat" for i in range(count)]
        for name in [*names, *TREE_SPECIAL]:
            size = 0 if name.endswith("empty.txt") else sizes.randint(1, 4096)
            self.tree_digests[name] = write_random(self.tree / name, size)
        return self


def write_random(path: Path, size: int) -> str:
    """Write size random bytes to path; their SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    with path.open("wb") as out:
        remaining = size
        while remaining:
            chunk = os.urandom(min(remaining, 4 * MiB))
            digest.update(chunk)
            out.write(chunk)
            remaining -= len(chunk)
    return digest.hexdigest()


def tree_digests(root: Path) -> dict[str, str]:
    """Relative POSIX path -> SHA-256 of every file under root."""
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }
