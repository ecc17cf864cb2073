"""The one table from S3 operation to handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.handlers import (
    buckets,
    copy,
    lifecycle,
    listing,
    multipart,
    object_lock,
    objects,
    reads,
    tagging,
    unconfigured,
    versioning,
)
from s3facade.operations import Action
from s3facade.request import S3Request

Handler = Callable[[S3Request, ServerContext], Awaitable[Response]]

HANDLERS: Mapping[Action, Handler] = {
    Action.LIST_BUCKETS: buckets.list_buckets,
    Action.CREATE_BUCKET: buckets.create_bucket,
    Action.HEAD_BUCKET: buckets.head_bucket,
    Action.DELETE_BUCKET: buckets.delete_bucket,
    Action.GET_BUCKET_LOCATION: buckets.get_bucket_location,
    Action.LIST_OBJECTS: listing.list_objects,
    Action.LIST_OBJECTS_V2: listing.list_objects_v2,
    Action.DELETE_OBJECTS: objects.delete_objects,
    Action.PUT_OBJECT: objects.put_object,
    Action.GET_OBJECT: reads.get_object,
    Action.HEAD_OBJECT: reads.head_object,
    Action.DELETE_OBJECT: objects.delete_object,
    Action.COPY_OBJECT: copy.copy_object,
    Action.CREATE_MULTIPART_UPLOAD: multipart.create_multipart_upload,
    Action.UPLOAD_PART: multipart.upload_part,
    Action.UPLOAD_PART_COPY: multipart.upload_part_copy,
    Action.LIST_PARTS: multipart.list_parts,
    Action.COMPLETE_MULTIPART_UPLOAD: multipart.complete_multipart_upload,
    Action.ABORT_MULTIPART_UPLOAD: multipart.abort_multipart_upload,
    Action.LIST_MULTIPART_UPLOADS: multipart.list_multipart_uploads,
    Action.GET_BUCKET_LIFECYCLE_CONFIGURATION: lifecycle.get_bucket_lifecycle_configuration,
    Action.PUT_BUCKET_LIFECYCLE_CONFIGURATION: lifecycle.put_bucket_lifecycle_configuration,
    Action.DELETE_BUCKET_LIFECYCLE: lifecycle.delete_bucket_lifecycle,
    Action.GET_BUCKET_VERSIONING: versioning.get_bucket_versioning,
    Action.PUT_BUCKET_VERSIONING: versioning.put_bucket_versioning,
    Action.LIST_OBJECT_VERSIONS: versioning.list_object_versions,
    Action.GET_OBJECT_LOCK_CONFIGURATION: object_lock.get_object_lock_configuration,
    Action.PUT_OBJECT_LOCK_CONFIGURATION: object_lock.put_object_lock_configuration,
    Action.GET_OBJECT_RETENTION: object_lock.get_object_retention,
    Action.PUT_OBJECT_RETENTION: object_lock.put_object_retention,
    Action.GET_OBJECT_LEGAL_HOLD: object_lock.get_object_legal_hold,
    Action.PUT_OBJECT_LEGAL_HOLD: object_lock.put_object_legal_hold,
    Action.GET_OBJECT_TAGGING: tagging.get_object_tagging,
    Action.PUT_OBJECT_TAGGING: tagging.put_object_tagging,
    Action.DELETE_OBJECT_TAGGING: tagging.delete_object_tagging,
    Action.GET_BUCKET_TAGGING: tagging.get_bucket_tagging,
    Action.PUT_BUCKET_TAGGING: tagging.put_bucket_tagging,
    Action.DELETE_BUCKET_TAGGING: tagging.delete_bucket_tagging,
    **dict.fromkeys(unconfigured.ANSWERS, unconfigured.answer),
}
