"""Non-neural reference points: TF-IDF + one-vs-rest logistic regression, and "always the most frequent codes".

Every neural model should beat both; CAML (Mullenbach et al. 2018, Table 3) reports a bag-of-words logistic
regression as its simplest baseline. Both share the interface ``fit(texts, y)`` / ``predict_proba(texts)``.
"""
from __future__ import annotations

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier


def _check_labels(texts: list[str], y: np.ndarray) -> np.ndarray:
    """``y`` as a 2-D 0/1 float array with one row per text, or ``ValueError``."""
    y = np.asarray(y)
    if y.ndim != 2 or y.shape[0] != len(texts):
        raise ValueError(f"y must have shape (len(texts), num_codes) = ({len(texts)}, C), got {y.shape}")
    return (y > 0).astype(np.float64)


class MostFrequentCodesBaseline:
    """Predicts the same k most frequent training codes for every document.

    ``predict_proba`` keeps the ranking of the training frequencies but maps the top k above 0.5 and the rest
    below (``0.5 + f/2`` and ``f/2``), so CAML's 0.5 threshold selects exactly those k codes.

    Args:
        k: number of codes to predict; default: the rounded mean number of codes per training document.
    """

    def __init__(self, k: int | None = None):
        self.k = k

    def fit(self, texts: list[str], y: np.ndarray) -> "MostFrequentCodesBaseline":
        """Count code frequencies in ``y`` ``(n_docs, num_codes)``; ``texts`` only fixes the number of rows."""
        y = _check_labels(texts, y)
        self.frequency_ = y.mean(axis=0)
        k = self.k if self.k is not None else int(round(y.sum(axis=1).mean()))
        self.k_ = max(0, min(k, y.shape[1]))
        top = np.argsort(-self.frequency_, kind="stable")[: self.k_]
        self.scores_ = self.frequency_ / 2
        self.scores_[top] += 0.5
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """``(n_docs, num_codes)``: the same score row for every document."""
        return np.tile(self.scores_, (len(texts), 1))


class TfidfLogisticBaseline:
    """TF-IDF features + one logistic regression per code (one-vs-rest, scikit-learn).

    Codes that are always or never present in training get a constant probability (their training rate).

    Args:
        max_features: vocabulary cap of the vectoriser (most frequent terms); ``None`` = all.
        ngram_range: word n-grams to use.
        min_df: minimum document frequency of a term.
        sublinear_tf: use ``1 + log(tf)``.
        C: inverse L2 regularisation strength of each logistic regression. TF-IDF rows have unit norm, so useful
            weights are large: sklearn's C=1 under-fits at the 0.5 threshold (on the planted test task it loses
            to the most-frequent baseline; C=10 does not). Tune on dev.
        max_iter: solver iterations.
        n_jobs: parallel jobs over codes (``None`` = 1).
        token_pattern: the vectoriser's token regex (default: words of ≥ 1 character, as CAML's ``\\w+``).
        dual: liblinear's formulation. Both solve the same L2-regularised problem (the same model, the same optimum
            up to the solver tolerance); the dual is much faster when terms outnumber documents, as they do in clinical
            notes (``benchmarks/bench_baselines.py``). ``"auto"``: the dual when the features outnumber the samples.
    """

    def __init__(
        self,
        max_features: int | None = None,
        ngram_range: tuple[int, int] = (1, 1),
        min_df: int = 1,
        sublinear_tf: bool = True,
        C: float = 10.0,
        max_iter: int = 1000,
        n_jobs: int | None = None,
        token_pattern: str = r"(?u)\b\w+\b",
        dual: bool | str = "auto",
    ):
        if dual not in (True, False, "auto"):
            raise ValueError(f"dual must be True, False or 'auto', got {dual!r}")
        self.dual = dual
        self.vectorizer = TfidfVectorizer(
            max_features=max_features, ngram_range=ngram_range, min_df=min_df, sublinear_tf=sublinear_tf,
            token_pattern=token_pattern, dtype=np.float32,
        )
        self.classifier = OneVsRestClassifier(
            LogisticRegression(C=C, max_iter=max_iter, solver="liblinear"), n_jobs=n_jobs
        )

    def fit(self, texts: list[str], y: np.ndarray) -> "TfidfLogisticBaseline":
        """Fit the vectoriser and the per-code classifiers on ``texts`` and multi-hot ``y`` ``(n_docs, num_codes)``."""
        y = _check_labels(texts, y)
        return self.fit_features(self.vectorizer.fit_transform(texts), y)

    def fit_features(self, features, y: np.ndarray) -> "TfidfLogisticBaseline":
        """Fit the per-code classifiers on the fitted vectoriser's ``features`` (sparse, one row per document)."""
        y = (np.asarray(y) > 0).astype(np.float64)
        rate = y.mean(axis=0)
        self.varying_ = np.flatnonzero((rate > 0) & (rate < 1))
        self.constant_ = rate
        if self.varying_.size:
            # liblinear works in float64: convert once here, not once per code
            features = features.astype(np.float64)
            dual = features.shape[1] > features.shape[0] if self.dual == "auto" else self.dual
            self.classifier.set_params(estimator__dual=bool(dual))
            self.classifier.fit(features, y[:, self.varying_].astype(int))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """``(n_docs, num_codes)`` probabilities."""
        proba = np.tile(self.constant_, (len(texts), 1))
        if self.varying_.size:
            scores = self.classifier.predict_proba(self.vectorizer.transform(texts))
            if self.varying_.size == 1 and scores.shape[1] == 2:  # one code: sklearn's binary case
                scores = scores[:, 1:]
            proba[:, self.varying_] = scores.reshape(len(texts), -1)
        return proba
