"""MinIO backend: one bucket per user (``recall_store.naming.user_bucket``), created on first write.

With ``minio_encryption`` (the default) every user bucket gets SSE-S3 as its default encryption before
the store writes to it, so everything in it (also LanceDB's index files, written past this store) is
encrypted by MinIO's KMS; each put also asks for SSE-S3 itself. A server without a KMS refuses both, and
the put fails with StoreUnavailableError: nothing is ever written unencrypted.

The SDK is blocking, so calls run in a bounded thread pool, each under ``asyncio.timeout``
(``timeout_s``). The urllib3 pool underneath has its own connect/read timeouts and few retries,
so a stuck call also ends in the worker thread instead of holding it forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import urllib3
from minio import Minio
from minio.deleteobjects import DeleteObject
from minio.error import MinioException, S3Error
from minio.sse import SseS3
from minio.sseconfig import Rule, SSEConfig
from opentelemetry import trace

from recall_store.config import StoreSettings
from recall_store.errors import ObjectNotFoundError, StoreUnavailableError
from recall_store.naming import BUCKET_PREFIX, user_bucket, validate_key, validate_prefix

logger = logging.getLogger(__name__)
_tracer = trace.get_tracer(__name__)
_T = TypeVar("_T")

_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NoSuchBucket"})
# Never a user bucket (those are BUCKET_PREFIX + 32 hex digits); only HEADed by check().
_PROBE_BUCKET = BUCKET_PREFIX + "health-probe"
# MinIO's answer to an encryption request when it has no KMS ("... but KMS is not configured").
_NO_KMS_CODE = "NotImplemented"


class MinioObjectStore:
    """ObjectStore on a MinIO (or S3-compatible) server."""

    def __init__(self, settings: StoreSettings) -> None:
        self._timeout_s = settings.timeout_s
        self._region = settings.minio_region
        self._sse = SseS3() if settings.minio_encryption else None
        self._http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.timeout_s),
            maxsize=settings.workers,
            # Retry refused connections and 5xx briefly; never a read timeout, which would double the wait,
            # nor after MinIO's Retry-After (120 s on a 503 while it starts), which would park the worker.
            retries=urllib3.Retry(
                total=2,
                connect=2,
                read=0,
                backoff_factor=0.1,
                status_forcelist=(500, 502, 503, 504),
                respect_retry_after_header=False,
            ),
        )
        self._client = Minio(
            settings.minio_endpoint,
            access_key=settings.minio_access_key,
            secret_key=settings.minio_secret_key.get_secret_value(),
            secure=settings.minio_secure,
            region=settings.minio_region,
            http_client=self._http,
        )
        self._pool = ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="recall-minio")
        self._known_buckets: set[str] = set()
        self._closed = False

    async def put(
        self, user_id: str, key: str, data: bytes, content_type: str = "application/octet-stream"
    ) -> None:
        bucket = user_bucket(user_id)
        validate_key(key)
        await self._call("put", lambda: self._put_sync(bucket, key, data, content_type))

    async def get(self, user_id: str, key: str) -> bytes:
        bucket = user_bucket(user_id)
        validate_key(key)
        return await self._call("get", lambda: self._get_sync(bucket, key))

    async def list_keys(self, user_id: str, prefix: str = "", start_after: str = "") -> list[str]:
        bucket = user_bucket(user_id)
        validate_prefix(prefix)
        return await self._call("list", lambda: self._list_sync(bucket, prefix, start_after))

    async def usage(self, user_id: str) -> int:
        bucket = user_bucket(user_id)
        return await self._call("usage", lambda: self._usage_sync(bucket))

    async def delete(self, user_id: str, keys: Iterable[str]) -> None:
        bucket = user_bucket(user_id)
        names = [validate_key(key) for key in keys]
        if names:
            await self._call("delete", lambda: self._delete_sync(bucket, names))

    async def check(self) -> None:
        # An authenticated HEAD: proves the server answers and accepts our credentials, cheaply.
        await self._call("check", lambda: self._client.bucket_exists(_PROBE_BUCKET))

    async def close(self) -> None:
        self._closed = True
        await asyncio.to_thread(self._pool.shutdown, wait=True)
        self._http.clear()

    async def _call(self, op: str, fn: Callable[[], _T]) -> _T:
        if self._closed:
            raise StoreUnavailableError("the MinIO store is closed")
        with _tracer.start_as_current_span(f"recall_store.minio.{op}"):
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await loop.run_in_executor(self._pool, fn)
            except TimeoutError as exc:
                raise self._unavailable(op, f"no answer within {self._timeout_s}s") from exc
            except S3Error as exc:
                if exc.code in _NOT_FOUND_CODES:
                    raise ObjectNotFoundError(exc.object_name or exc.bucket_name or "") from exc
                raise self._unavailable(op, f"{exc.code}: {exc.message}") from exc
            except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise self._unavailable(op, str(exc)) from exc

    def _unavailable(self, op: str, reason: str) -> StoreUnavailableError:
        logger.warning("MinIO %s failed: %s", op, reason)
        return StoreUnavailableError(f"MinIO {op} failed: {reason}")

    def _ensure_bucket(self, bucket: str) -> None:
        """Create the bucket and, when required, make SSE-S3 its default; once per bucket per process."""
        if bucket in self._known_buckets:
            return
        try:
            self._client.make_bucket(bucket, location=self._region)
            created = True
        except S3Error as exc:
            if exc.code != "BucketAlreadyOwnedByYou":  # another writer created it first
                raise
            created = False
        if self._sse is not None:
            self._ensure_encrypted(bucket, created)
        self._known_buckets.add(bucket)

    def _ensure_encrypted(self, bucket: str, created: bool) -> None:
        # An existing bucket keeps any default encryption it has (an operator may have chosen SSE-KMS).
        if not created and self._client.get_bucket_encryption(bucket) is not None:
            return
        try:
            self._client.set_bucket_encryption(bucket, SSEConfig(Rule.new_sse_s3_rule()))
        except S3Error as exc:
            if created:
                # Leave no unencrypted bucket behind for LanceDB, which writes into it past this store.
                with contextlib.suppress(MinioException, urllib3.exceptions.HTTPError, OSError):
                    self._client.remove_bucket(bucket)
            if exc.code == _NO_KMS_CODE:
                raise self._unavailable(
                    "put",
                    f"bucket {bucket} cannot be encrypted, so nothing was written: the server has no KMS "
                    f"({exc.code}: {exc.message}). Start MinIO with MINIO_KMS_SECRET_KEY (tests, one "
                    "machine) or connect it to KES (production).",
                ) from exc
            raise

    def _put_sync(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self._ensure_bucket(bucket)
        try:
            self._put_object(bucket, key, data, content_type)
        except S3Error as exc:
            if exc.code != "NoSuchBucket":
                raise
            # The bucket was erased behind our back; recreate it once.
            self._known_buckets.discard(bucket)
            self._ensure_bucket(bucket)
            self._put_object(bucket, key, data, content_type)

    def _put_object(self, bucket: str, key: str, data: bytes, content_type: str) -> None:
        self._client.put_object(
            bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            num_parallel_uploads=1,
            sse=self._sse,
        )

    def _get_sync(self, bucket: str, key: str) -> bytes:
        response = self._client.get_object(bucket, key)
        try:
            return response.read()
        finally:
            response.close()
            response.release_conn()

    def _list_sync(self, bucket: str, prefix: str, start_after: str) -> list[str]:
        try:
            objects = self._client.list_objects(
                bucket, prefix=prefix or None, recursive=True, start_after=start_after or None
            )
            return [obj.object_name for obj in objects if obj.object_name is not None]
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                return []
            raise

    def _usage_sync(self, bucket: str) -> int:
        try:
            return sum(obj.size or 0 for obj in self._client.list_objects(bucket, recursive=True))
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                return 0
            raise

    def _delete_sync(self, bucket: str, keys: list[str]) -> None:
        try:
            errors = list(self._client.remove_objects(bucket, [DeleteObject(key) for key in keys]))
        except S3Error as exc:
            if exc.code == "NoSuchBucket":
                return
            raise
        failed = [error for error in errors if error.code not in _NOT_FOUND_CODES]
        if failed:
            first = failed[0]
            raise StoreUnavailableError(
                f"MinIO delete failed for {len(failed)} of {len(keys)} keys; "
                f"first {first.name}: {first.code} {first.message}"
            )
