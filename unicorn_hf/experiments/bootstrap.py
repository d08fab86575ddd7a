"""Accuracy with bootstrap intervals, and paired differences between two arms scored on the same questions.

Percentile bootstrap over questions (Efron & Tibshirani 1993, ch. 13): resample the question indices with
replacement `num_resamples` times; a paired difference reuses the same resampled indices for both arms, so the
interval reflects only how the arms disagree on the same questions.
"""

from __future__ import annotations

import numpy as np


def _interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(samples, [tail, 1 - tail])
    return float(low), float(high)


def accuracy_interval(correct: np.ndarray, num_resamples: int, confidence: float, seed: int) -> dict:
    """{accuracy, low, high, n} for a 0/1 vector `correct` [N]. Raises `ValueError` on an empty vector."""
    correct = np.asarray(correct, dtype=np.float64)
    if correct.size == 0:
        raise ValueError("no question to score")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, correct.size, size=(num_resamples, correct.size))  # [R, N]
    low, high = _interval(correct[index].mean(axis=1), confidence)
    return {"accuracy": float(correct.mean()), "low": low, "high": high, "n": int(correct.size)}


def paired_difference(
    correct: np.ndarray, reference: np.ndarray, num_resamples: int, confidence: float, seed: int
) -> dict:
    """{difference, low, high, n}: accuracy(correct) - accuracy(reference) on the same N questions, paired.

    Raises `ValueError` when the two vectors do not score the same number of questions.
    """
    correct, reference = np.asarray(correct, np.float64), np.asarray(reference, np.float64)
    if correct.shape != reference.shape or correct.size == 0:
        raise ValueError(f"paired vectors differ in shape: {correct.shape} vs {reference.shape}")
    rng = np.random.default_rng(seed)
    index = rng.integers(0, correct.size, size=(num_resamples, correct.size))  # [R, N]
    differences = correct[index].mean(axis=1) - reference[index].mean(axis=1)  # [R]
    low, high = _interval(differences, confidence)
    return {"difference": float(correct.mean() - reference.mean()), "low": low, "high": high, "n": int(correct.size)}
