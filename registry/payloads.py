"""What each event type's `data` holds: one typed definition per type, used by every
writer (`Payload.event`) and reader (`payload_of`).

The log stores `data` as JSON, and its hash covers that JSON, so these classes map to and
from the dicts the log has always held: a field's name is its JSON key, its type the JSON
value's. Every payload is schema 1: a `schema` key appears only in a payload of a later
schema, so events written before these classes existed read as schema 1 unchanged, and an
event of a schema this version does not know is refused (CorruptLog), not misread.
Fields with `metadata=EXTRA` are left out of the JSON while None (they were only ever written
when they applied). docs/provenance.md's event table is tested against these classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, TypeVar

from s3facade.registry.errors import CorruptLog
from s3facade.registry.events import CommittedEvent, Event, EventType

SCHEMA = 1
_P = TypeVar("_P", bound="Payload")
_OMIT_NONE = "omit_none"
EXTRA = {_OMIT_NONE: True}  # field metadata: written only when set (not None)


@dataclass(frozen=True, kw_only=True)
class Payload:
    """Who caused the event: the Provenance fields every payload starts with."""

    TYPE: ClassVar[EventType]
    principal: str
    client_address: str = ""
    user_agent: str = ""
    tool: Mapping[str, str] | None = field(
        default=None, metadata=EXTRA
    )  # name, version (system events have none)
    request_id: str = ""

    def event(self, bucket: str = "", key: str | None = None) -> Event:
        """This payload as an event of its type, to append."""
        return Event(self.TYPE, bucket, key, self.to_data())

    def to_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, omit_none, _ in _specs(type(self)):
            value = getattr(self, name)
            if value is None and omit_none:
                continue
            data[name] = _plain(value)
        return data

    @classmethod
    def from_data(cls: type[_P], data: Mapping[str, Any], seq: int = 0) -> _P:
        schema = data.get("schema", 1)
        if schema != SCHEMA:
            raise CorruptLog(seq, f"{cls.TYPE} of schema {schema!r}, this version reads {SCHEMA}")
        values: dict[str, Any] = {}
        for name, _, required in _specs(cls):
            if name in data:
                values[name] = data[name]
            elif required:
                raise CorruptLog(seq, f"{cls.TYPE} without {name!r}")
        return cls(**values)


_SPECS: dict[type, tuple[tuple[str, bool, bool], ...]] = {}


def _specs(cls: type[Payload]) -> tuple[tuple[str, bool, bool], ...]:
    """Each field's name, whether None leaves it out, whether it is required: read once per
    class (dataclasses.fields() on every event was a tenth of a DeleteObjects' CPU)."""
    specs = _SPECS.get(cls)
    if specs is None:
        specs = _SPECS[cls] = tuple(
            (
                spec.name,
                bool(spec.metadata.get(_OMIT_NONE)),
                spec.default is MISSING and spec.default_factory is MISSING,
            )
            for spec in fields(cls)
        )
    return specs


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return value


# -- buckets ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BucketCreated(Payload):
    TYPE = EventType.BUCKET_CREATED
    region: str
    object_lock: bool = False


@dataclass(frozen=True, kw_only=True)
class BucketDeleted(Payload):
    TYPE = EventType.BUCKET_DELETED


@dataclass(frozen=True, kw_only=True)
class BucketVersioningSet(Payload):
    TYPE = EventType.BUCKET_VERSIONING_SET
    status: str  # Enabled | Suspended


@dataclass(frozen=True, kw_only=True)
class BucketObjectLockConfigured(Payload):
    TYPE = EventType.BUCKET_LOCK_CONFIGURED
    default_retention: Mapping[str, Any] | None  # {mode, days, years}, or none


@dataclass(frozen=True, kw_only=True)
class BucketLifecycleSet(Payload):
    TYPE = EventType.BUCKET_LIFECYCLE_SET
    rules: list[Mapping[str, Any]] | None  # as registry.lifecycle parsed them, or removed


@dataclass(frozen=True, kw_only=True)
class BucketTagsSet(Payload):
    TYPE = EventType.BUCKET_TAGS_SET
    tags: Mapping[str, str] | None  # the whole tag set, or none (removed)


@dataclass(frozen=True, kw_only=True)
class BucketAccessSet(Payload):
    """One of a bucket's access settings (registry.access.settings.BucketSetting) replaced
    or removed: its policy, ACL, CORS rules, public access block or object ownership."""

    TYPE = EventType.BUCKET_ACCESS_SET
    setting: str
    value: Any  # the setting in its recorded form (JSON), or None: removed


@dataclass(frozen=True, kw_only=True)
class AccessDenied(Payload):
    """An authenticated request refused for lack of permission: evidence like any write."""

    TYPE = EventType.ACCESS_DENIED
    action: str  # the IAM action, e.g. s3:GetObject
    resource: str  # its ARN
    reason: str
    # Refusals of the same principal left unrecorded since its previous AccessDenied event
    # (past its recording budget, s3facade.authorization.DenialBudget): counted, not lost.
    suppressed: int | None = field(default=None, metadata=EXTRA)


# -- objects ---------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Stored(Payload):
    """A new version with bytes: what the client asked to store, the bytes, the lock."""

    content_type: str
    headers: Mapping[str, str]
    metadata: Mapping[str, str]
    tags: Mapping[str, str] = field(default_factory=dict)
    attached: Mapping[str, str] = field(default_factory=dict)
    size: int
    sha256: str
    md5: str | None
    etag: str
    checksums: Mapping[str, str]
    checksum_type: str = "FULL_OBJECT"
    backend_id: str
    version_id: str = ""  # set at commit (Registry.settle_write)
    lock_mode: str | None = None
    retain_until: str | None = None  # ISO 8601, naive UTC
    legal_hold: bool = False
    retention_source: str | None = None
    retention_policy: str | None = None
    part_sizes: list[int] | None = field(default=None, metadata=EXTRA)
    # Each part's checksums (algorithm -> base64), in order, when the parts had any
    # (GetObjectAttributes lists them; the views keep only the sizes).
    part_checksums: list[Mapping[str, str]] | None = field(default=None, metadata=EXTRA)
    derived_from: Mapping[str, str] | None = field(
        default=None, metadata=EXTRA
    )  # bucket, key, version_id, sha256
    acl: Mapping[str, Any] | None = field(default=None, metadata=EXTRA)  # asked for at write


@dataclass(frozen=True, kw_only=True)
class ObjectWritten(Stored):
    TYPE = EventType.OBJECT_WRITTEN


@dataclass(frozen=True, kw_only=True)
class MultipartUploadCompleted(Stored):
    TYPE = EventType.UPLOAD_COMPLETED
    upload_id: str


@dataclass(frozen=True, kw_only=True)
class ObjectImported(Stored):
    """A version made from existing data by `s3facade import` (registry.imports): an object of
    another S3 bucket or a local file, with where it came from. A version like any other."""

    TYPE = EventType.OBJECT_IMPORTED
    source: str  # s3://bucket/key, or the file's absolute path
    source_endpoint: str | None = None  # the S3 endpoint's URL; None for a file
    source_etag: str | None = None  # unquoted, as the source listed it; None for a file
    source_version_id: str | None = None  # the source version (versioned buckets only)
    source_modified: str  # its Last-Modified, or the file's mtime: ISO 8601, naive UTC
    transfer: str  # how the bytes got there: server-side-copy | already-stored | through-gateway


@dataclass(frozen=True, kw_only=True)
class ObjectDeleted(Payload):
    TYPE = EventType.OBJECT_DELETED
    version_id: str = "null"
    bypass_governance: bool | None = field(default=None, metadata=EXTRA)
    reason: str | None = field(default=None, metadata=EXTRA)  # e.g. "lifecycle"
    rule: str | None = field(default=None, metadata=EXTRA)


@dataclass(frozen=True, kw_only=True)
class DeleteMarkerPlaced(Payload):
    TYPE = EventType.DELETE_MARKER_PLACED
    version_id: str
    reason: str | None = field(default=None, metadata=EXTRA)
    rule: str | None = field(default=None, metadata=EXTRA)


@dataclass(frozen=True, kw_only=True)
class ObjectRetentionSet(Payload):
    TYPE = EventType.RETENTION_SET
    version_id: str
    mode: str | None
    retain_until: str | None
    bypass_governance: bool = False


@dataclass(frozen=True, kw_only=True)
class ObjectLegalHoldSet(Payload):
    TYPE = EventType.LEGAL_HOLD_SET
    version_id: str
    status: bool


@dataclass(frozen=True, kw_only=True)
class ObjectTagsSet(Payload):
    TYPE = EventType.TAGS_SET
    version_id: str
    tags: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class ObjectAclSet(Payload):
    TYPE = EventType.OBJECT_ACL_SET
    version_id: str
    acl: Mapping[str, Any]  # registry.access.acl.AccessControlList.as_dict()


@dataclass(frozen=True, kw_only=True)
class ObjectRead(Payload):
    TYPE = EventType.OBJECT_READ
    version_id: str
    sha256: str
    etag: str
    method: str
    range: str | None = None
    part_number: str | None = None
    bytes_sent: int = 0
    status: int = 200
    completed: bool = True
    presigned: bool = False


# -- multipart uploads -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MultipartUploadCreated(Payload):
    TYPE = EventType.UPLOAD_CREATED
    upload_id: str
    content_type: str
    headers: Mapping[str, str]
    metadata: Mapping[str, str]
    tags: Mapping[str, str] = field(default_factory=dict)
    attached: Mapping[str, str] = field(default_factory=dict)
    checksum_algorithm: str | None
    checksum_type: str | None
    requested_lock: Mapping[str, Any] | None = None
    acl: Mapping[str, Any] | None = field(default=None, metadata=EXTRA)  # for the object


@dataclass(frozen=True, kw_only=True)
class PartUploaded(Payload):
    TYPE = EventType.PART_UPLOADED
    upload_id: str
    part_number: int
    size: int
    sha256: str
    etag: str
    checksums: Mapping[str, str]
    backend_id: str
    derived_from: Mapping[str, Any] | None = field(default=None, metadata=EXTRA)


@dataclass(frozen=True, kw_only=True)
class MultipartUploadAborted(Payload):
    TYPE = EventType.UPLOAD_ABORTED
    upload_id: str
    reason: str | None = field(default=None, metadata=EXTRA)
    rule: str | None = field(default=None, metadata=EXTRA)


# -- the store and the log -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class BlobsCollected(Payload):
    TYPE = EventType.BLOBS_COLLECTED
    trigger: str
    blobs: list[Mapping[str, Any]]  # backend_id, sha256, size
    count: int
    bytes: int
    bytes_per_backend: Mapping[str, int]


@dataclass(frozen=True, kw_only=True)
class BlobDamaged(Payload):
    TYPE = EventType.BLOB_DAMAGED
    backend_id: str
    sha256: str
    found: str
    detected_by: str  # read | scrub
    bucket: str | None = None
    key: str | None = None
    version_id: str | None = None
    detected_at: str | None = None


@dataclass(frozen=True, kw_only=True)
class ScrubPassCompleted(Payload):
    TYPE = EventType.SCRUB_PASS_COMPLETED
    trigger: str
    started: str
    blobs: int
    blobs_checked: int
    bytes: int
    damaged_count: int
    damaged: list[Mapping[str, Any]]
    problems_count: int
    duration_seconds: float


@dataclass(frozen=True, kw_only=True)
class LogAnchorCreated(Payload):
    TYPE = EventType.LOG_ANCHOR_CREATED
    reason: str
    head: Mapping[str, Any]  # seq, hash


@dataclass(frozen=True, kw_only=True)
class LogLossAccepted(Payload):
    TYPE = EventType.LOG_LOSS_ACCEPTED
    problem: str | None
    anchor: Mapping[str, Any] | None  # seq, hash
    head: Mapping[str, Any]
    kept_blobs: list[Mapping[str, str]]  # backend_id, sha256


@dataclass(frozen=True, kw_only=True)
class LogHeadSigned(Payload):
    TYPE = EventType.LOG_HEAD_SIGNED
    signed_seq: int
    signed_hash: str
    public_key: str
    key_id: str
    signature: str


@dataclass(frozen=True, kw_only=True)
class ViewsRebuilt(Payload):
    TYPE = EventType.VIEWS_REBUILT
    live: Mapping[str, Any]
    rebuilt: Mapping[str, Any]
    position: int


AnyPayload = (
    BucketCreated | BucketDeleted | BucketVersioningSet | BucketObjectLockConfigured
    | BucketLifecycleSet | BucketTagsSet | BucketAccessSet | AccessDenied | ObjectWritten
    | ObjectImported | MultipartUploadCompleted | ObjectDeleted | DeleteMarkerPlaced
    | ObjectRetentionSet | ObjectLegalHoldSet | ObjectTagsSet | ObjectAclSet | ObjectRead
    | MultipartUploadCreated | PartUploaded | MultipartUploadAborted | BlobsCollected
    | BlobDamaged | ScrubPassCompleted | LogAnchorCreated | LogLossAccepted | LogHeadSigned
    | ViewsRebuilt
)  # fmt: skip
PAYLOADS: dict[EventType, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        BucketCreated,
        BucketDeleted,
        BucketVersioningSet,
        BucketObjectLockConfigured,
        BucketLifecycleSet,
        BucketTagsSet,
        BucketAccessSet,
        AccessDenied,
        ObjectWritten,
        ObjectImported,
        MultipartUploadCompleted,
        ObjectDeleted,
        DeleteMarkerPlaced,
        ObjectRetentionSet,
        ObjectLegalHoldSet,
        ObjectTagsSet,
        ObjectAclSet,
        ObjectRead,
        MultipartUploadCreated,
        PartUploaded,
        MultipartUploadAborted,
        BlobsCollected,
        BlobDamaged,
        ScrubPassCompleted,
        LogAnchorCreated,
        LogLossAccepted,
        LogHeadSigned,
        ViewsRebuilt,
    )
}
assert set(PAYLOADS) == set(EventType), "every event type has its payload"


def check_conforms(type_: EventType, data: Mapping[str, Any]) -> None:
    """Refuse (ValueError) data that its type's payload does not describe exactly: every
    append is checked, so no writer can put into the log what the readers do not know."""
    cls = PAYLOADS[type_]
    try:
        rebuilt = cls.from_data(data).to_data()
    except (CorruptLog, TypeError) as exc:
        raise ValueError(f"{type_} data does not fit its payload: {exc}") from exc
    plain = _plain(data)
    if rebuilt != plain:
        differ = sorted(k for k in set(plain) | set(rebuilt) if plain.get(k) != rebuilt.get(k))
        raise ValueError(f"{type_} data does not fit its payload: {differ}")


def payload_of(event: CommittedEvent) -> AnyPayload:
    """The event's data as its type's payload (CorruptLog if it does not fit)."""
    cls = PAYLOADS.get(event.type)
    if cls is None:
        raise CorruptLog(event.seq, f"unknown event type {event.type!r}")
    try:
        payload: AnyPayload = cls.from_data(event.data, event.seq)  # type: ignore[assignment]
    except TypeError as exc:
        raise CorruptLog(event.seq, f"{event.type}: {exc}") from exc
    return payload


def event_table() -> str:
    """docs/provenance.md's table of event types and their fields (tested to match)."""
    common = {spec.name for spec in fields(Payload)}
    lines = ["| type | further fields (`?`: only when it applies) |", "| --- | --- |"]
    for type_, cls in PAYLOADS.items():
        names = [
            f"`{spec.name}`" + ("?" if spec.metadata.get(_OMIT_NONE) else "")
            for spec in fields(cls)
            if spec.name not in common
        ]
        lines.append(f"| `{type_.value}` | {', '.join(names)} |")
    return "\n".join(lines)
