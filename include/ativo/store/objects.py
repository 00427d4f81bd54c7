"""Object store over fsspec: ``file://`` for the embedded default, ``s3://`` in production.

Keys are ``/``-separated paths below the store root. Writes are atomic: a reader sees the old object or the
new one, never half of one (local files are written to a temporary name and renamed; an S3 PUT is atomic).
"""

from __future__ import annotations

import os
import posixpath
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import fsspec

if TYPE_CHECKING:
    from ativo.config import Settings


class ObjectStore:
    """A prefix of a filesystem or bucket, addressed by relative keys.

    Args:
        root_uri: ``file:///abs/path`` or ``s3://bucket/prefix``.
        s3_endpoint_url: endpoint for S3-compatible servers (MinIO, a local test server).
    """

    def __init__(self, root_uri: str, s3_endpoint_url: str | None = None) -> None:
        parsed = urlparse(root_uri)
        self.scheme = parsed.scheme or "file"
        if self.scheme not in ("file", "s3"):
            raise ValueError(f"object store URI {root_uri!r}: scheme must be file:// or s3://")
        self.root_uri = root_uri.rstrip("/")
        options: dict[str, Any] = {}
        if self.scheme == "s3":
            self.root = f"{parsed.netloc}{parsed.path}".rstrip("/")
            if s3_endpoint_url:
                options["client_kwargs"] = {"endpoint_url": s3_endpoint_url}
            options["config_kwargs"] = {"retries": {"max_attempts": 5, "mode": "standard"}}
            options["skip_instance_cache"] = True
        else:
            self.root = parsed.path.rstrip("/") or "/"
        self.fs = fsspec.filesystem(self.scheme, **options)

    def _path(self, key: str) -> str:
        key = key.strip("/")
        if not key or ".." in key.split("/"):
            raise ValueError(f"invalid object key {key!r}")
        return posixpath.join(self.root, key)

    def uri(self, key: str) -> str:
        """Full URI of ``key``."""
        return f"{self.root_uri}/{key.strip('/')}"

    def put_bytes(self, key: str, data: bytes) -> str:
        """Write ``data`` at ``key`` atomically and return its URI."""
        path = self._path(key)
        if self.scheme == "file":
            os.makedirs(os.path.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        else:
            self.fs.pipe_file(path, data)
        return self.uri(key)

    def get_bytes(self, key: str) -> bytes:
        """Read the object at ``key``; FileNotFoundError if absent."""
        data: bytes = self.fs.cat_file(self._path(key))
        return data

    def exists(self, key: str) -> bool:
        """Whether an object exists at ``key``."""
        return bool(self.fs.exists(self._path(key)))

    def list(self, prefix: str) -> list[str]:
        """Keys of every object below ``prefix``, sorted."""
        base = self._path(prefix)
        if not self.fs.exists(base):
            return []
        root_len = len(self.root.rstrip("/")) + 1
        keys = [p[root_len:] if p.startswith(self.root) else p for p in self.fs.find(base)]
        return sorted(k for k in keys if ".tmp-" not in k)

    def delete(self, key: str) -> None:
        """Remove the object at ``key`` if it exists."""
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm_file(path)

    def move(self, src: str, dst: str) -> str:
        """Move an object: the destination is complete before the source disappears."""
        self.put_bytes(dst, self.get_bytes(src))
        self.delete(src)
        return self.uri(dst)


def open_store(settings: Settings) -> ObjectStore:
    """The object store named by ``settings``."""
    return ObjectStore(settings.store_uri, settings.s3_endpoint_url)
