"""The ONNX bundle's format: its files, its manifest, and their checksums.

A bundle is a folder that `tfvae.export.export_model` writes and `tfvae.runtime.Sampler`
reads:

    decoder.onnx        z [, condition] -> the likelihood's parameters and `mean`
    encoder.onnx        x [, condition] -> the posterior's parameters (optional)
    manifest.json       what the model is (families, shapes, parity), with each ONNX
                        file's SHA-256
    manifest.sha256     the SHA-256 of manifest.json

This module is the one owner of that format: the version, the checksum, the writing and
the verification. It imports the standard library only.
"""

import hashlib
import json
from pathlib import Path

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
CHECKSUM = "manifest.sha256"


class BundleError(ValueError):
    """A bundle is missing a file, has an altered file, or has an unreadable manifest.

    Attributes:
        path: the offending file.
    """

    def __init__(self, path, reason: str):
        self.path = Path(path)
        super().__init__(f"{path}: {reason}")


def sha256(payload: bytes) -> str:
    """The SHA-256 of `payload`, in hex."""
    return hashlib.sha256(payload).hexdigest()


def file_digests(folder: Path, names) -> dict[str, str]:
    """`{name: SHA-256}` of the files `names` in `folder`, for the manifest's `files`."""
    return {name: sha256((Path(folder) / name).read_bytes()) for name in sorted(names)}


def write_manifest(folder: Path, manifest: dict) -> None:
    """Writes `manifest.json` (with the format version) and its checksum into `folder`."""
    text = json.dumps({**manifest, "format_version": FORMAT_VERSION}, indent=2, sort_keys=True)
    text += "\n"
    (Path(folder) / MANIFEST).write_text(text)
    (Path(folder) / CHECKSUM).write_text(f"{sha256(text.encode())}  {MANIFEST}\n")


def verified_manifest(folder) -> dict:
    """The manifest of the bundle in `folder`, after checking every checksum.

    Raises:
        BundleError: a file is missing or altered, or the manifest is unreadable or of a
            format version this tfvae does not read; the message names the file.
    """
    folder = Path(folder)
    manifest_path, checksum_path = folder / MANIFEST, folder / CHECKSUM
    for path in (manifest_path, checksum_path):
        if not path.is_file():
            raise BundleError(path, "missing: not a bundle written by tfvae.export.export_model")
    recorded = checksum_path.read_text().split()
    if not recorded or recorded[0] != sha256(manifest_path.read_bytes()):
        raise BundleError(manifest_path, f"its SHA-256 does not match {CHECKSUM}: altered file")
    try:
        manifest = json.loads(manifest_path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise BundleError(manifest_path, f"unreadable: {error}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleError(
            manifest_path,
            f"format_version {manifest.get('format_version')!r}; this runtime reads "
            f"{FORMAT_VERSION}",
        )
    for name, digest in manifest["files"].items():
        path = folder / name
        if not path.is_file():
            raise BundleError(path, "missing")
        if sha256(path.read_bytes()) != digest:
            raise BundleError(path, "its SHA-256 does not match the manifest: altered file")
    return manifest
