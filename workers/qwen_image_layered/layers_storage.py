"""Where the layers go when they are too big to return inline: an S3-compatible bucket.

The job API refuses a /run result over 10 MB, and ten 1024x1024 RGBA layers of a photo easily
pass that as base64. Such layers are uploaded one PNG at a time with the runpod SDK's
`rp_upload.upload_in_memory_object`, and the job returns their presigned URLs (valid 7 days).

The bucket comes from the job's `s3Config` (Runpod passes it through from the /run body), else
from the endpoint's BUCKET_* environment. Two traps of rp_upload are handled here, not left to it:
without credentials it silently writes to a local folder and returns that path, and without a
bucket name it uses the month (`time.strftime("%m-%y")`). So credentials are checked before any
upload, any answer that is not an http(s) URL is an error, and the bucket name is always passed.

The secret never appears in a repr, a log line or a message.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rp_notebook.errors import InputError

__all__ = [
    "DEFAULT_INLINE_LIMIT",
    "ENV_KEYS",
    "Bucket",
    "Uploader",
    "bucket_for_job",
    "default_bucket_name",
    "inline_limit_from_env",
    "too_large_message",
    "upload_pngs",
]

#: Base64 characters of all layers together that may go inline: the /run limit is 10 MB for the
#: whole result, and the rest of the JSON needs a little room.
DEFAULT_INLINE_LIMIT = 8_000_000
INLINE_LIMIT_ENV = "LAYERS_INLINE_LIMIT_BYTES"
#: The endpoint-wide bucket, read when a job has no s3Config (the names rp_upload itself reads).
ENV_KEYS = ("BUCKET_ENDPOINT_URL", "BUCKET_ACCESS_KEY_ID", "BUCKET_SECRET_ACCESS_KEY")
BUCKET_NAME_ENV = "BUCKET_NAME"
_S3_CONFIG_KEYS = ("accessId", "accessSecret", "bucketName", "endpointUrl")

#: rp_upload.upload_in_memory_object's signature: (file_name, file_data, bucket_creds, bucket_name, prefix) -> URL.
Uploader = Callable[..., str]


def inline_limit_from_env(environ: Mapping[str, str] | None = None) -> int:
    """$LAYERS_INLINE_LIMIT_BYTES as an int (DEFAULT_INLINE_LIMIT when unset); refuses junk at start."""
    environ = os.environ if environ is None else environ
    raw = environ.get(INLINE_LIMIT_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_INLINE_LIMIT
    try:
        limit = int(raw)
    except ValueError:
        raise ValueError(f"{INLINE_LIMIT_ENV}={raw!r} is not a whole number of bytes") from None
    if limit < 0:
        raise ValueError(f"{INLINE_LIMIT_ENV}={limit} is negative")
    return limit


def default_bucket_name() -> str:
    """rp_upload's own default bucket: the current month as MM-YY."""
    return time.strftime("%m-%y")


@dataclass(frozen=True)
class Bucket:
    """An S3-compatible bucket and the credentials to write to it."""

    endpoint_url: str
    access_id: str
    access_secret: str = field(repr=False)
    #: None: nobody named one, and rp_upload's month default (default_bucket_name) applies.
    name: str | None = None
    #: "s3Config" (from the job) or "env" (the endpoint's BUCKET_* variables).
    source: str = "env"

    def creds(self) -> dict[str, str]:
        """In rp_upload's bucket_creds shape (the same as the job API's s3Config)."""
        return {
            "endpointUrl": self.endpoint_url,
            "accessId": self.access_id,
            "accessSecret": self.access_secret,
        }


def bucket_for_job(job: Mapping[str, Any], environ: Mapping[str, str] | None = None) -> Bucket | None:
    """The job's s3Config, else the BUCKET_* environment, else None (nothing configured).

    A malformed s3Config raises InputError naming `s3Config` (without echoing any value), so the
    job fails before it spends GPU time on layers it could not deliver.
    """
    environ = os.environ if environ is None else environ
    config = job.get("s3Config")
    if config is not None:
        if not isinstance(config, Mapping):
            raise InputError("s3Config", f"expected an object with {', '.join(_S3_CONFIG_KEYS)}")
        for key in ("endpointUrl", "accessId", "accessSecret"):
            if not isinstance(config.get(key), str) or not config[key].strip():
                raise InputError(
                    "s3Config", f"{key} is missing or empty; expected {', '.join(_S3_CONFIG_KEYS)}"
                )
        if not config["endpointUrl"].startswith(("http://", "https://")):
            raise InputError("s3Config", "endpointUrl must be an http(s) URL")
        name = config.get("bucketName")
        if name is not None and (not isinstance(name, str) or len(name.strip()) < 3):
            raise InputError("s3Config", "bucketName must be a bucket name (3 to 63 characters)")
        return Bucket(
            config["endpointUrl"].strip(),
            config["accessId"].strip(),
            config["accessSecret"].strip(),
            name.strip() if name else None,
            "s3Config",
        )
    values = [environ.get(key, "").strip() for key in ENV_KEYS]
    if not all(values):
        return None
    return Bucket(*values, name=environ.get(BUCKET_NAME_ENV, "").strip() or None, source="env")


def too_large_message(
    total_base64: int, limit: int, *, layers: int, resolution: int, environ: Mapping[str, str] | None = None
) -> str:
    """Why the result cannot be returned, and every way to fix it (for the `output:` error)."""
    environ = os.environ if environ is None else environ
    unset = [key for key in ENV_KEYS if not environ.get(key, "").strip()]
    partial = f" ({', '.join(unset)} not set)" if len(unset) < len(ENV_KEYS) else ""
    smaller = []
    if layers > 2:
        smaller.append("fewer layers")
    if resolution > 640:
        smaller.append("resolution 640")
    shrink = f"; or ask for {' or '.join(smaller)}" if smaller else ""
    return (
        f"the {layers} layers are {total_base64 / 1e6:.1f} MB of base64, over the {limit / 1e6:.1f} MB that "
        f"can be returned inline ({INLINE_LIMIT_ENV}; the job API's /run limit is 10 MB), and no bucket "
        f"is configured to upload them to{partial}. Send s3Config {{accessId, accessSecret, bucketName, "
        f"endpointUrl}} with the job, or set {', '.join(ENV_KEYS)} and {BUCKET_NAME_ENV} on the endpoint"
        f"{shrink}"
    )


def _rp_upload(file_name: str, file_data: bytes, **kwargs: Any) -> str:
    # Imported here: importing rp_upload calls logging.basicConfig, and boto3 loads lazily anyway.
    from runpod.serverless.utils.rp_upload import upload_in_memory_object

    return upload_in_memory_object(file_name, file_data, **kwargs)


def upload_pngs(
    pngs: Sequence[bytes], bucket: Bucket, *, job_id: str, upload: Uploader = _rp_upload
) -> tuple[list[str], list[str]]:
    """Upload each PNG under `<job id>/<8 hex>/layer-NN.png`; (presigned URLs, warnings).

    Raises InputError naming `output` when an upload fails or does not come back as a URL.
    """
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    warnings: list[str] = []
    name = bucket.name
    if name is None:
        name = default_bucket_name()
        warnings.append(
            f"storage: no bucket name was given (s3Config.bucketName or {BUCKET_NAME_ENV}), so the layers "
            f"went to rp_upload's default bucket {name!r}, named after the month"
        )
    # Local test jobs all have the id "local_test": the random part keeps their keys apart.
    safe_id = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id)[:100] or "job"
    prefix = f"{safe_id}/{uuid.uuid4().hex[:8]}"
    urls: list[str] = []
    for index, data in enumerate(pngs):
        try:
            url = upload(
                f"layer-{index:02d}.png", data, bucket_creds=bucket.creds(), bucket_name=name, prefix=prefix
            )
        except (BotoCoreError, ClientError, Boto3Error) as err:
            detail = f"{type(err).__name__}: {err}".replace(bucket.access_secret, "***")
            raise InputError(
                "output",
                f"uploading layer {index} to bucket {name!r} at {bucket.endpoint_url} "
                f"(from {bucket.source}) failed: {detail}",
            ) from None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            # rp_upload's local fallback: a path on this worker's disk is of no use to the caller.
            raise InputError(
                "output", f"uploading layer {index} gave no URL (rp_upload wrote it to the worker's disk)"
            )
        urls.append(url)
    return urls, warnings
