"""Where training data comes from: named datasets, local files, downloads and user data.

`load(name, split)` returns numpy arrays `(x, y)` with `x` of shape
`(num_examples, height, width, channels)` in the dataset's own units and `y` int64 labels
of shape `(num_examples,)`. Named datasets live in a registry (`DATASETS`,
`register_dataset`); anything else is read as a path to user data.

Named datasets:

- `"digits"`: the 8x8 handwritten digits that scikit-learn ships inside its package
  (1,797 images of counts 0..16, read from a file bundled with scikit-learn; no network).
  A fixed split: 1,500 train and 297 test images, from `np.random.default_rng(0)`.
- `"mnist"`, `"fashion_mnist"`: 60,000 train and 10,000 test 28x28 uint8 images, read
  from the standard IDX files (gzip or raw), looked up in `data_dir`, then
  `$TFVAE_DATA_DIR`, then the Keras cache; downloaded with checksum verification when
  found nowhere.

This module needs only numpy, the standard library, and (for its datasets) scikit-learn
and Pillow; it never imports TensorFlow.
"""

import dataclasses
import gzip
import hashlib
import http.client
import os
import types
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tfvae import atomic
from tfvae.data.idx import IDXFormatError, read_idx

__all__ = [
    "DATASETS",
    "ChecksumError",
    "DatasetNotFoundError",
    "fetch_url",
    "keras_cache_dir",
    "load",
    "register_dataset",
]

SPLITS = ("train", "test")
DATA_DIR_ENV = "TFVAE_DATA_DIR"

Loader = Callable[[str, Path | None], tuple[np.ndarray, np.ndarray]]


# ---------------------------------------------------------------------------------------
# Errors.


class DatasetNotFoundError(FileNotFoundError):
    """A named dataset has no local copy and could not be downloaded.

    Attributes:
        name: the dataset's name.
        searched: the folders that were searched, in order.
        download_errors: one line per failed download attempt (empty if none was made).
    """

    def __init__(self, name: str, searched: Sequence[Path], download_errors: Sequence[str]):
        self.name = name
        self.searched = tuple(searched)
        self.download_errors = tuple(download_errors)
        folders = "\n".join(f"  - {folder}" for folder in self.searched)
        failures = "\n".join(f"  - {line}" for line in self.download_errors) or "  (none)"
        super().__init__(
            f"Dataset {name!r} was not found locally and could not be downloaded.\n"
            f"Folders searched, in order:\n{folders}\n"
            f"Download attempts:\n{failures}\n"
            f"Put the IDX files (.gz or uncompressed) in a folder and pass "
            f"data_dir=<folder>, or set the environment variable {DATA_DIR_ENV}=<folder> "
            f"(files may sit in <folder> or <folder>/{name})."
        )


class ChecksumError(ValueError):
    """Downloaded bytes do not have the expected checksum; nothing was written.

    Attributes:
        url: where the bytes came from.
        algorithm: the hash algorithm, e.g. "sha256".
        expected: the expected hex digest.
        received: the hex digest of the downloaded bytes.
    """

    def __init__(self, url: str, algorithm: str, expected: str, received: str, what: str):
        self.url = url
        self.algorithm = algorithm
        self.expected = expected
        self.received = received
        super().__init__(
            f"Checksum mismatch for {url} ({algorithm} of the {what}): expected {expected}. "
            f"Received: {received}. The download was discarded; nothing was written."
        )


# ---------------------------------------------------------------------------------------
# Registry.

_REGISTRY: dict[str, Loader] = {}
DATASETS = types.MappingProxyType(_REGISTRY)
"""Read-only mapping from dataset name to its loader `loader(split, data_dir) -> (x, y)`."""


def register_dataset(name: str, loader: Loader) -> Loader:
    """Registers a named dataset for `load`.

    Args:
        name: the name users pass to `load`; must not look like a file path.
        loader: `loader(split, data_dir) -> (x, y)`, where `split` is "train" or "test",
            `data_dir` is a `Path` or None, `x` has shape
            `(num_examples, height, width, channels)` and `y` is int64 of shape
            `(num_examples,)`.

    Returns:
        `loader`, unchanged.

    Raises:
        ValueError: if `name` is already registered, empty, or contains a path separator.
    """
    if not isinstance(name, str) or not name or "/" in name or os.sep in name:
        raise ValueError(
            f"Expected name to be a non-empty string without path separators. Received: "
            f"name={name!r}"
        )
    if name in _REGISTRY:
        raise ValueError(
            f"A dataset named {name!r} is already registered. Registered: {sorted(_REGISTRY)}"
        )
    _REGISTRY[name] = loader
    return loader


def load(
    name: str | os.PathLike,
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Loads a dataset as numpy arrays.

    `name` is either a registered dataset (`sorted(DATASETS)`: "digits", "fashion_mnist",
    "mnist") or a path to user data:

    - a `.npy` file holding `x`, with labels all zero;
    - a `.npz` file with key `x` and optional key `y` (labels all zero when absent), or
      with keys `x_train`/`x_test` (and optional `y_train`/`y_test`), of which `split`
      picks one, like `keras.datasets.mnist`'s `mnist.npz`;
    - a folder of PNG images (greyscale "L" gives 1 channel, "RGB" 3, bilevel "1" is read
      as "L"; all images must have the same size and mode). If the folder has subfolders,
      each subfolder is a class and its index in sorted name order is the label (PNGs in
      the folder itself are then not allowed); otherwise all labels are zero. Files and
      folders whose names start with "." are ignored.

    A registered name wins over a file or folder of the same name (write "./digits" for
    the folder). User data has no train/test split unless it is an npz with `x_train`/`x_test` keys:
    otherwise `split` is validated but ignored, and both splits return the same arrays.
    Arrays of rank 3 `(num_examples, height, width)` get a channel axis.

    Args:
        name: a registered dataset name, or a path to a `.npy`/`.npz` file or a folder.
        split: "train" or "test".
        data_dir: a folder searched first for the files of "mnist" and "fashion_mnist"
            (directly in it, or in its subfolder named after the dataset).

    Returns:
        `(x, y)`: `x` of shape `(num_examples, height, width, channels)` in the dataset's
        own units (uint8 grey levels 0..255 for MNIST, uint8 counts 0..16 for digits; user
        arrays keep their dtype), and `y` int64 of shape `(num_examples,)`.

    Raises:
        ValueError: if `split` is not "train" or "test"; if `name` is neither a registered
            dataset nor a path (the message lists the registered names); if user data has
            the wrong rank, mismatched lengths, non-integer labels, or PNGs of different
            sizes or modes (the message names the file).
        FileNotFoundError: if `name` looks like a path that does not exist.
        DatasetNotFoundError: if a downloadable dataset has no local copy and the
            download fails (e.g. offline).
        ChecksumError: if a downloaded file has the wrong checksum.
        IDXFormatError: if a local IDX file is corrupt.

    Example:

    >>> x, y = load("digits", split="test")
    >>> x.shape, x.dtype, y.shape, y.dtype
    ((297, 8, 8, 1), dtype('uint8'), (297,), dtype('int64'))
    """
    if split not in SPLITS:
        raise ValueError(f"Expected split to be one of {list(SPLITS)}. Received: split={split!r}")
    if data_dir is not None:
        data_dir = Path(data_dir)
    if isinstance(name, str) and name in _REGISTRY:
        return _REGISTRY[name](split, data_dir)

    path = Path(name)
    looks_like_path = (
        not isinstance(name, str)
        or "/" in name
        or os.sep in name
        or path.suffix.lower() in (".npy", ".npz")
    )
    if path.exists():
        return _load_user_data(path, split)
    if looks_like_path:
        raise FileNotFoundError(f"No such file or folder: {str(path)!r}")
    raise ValueError(
        f"Unknown dataset {name!r}. Expected one of {sorted(_REGISTRY)}, or a path to a "
        ".npy/.npz file or a folder of PNG images."
    )


# ---------------------------------------------------------------------------------------
# digits: embedded, no network.

DIGITS_NUM_TEST = 297  # of 1,797; the remaining 1,500 are the training split.


def _load_digits(split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """The scikit-learn 8x8 digits: 1,500 train / 297 test images of counts 0..16."""
    del data_dir  # Bundled with scikit-learn.
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.uint8)[..., np.newaxis]  # [1797, 8, 8, 1]
    labels = bunch.target.astype(np.int64)  # [1797]
    order = np.random.default_rng(0).permutation(len(images))
    indices = order[:DIGITS_NUM_TEST] if split == "test" else order[DIGITS_NUM_TEST:]
    indices = np.sort(indices)  # Keep scikit-learn's order within each split.
    return images[indices], labels[indices]


# ---------------------------------------------------------------------------------------
# IDX datasets: local lookup, download with checksum.

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


@dataclasses.dataclass(frozen=True)
class _IDXDataset:
    """An MNIST-like dataset of four IDX files.

    Attributes:
        name: the registry name, also the Keras-cache subfolder downloads go to.
        mirrors: base URLs tried in order; each serves `<file>.gz`.
        checksums: file name without `.gz` -> expected hex digest.
        algorithm: hashlib algorithm of `checksums`.
        over_decompressed: whether `checksums` are of the decompressed bytes (robust to
            different gzip wrappings on different mirrors) or of the `.gz` as published.
        cache_aliases: other Keras-cache subfolder names to look in (e.g. the folder
            `keras.datasets.fashion_mnist` downloads to).
        image_shape: `(height, width)` every image must have.
    """

    name: str
    mirrors: tuple[str, ...]
    checksums: dict[str, str]
    algorithm: str
    over_decompressed: bool
    cache_aliases: tuple[str, ...] = ()
    image_shape: tuple[int, int] = (28, 28)

    def __call__(self, split: str, data_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
        image_name, label_name = _IDX_FILES[split]
        folder = self._locate(split, data_dir)
        image_path = _find_file(folder, image_name)
        label_path = _find_file(folder, label_name)
        images = read_idx(image_path, ndim=3, dtype=np.uint8)  # [N, 28, 28]
        labels = read_idx(label_path, ndim=1, dtype=np.uint8)  # [N]
        if images.shape[1:] != self.image_shape:
            raise IDXFormatError(
                image_path,
                f"expected {self.name} images of shape {self.image_shape}. Received: "
                f"{images.shape[1:]}",
            )
        if len(images) != len(labels):
            raise ValueError(
                f"Expected as many labels as images. Received: {len(images)} images in "
                f"{str(image_path)!r} and {len(labels)} labels in {str(label_path)!r}"
            )
        return images[..., np.newaxis], labels.astype(np.int64)

    def search_folders(self, data_dir: Path | None) -> list[Path]:
        """The folders searched for local files, in order."""
        folders = []
        for root in (data_dir, os.environ.get(DATA_DIR_ENV) or None):
            if root is not None:
                folders += [Path(root) / self.name, Path(root)]
        cache = keras_cache_dir()
        folders += [cache / sub for sub in (self.name, *self.cache_aliases)]
        return folders

    def _locate(self, split: str, data_dir: Path | None) -> Path:
        """Returns the first folder holding both files of `split`, downloading if needed."""
        names = _IDX_FILES[split]
        searched = self.search_folders(data_dir)
        for folder in searched:
            if all(_find_file(folder, name) is not None for name in names):
                return folder
        target = keras_cache_dir() / self.name
        errors = []
        for name in names:
            if _find_file(target, name) is None:
                errors += self._download(name, target)
        if errors:
            raise DatasetNotFoundError(self.name, searched, errors)
        return target

    def _download(self, name: str, folder: Path) -> list[str]:
        """Downloads `name`.gz into `folder`; returns the failures (empty on success).

        Raises:
            ChecksumError: if every mirror failed and at least one served wrong bytes.
        """
        errors, mismatch = [], None
        for base in self.mirrors:
            url = f"{base}{name}.gz"
            try:
                payload = fetch_url(url)
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{url}: {error}")
                continue
            try:
                self._verify(url, name, payload)
            except ChecksumError as error:
                errors.append(str(error))
                mismatch = error
                continue
            atomic.write_bytes(folder / f"{name}.gz", payload)
            return []
        if mismatch is not None:
            raise mismatch
        return errors

    def _verify(self, url: str, name: str, payload: bytes) -> None:
        if self.over_decompressed:
            try:
                content = gzip.decompress(payload)
            except (OSError, EOFError) as error:
                raise ChecksumError(
                    url, self.algorithm, self.checksums[name], f"<not gzip: {error}>", "content"
                ) from error
            what = "decompressed content"
        else:
            content, what = payload, ".gz file"
        digest = hashlib.new(self.algorithm, content).hexdigest()
        if digest != self.checksums[name]:
            raise ChecksumError(url, self.algorithm, self.checksums[name], digest, what)


def keras_cache_dir() -> Path:
    """The Keras dataset cache: `$KERAS_HOME/datasets`, by default `~/.keras/datasets`.

    Returns:
        The folder (which may not exist yet).
    """
    keras_home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(keras_home) / "datasets"


def fetch_url(url: str) -> bytes:
    """Downloads `url` and returns its bytes (the function `load` downloads with).

    Tests replace this module attribute to simulate being offline or a corrupt mirror.

    Args:
        url: an http(s) URL.

    Returns:
        The response body.

    Raises:
        OSError: on network errors (`urllib.error.URLError` is one).
        http.client.HTTPException: on a malformed or incomplete response.
    """
    with urllib.request.urlopen(url, timeout=60) as response:
        return response.read()


def _find_file(folder: Path, name: str) -> Path | None:
    """`folder/name.gz` or `folder/name`, whichever exists first, else None."""
    for candidate in (folder / f"{name}.gz", folder / name):
        if candidate.is_file():
            return candidate
    return None


# MNIST from the CVDF mirror that keras/tensorflow use. The SHA-256 values are of the
# DECOMPRESSED files (gzip wrappings differ between mirrors), computed from the reference
# copy in shared/data/mnist, whose raw MD5s match the published ones
# (train images 6bbc9ace898e44ae57da46a324031adb, test images 2646ac647ad5339dbf082846283269ea).
register_dataset(
    "mnist",
    _IDXDataset(
        name="mnist",
        mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/",),
        checksums={
            "train-images-idx3-ubyte": (
                "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
            ),
            "train-labels-idx1-ubyte": (
                "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
            ),
            "t10k-images-idx3-ubyte": (
                "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
            ),
            "t10k-labels-idx1-ubyte": (
                "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
            ),
        },
        algorithm="sha256",
        over_decompressed=True,
    ),
)

# Fashion-MNIST from the Keras mirror (HTTPS), falling back to the fashion-mnist S3 bucket
# (HTTP only). No checksums of the decompressed files are published, so these are
# SHA-256 sums of the .gz files as distributed by zalandoresearch/fashion-mnist (from
# tensorflow/datasets url_checksums/fashion_mnist.txt; the fashion-mnist README publishes
# their MD5s: 8d4fb7e6..., 25c81989..., bef4ecab..., bb300cfd...). The Keras mirror's files
# have the same sizes; if its gzip wrapping ever differs, the S3 copy is used instead.
register_dataset(
    "fashion_mnist",
    _IDXDataset(
        name="fashion_mnist",
        mirrors=(
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        ),
        checksums={
            "train-images-idx3-ubyte": (
                "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"
            ),
            "train-labels-idx1-ubyte": (
                "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"
            ),
            "t10k-images-idx3-ubyte": (
                "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"
            ),
            "t10k-labels-idx1-ubyte": (
                "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"
            ),
        },
        algorithm="sha256",
        over_decompressed=False,
        cache_aliases=("fashion-mnist",),  # Where keras.datasets.fashion_mnist saves them.
    ),
)
register_dataset("digits", _load_digits)


# ---------------------------------------------------------------------------------------
# User data.

_PNG_MODES = {"L": 1, "RGB": 3}


def _load_user_data(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if path.is_dir():
        x, y = _load_png_folder(path)
    elif path.suffix.lower() == ".npy":
        x = np.load(path, allow_pickle=False)
        y = None
    elif path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            keys = set(archive.files)
            if f"x_{split}" in keys:
                x, y_key = archive[f"x_{split}"], f"y_{split}"
            elif "x" in keys:
                x, y_key = archive["x"], "y"
            else:
                raise ValueError(
                    f"Expected {str(path)!r} to hold an array 'x' (and optionally 'y'), or "
                    f"'x_train'/'x_test'. Received keys: {sorted(keys)}"
                )
            y = archive[y_key] if y_key in keys else None
    else:
        raise ValueError(
            "Expected user data to be a .npy or .npz file or a folder of PNG images. "
            f"Received: {str(path)!r}"
        )
    return _check_user_arrays(x, y, path)


def _check_user_arrays(
    x: np.ndarray, y: np.ndarray | None, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x)
    if x.ndim == 3:
        x = x[..., np.newaxis]  # [N, H, W] -> [N, H, W, 1]
    if x.ndim != 4:
        raise ValueError(
            f"Expected x in {str(path)!r} to have shape (num_examples, height, width) or "
            f"(num_examples, height, width, channels). Received: shape {x.shape}"
        )
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_):
        raise ValueError(f"Expected numeric x in {str(path)!r}. Received: dtype {x.dtype}")
    if y is None:
        return x, np.zeros(len(x), dtype=np.int64)
    y = np.asarray(y)
    if y.shape != (len(x),):
        raise ValueError(
            f"Expected y in {str(path)!r} to have shape ({len(x)},), one label per example. "
            f"Received: shape {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if not (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)):
            raise ValueError(
                f"Expected integer labels y in {str(path)!r}. Received: dtype {y.dtype}"
            )
    return x, y.astype(np.int64)


def _load_png_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Reads `folder/*.png` (label 0) or `folder/<class>/*.png` (label = class index)."""
    entries = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    classes = [p for p in entries if p.is_dir()]
    top_pngs = [p for p in entries if p.is_file() and p.suffix.lower() == ".png"]
    if classes and top_pngs:
        raise ValueError(
            f"Expected {str(folder)!r} to hold either PNG images or class subfolders, not "
            f"both. Received: {len(top_pngs)} PNG files and subfolders "
            f"{[p.name for p in classes]}"
        )
    if classes:
        files = []
        for label, subfolder in enumerate(classes):
            files += [
                (p, label)
                for p in sorted(subfolder.iterdir())
                if p.is_file() and p.suffix.lower() == ".png" and not p.name.startswith(".")
            ]
    else:
        files = [(p, 0) for p in top_pngs]
    if not files:
        raise ValueError(f"Expected PNG images in {str(folder)!r}. Received: none")

    from PIL import Image

    images, reference = [], None
    for file, _ in files:
        with Image.open(file) as image:
            if image.mode == "1":
                image = image.convert("L")
            if image.mode not in _PNG_MODES:
                raise ValueError(
                    f"Expected a greyscale ('L') or 'RGB' image. Received: mode "
                    f"{image.mode!r} in {str(file)!r}; convert it, e.g. with Pillow's "
                    "Image.convert('L') or convert('RGB')"
                )
            signature = (image.size, image.mode)
            if reference is None:
                reference = (signature, file)
            elif signature != reference[0]:
                (size, mode), first = reference
                raise ValueError(
                    f"Expected every image to have size {size} and mode {mode!r} like "
                    f"{str(first)!r}. Received: size {image.size} and mode {image.mode!r} "
                    f"in {str(file)!r}"
                )
            array = np.asarray(image, dtype=np.uint8)
        images.append(array.reshape(array.shape[0], array.shape[1], _PNG_MODES[image.mode]))
    x = np.stack(images)  # [N, H, W, C]
    y = np.array([label for _, label in files], dtype=np.int64)
    return x, y
