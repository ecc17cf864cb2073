"""The one table from S3 operation to handler."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette.responses import Response

from s3facade.context import ServerContext
from s3facade.handlers import (
    access,
    attributes,
    buckets,
    copy,
    cors,
    lifecycle,
    listing,
    multipart,
    object_lock,
    objects,
    post_object,
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
    Action.GET_BUCKET_ACL: access.get_bucket_acl,
    Action.PUT_BUCKET_ACL: access.put_bucket_acl,
    Action.GET_OBJECT_ACL: access.get_object_acl,
    Action.PUT_OBJECT_ACL: access.put_object_acl,
    Action.GET_BUCKET_POLICY: access.get_bucket_policy,
    Action.PUT_BUCKET_POLICY: access.put_bucket_policy,
    Action.DELETE_BUCKET_POLICY: access.delete_bucket_policy,
    Action.GET_BUCKET_POLICY_STATUS: access.get_bucket_policy_status,
    Action.GET_PUBLIC_ACCESS_BLOCK: access.get_public_access_block,
    Action.PUT_PUBLIC_ACCESS_BLOCK: access.put_public_access_block,
    Action.DELETE_PUBLIC_ACCESS_BLOCK: access.delete_public_access_block,
    Action.GET_BUCKET_OWNERSHIP_CONTROLS: access.get_bucket_ownership_controls,
    Action.PUT_BUCKET_OWNERSHIP_CONTROLS: access.put_bucket_ownership_controls,
    Action.DELETE_BUCKET_OWNERSHIP_CONTROLS: access.delete_bucket_ownership_controls,
    Action.GET_BUCKET_CORS: cors.get_bucket_cors,
    Action.PUT_BUCKET_CORS: cors.put_bucket_cors,
    Action.DELETE_BUCKET_CORS: cors.delete_bucket_cors,
    Action.PREFLIGHT: cors.preflight,
    Action.POST_OBJECT: post_object.post_object,
    Action.GET_OBJECT_ATTRIBUTES: attributes.get_object_attributes,
    **dict.fromkeys(unconfigured.ANSWERS, unconfigured.answer),
}
