"""Numerically stable numpy functions that the families' numpy side and the runtime share."""

import numpy as np


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """The logistic function, overflow-free and accurate in both tails."""
    logits = np.asarray(logits, dtype=np.float64)
    small = np.exp(-np.abs(logits))  # in (0, 1]: never overflows
    return np.where(logits >= 0, 1.0 / (1.0 + small), small / (1.0 + small))


def log_sigmoid(logits: np.ndarray) -> np.ndarray:
    """log(sigmoid(l)), stable for large |l|."""
    return -np.logaddexp(0.0, -logits)


def logsumexp(values: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(values), axis)), stable; -inf where every value is -inf."""
    top = np.max(values, axis=axis, keepdims=True)
    top = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):  # log(0) = -inf is the answer for all -inf
        return np.squeeze(top, axis) + np.log(np.sum(np.exp(values - top), axis=axis))


def log_softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """log(softmax(logits)) along `axis`."""
    return logits - np.expand_dims(logsumexp(logits, axis), axis)
