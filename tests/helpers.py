"""Small helpers shared by the tests: family parameters, and trees of user files."""

import hashlib

import numpy as np
import tensorflow as tf

BATCH = 3
LATENT_DIM = 4
NUM_MC = 20_000
NUM_SE = 4.0


def softplus(x):
    return np.logaddexp(0.0, np.asarray(x, dtype=np.float64))


def seed(a, b=0):
    return tf.constant([a, b], dtype=tf.int64)


def posterior_params(rng, posterior, batch=BATCH, latent_dim=LATENT_DIM):
    raw = rng.normal(size=(batch, posterior.param_size(latent_dim))).astype(np.float32)
    return raw, posterior.parameters(tf.constant(raw), latent_dim)


def tree_snapshot(folder) -> dict:
    """Every entry under `folder`: a file's SHA-256, a link's target, or "folder"."""
    entries = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            entries[key] = f"-> {path.readlink()}"
        elif path.is_file():
            entries[key] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            entries[key] = "folder"
    return entries


def user_files(folder):
    """Makes `folder` with a user's files in it (notes.txt, sub/thesis.tex); returns it."""
    folder.mkdir(parents=True)
    (folder / "notes.txt").write_text("my notes")
    (folder / "sub").mkdir()
    (folder / "sub" / "thesis.tex").write_text(r"\chapter{One}")
    return folder
