"""Models are code: a registered version's files get a SHA-256 when it is registered, and
whoever unpickles a version (the API, the pipeline's tasks) checks its files against it first.

Whoever can write to the artifact store could otherwise swap a model's pickle for one that
runs anything where it is loaded. The digest lives in the registry, a separate door.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

from mlflow.entities.model_registry import ModelVersion

from prodcat.config import Settings

log = logging.getLogger(__name__)
ARTIFACT_SHA256_TAG = "artifact.sha256"


class ModelIntegrityError(RuntimeError):
    """A model's files differ from those its version registered: it is not loaded."""


def digest_model_dir(path: Path) -> str:
    """SHA-256 over a model folder: each file's relative path and content digest, in order."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        with file.open("rb") as handle:
            content = hashlib.file_digest(handle, "sha256").digest()
        digest.update(file.relative_to(path).as_posix().encode() + b"\0" + content)
    return digest.hexdigest()


def download_version(version: str, destination: Path, settings: Settings) -> Path:
    """A registered version's files, downloaded into destination."""
    import mlflow

    from prodcat.training.registry import use_mlflow

    use_mlflow(settings)
    uri = f"models:/{settings.mlflow.model_name}/{version}"
    return Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(destination)))


def tag_artifact_digest(version: str, settings: Settings) -> str:
    """Record the digest of a registered version's stored files as its tag (idempotent)."""
    from prodcat.training.registry import get_client

    with tempfile.TemporaryDirectory(prefix="prodcat-digest-") as folder:
        digest = digest_model_dir(download_version(version, Path(folder), settings))
    get_client(settings).set_model_version_tag(
        settings.mlflow.model_name, version, ARTIFACT_SHA256_TAG, digest
    )
    log.info("version %s: files' SHA-256 %s recorded", version, digest)
    return digest


def verify_model_dir(path: Path, version: ModelVersion) -> None:
    """Raise ModelIntegrityError when the folder's digest differs from the version's tag.
    A version registered before digests existed has no tag: it is loaded, with a warning."""
    expected = version.tags.get(ARTIFACT_SHA256_TAG)
    if expected is None:
        log.warning("version %s has no %s tag: its files cannot be verified",
                    version.version, ARTIFACT_SHA256_TAG)  # fmt: skip
        return
    actual = digest_model_dir(path)
    if actual != expected:
        raise ModelIntegrityError(
            f"version {version.version} refused: its files' SHA-256 is {actual[:16]}..., "
            f"the registry recorded {expected[:16]}... at registration"
        )
