"""The bundle format: manifests round-trip, and any change to a file is refused by name."""

import json

import pytest

from tfvae import bundle


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "decoder.onnx").write_bytes(b"graph bytes")
    manifest = {"name": "m", "files": bundle.file_digests(tmp_path, ["decoder.onnx"])}
    bundle.write_manifest(tmp_path, manifest)
    return tmp_path


def test_a_written_manifest_is_read_back_verified(folder):
    import hashlib

    manifest = bundle.verified_manifest(folder)
    assert manifest["name"] == "m" and manifest["format_version"] == bundle.FORMAT_VERSION
    assert manifest["files"] == {"decoder.onnx": hashlib.sha256(b"graph bytes").hexdigest()}
    recorded = (folder / "manifest.sha256").read_text().split()
    assert recorded == [
        hashlib.sha256((folder / "manifest.json").read_bytes()).hexdigest(),
        "manifest.json",
    ]


def test_an_altered_file_is_refused_by_name(folder):
    (folder / "decoder.onnx").write_bytes(b"graph byteS")
    with pytest.raises(bundle.BundleError, match=r"decoder\.onnx: its SHA-256 does not match"):
        bundle.verified_manifest(folder)


def test_an_altered_manifest_is_refused_by_name(folder):
    text = (folder / "manifest.json").read_text().replace('"m"', '"n"')
    (folder / "manifest.json").write_text(text)
    with pytest.raises(bundle.BundleError, match=r"manifest\.json: .*altered file"):
        bundle.verified_manifest(folder)


def test_another_format_version_is_refused(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    text = json.dumps({**manifest, "format_version": 2})
    (folder / "manifest.json").write_text(text)
    (folder / "manifest.sha256").write_text(bundle.sha256(text.encode()) + "  manifest.json\n")
    with pytest.raises(bundle.BundleError, match=r"format_version 2; this runtime reads 1"):
        bundle.verified_manifest(folder)


@pytest.mark.parametrize("name", ["manifest.json", "manifest.sha256", "decoder.onnx"])
def test_a_missing_file_is_refused_by_name(folder, name):
    (folder / name).unlink()
    with pytest.raises(bundle.BundleError, match=name.replace(".", r"\.")):
        bundle.verified_manifest(folder)
