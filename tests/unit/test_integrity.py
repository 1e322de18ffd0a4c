"""The digest of a model folder: the same files give the same digest wherever they are, and
any change to a file's bytes or name gives another; a version's tag decides what loads."""

from __future__ import annotations

import shutil

import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from prodcat.integrity import (
    ARTIFACT_SHA256_TAG,
    ModelIntegrityError,
    digest_model_dir,
    verify_model_dir,
)


@pytest.fixture
def model_dir(tmp_path):
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "model.pkl").write_bytes(b"\x80\x05pickle bytes")
    (folder / "sub" / "extra.txt").write_text("x")
    return folder


def version_tagged(digest: str | None) -> ModelVersion:
    tags = [ModelVersionTag(ARTIFACT_SHA256_TAG, digest)] if digest else []
    return ModelVersion(name="m", version="4", creation_timestamp=0, tags=tags)


def test_the_same_files_elsewhere_give_the_same_digest(model_dir, tmp_path):
    copy = shutil.copytree(model_dir, tmp_path / "copy")
    assert digest_model_dir(copy) == digest_model_dir(model_dir)
    assert len(digest_model_dir(model_dir)) == 64


@pytest.mark.parametrize("change", ["a byte", "a name", "a new file", "a missing file"])
def test_any_change_gives_another_digest(model_dir, change):
    before = digest_model_dir(model_dir)
    if change == "a byte":
        (model_dir / "model.pkl").write_bytes(b"\x80\x05pickle bytez")
    elif change == "a name":
        (model_dir / "sub" / "extra.txt").rename(model_dir / "sub" / "other.txt")
    elif change == "a new file":
        (model_dir / "evil.py").write_text("import os")
    else:
        (model_dir / "sub" / "extra.txt").unlink()
    assert digest_model_dir(model_dir) != before


def test_a_folder_is_loaded_only_when_it_matches_its_versions_tag(model_dir, caplog):
    verify_model_dir(model_dir, version_tagged(digest_model_dir(model_dir)))
    (model_dir / "model.pkl").write_bytes(b"another model")
    with pytest.raises(ModelIntegrityError, match="version 4 refused: its files' SHA-256"):
        verify_model_dir(model_dir, version_tagged("0" * 64))
    verify_model_dir(model_dir, version_tagged(None))  # registered before digests: a warning
    assert "has no artifact.sha256 tag" in caplog.text
