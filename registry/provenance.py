"""Provenance fields: the tool a request came from, and what the client attached.

Clients attach provenance with ordinary S3 metadata (`x-amz-meta-<name>`) or object
tags, so unchanged tools can send it; the names below are the documented convention
(docs/provenance.md) and are kept as structured fields of the write event.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

# metadata / tag name -> structured provenance field
ATTACHED_FIELDS: Mapping[str, str] = {
    "source-repository": "source_repository",
    "source-commit": "source_commit",
    "source-ref": "source_ref",
    "build-id": "build_id",
    "builder": "builder",
    "pipeline-run": "pipeline_run",
    "pipeline": "pipeline",
}

# Product tokens of known S3 clients, most specific first: an aws-cli user agent also
# names botocore, and boto3's names botocore too.
_TOOLS: tuple[tuple[str, str], ...] = (
    ("aws-cli", "aws-cli"),
    ("rclone", "rclone"),
    ("Boto3", "boto3"),
    ("Botocore", "botocore"),
    ("aws-sdk-java", "aws-sdk-java"),
    ("aws-sdk-go-v2", "aws-sdk-go-v2"),
    ("aws-sdk-go", "aws-sdk-go"),
    ("aws-sdk-js", "aws-sdk-js"),
    ("aws-sdk-rust", "aws-sdk-rust"),
    ("aws-sdk-cpp", "aws-sdk-cpp"),
    ("aws-sdk-dotnet", "aws-sdk-dotnet"),
    ("aws-sdk-php", "aws-sdk-php"),
    ("aws-sdk-ruby3", "aws-sdk-ruby"),
    ("aws-sdk-ruby", "aws-sdk-ruby"),
    ("minio-go", "minio-go"),
    ("minio-py", "minio-py"),
    ("s3cmd", "s3cmd"),
    ("object_store", "object_store"),
    ("curl", "curl"),
)
_TOKEN = re.compile(r"([A-Za-z][\w.+-]*)/(v?[\w.+-]+)")


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    version: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@functools.lru_cache(maxsize=256)  # every event parses it; a few clients send the same one
def parse_user_agent(user_agent: str) -> Tool:
    """`aws-cli/1.46.3 md/Botocore#1.43 ...` -> Tool("aws-cli", "1.46.3")."""
    tokens = {name: version for name, version in _TOKEN.findall(user_agent)}
    lowered = {name.lower(): version for name, version in tokens.items()}
    for token, tool in _TOOLS:
        version = tokens.get(token) or lowered.get(token.lower())
        if version is not None:
            return Tool(tool, version)
    first = _TOKEN.search(user_agent)
    if first is not None:
        return Tool(first[1], first[2])
    return Tool(user_agent.split(" ", 1)[0] or "unknown", "")


def attached_provenance(metadata: Mapping[str, str], tags: Mapping[str, str]) -> dict[str, str]:
    """The convention's fields from metadata and tags (metadata wins on a clash)."""
    fields: dict[str, str] = {}
    for source in (tags, metadata):
        for name, value in source.items():
            field = ATTACHED_FIELDS.get(name.lower())
            if field is not None:
                fields[field] = value
    return fields
