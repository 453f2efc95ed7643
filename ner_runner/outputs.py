"""Deliver a finished run directory to a gs:// prefix (Vertex jobs: the container's disk is gone afterwards).

`result.json` is uploaded last, so a reader that finds it also finds the model and reports next to it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import List, Tuple

from .errors import NerRunnerError

log = logging.getLogger(__name__)

RESULT = "result.json"


def split_gs_uri(uri: str) -> Tuple[str, str]:
    """`gs://bucket/a/b/` -> ("bucket", "a/b")."""
    if not uri.startswith("gs://") or len(uri) <= len("gs://"):
        raise NerRunnerError(f"output_uri must look like gs://BUCKET/PREFIX, got {uri!r}")
    bucket, _, prefix = uri[len("gs://") :].partition("/")
    return bucket, prefix.strip("/")


def upload_run_dir(run_dir: Path, output_uri: str, *, workers: int = 8) -> List[str]:
    """Upload every file under `run_dir` to `output_uri`, keeping relative paths; returns the blob names."""
    from google.api_core import exceptions as gexc
    from google.cloud import storage
    from google.cloud.storage import transfer_manager
    from google.cloud.storage.retry import DEFAULT_RETRY

    bucket_name, prefix = split_gs_uri(output_uri)
    files = sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file())
    body = [f for f in files if f != RESULT]
    blob_prefix = f"{prefix}/" if prefix else ""
    try:
        bucket = storage.Client().bucket(bucket_name)
        # overwriting the same object is idempotent, so every upload may be retried
        results = transfer_manager.upload_many_from_filenames(
            bucket,
            body,
            source_directory=str(run_dir),
            blob_name_prefix=blob_prefix,
            worker_type=transfer_manager.THREAD,
            max_workers=workers,
            upload_kwargs={"retry": DEFAULT_RETRY, "timeout": 300},
        )
        errors = [(name, r) for name, r in zip(body, results) if isinstance(r, Exception)]
        if errors:
            name, err = errors[0]
            raise NerRunnerError(f"could not upload {len(errors)} file(s) to {output_uri}, first {name}: {err}")
        if RESULT in files:
            bucket.blob(blob_prefix + RESULT).upload_from_filename(
                str(run_dir / RESULT), retry=DEFAULT_RETRY, timeout=60, content_type="application/json"
            )
    except (gexc.GoogleAPICallError, OSError) as err:
        raise NerRunnerError(f"could not upload {run_dir} to {output_uri}: {err}") from None
    except Exception as err:  # google.auth.exceptions.DefaultCredentialsError and friends
        if isinstance(err, NerRunnerError):
            raise
        raise NerRunnerError(f"could not upload {run_dir} to {output_uri}: {type(err).__name__}: {err}") from None
    log.info("outputs: %d file(s) copied to %s", len(files), output_uri)
    return [blob_prefix + f for f in body] + ([blob_prefix + RESULT] if RESULT in files else [])
