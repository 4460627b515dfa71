"""Metrics of medical code assignment: pure functions on (n_docs, n_codes) arrays, no torch.

Inputs everywhere: ``y_true`` multi-hot 0/1 (int, bool or float 0./1.), ``y_score`` sigmoid scores
(float32 or float64, finite), both (n_docs, n_codes).

Definitions (CAML = Mullenbach et al. 2018, ``evaluation.py`` of caml-mimic; Edin et al. 2023 =
"Automated medical coding on MIMIC-III and MIMIC-IV: a critical review and replicability study", SIGIR):

==================  ==================================================================================
threshold           a code is predicted when ``score > threshold``; 0.5 by default (CAML rounds at 0.5,
                    so 0.5 itself is not predicted). ``Threshold.fit`` tunes one global value (or one per
                    code) on dev labels only (Edin et al.) and refuses to be applied to its own labels.
micro P / R / F1    over the flattened matrix: P = TP / #predicted (0 if nothing is predicted),
                    R = TP / #gold (0 if no gold), F1 = 2·TP / (#predicted + #gold) (0 if both are 0).
macro_precision,    CAML: per-code TP/#predicted and TP/#gold averaged over ALL codes of the label space,
macro_recall        a code without predictions (or without gold documents) contributing 0.
macro_f1_caml       CAML: harmonic mean of macro_precision and macro_recall (what the paper reports).
macro_f1_present    Edin et al.: mean of per-code F1 over codes with ≥ 1 gold document in the split.
                    The two differ by about 2× on the full label space.
macro_f1_all        mean of per-code F1 over ALL codes of the label space (a code never gold nor predicted
                    counts 0): a generic macro average given every label. Which paper used which:
                    docs/metrics.md.
per-code F1         2·TP / (#predicted + #gold); 0 for a code neither gold nor predicted.
macro_auc           mean per-code ROC AUC over codes with ≥ 1 positive AND ≥ 1 negative document (CAML
                    skips the others; ``macro_auc_n_skipped`` counts them). Tied scores count 1/2, which
                    is sklearn's ``roc_auc_score``.
micro_auc           one ROC AUC over all (document, code) pairs (CAML), ties as sklearn.
p@k                 mean over ALL documents of |gold ∩ top-k| / k (CAML). Top-k: scores descending, ties
                    broken by lower code index (deterministic; CAML's ``argsort[::-1]`` leaves ties to the
                    sort algorithm). k = 5 for top-50, 8 and 15 for full: ``default_k``.
r@k                 mean over ALL documents of |gold ∩ top-k| / |gold| (CAML).
r_precision         mean over documents of |gold ∩ top-R| / R, R = |gold| (Edin et al.).
map                 mean over documents of average precision over codes, per document (Edin et al.'s
                    ranking of codes within a note), equal to sklearn's ``average_precision_score`` on
                    each row (tied scores form one step; without ties this is Edin et al.'s formula).
no gold codes       a document without gold codes contributes 0 to p@k, r@k, r_precision and map (CAML
                    sets R@k's 0/0 to 0) and stays in the denominator; ``n_docs_no_gold`` counts them.
F1 by frequency     codes binned by training-set frequency ``[bins[i], bins[i+1])``, default
                    ``DEFAULT_BINS`` = 0 | 1-9 | 10-49 | 50-99 | 100-499 | 500-999 | 1000+ (the paper's
                    Figure 3 does not print its edges); micro-F1 pooled per bin and macro_f1_present.
bootstrap           percentile intervals over documents, vectorised (``bootstrap_ci``), and a paired test
                    A vs B on the same resamples (``paired_bootstrap``, Koehn 2004 style p-value).
==================  ==================================================================================

Speed (``benchmarks/bench_metrics.py``, 3,372 x 8,921 float32 scores, 2 CPUs): ``evaluate`` about 0.8 s,
1,000 bootstrap resamples about 0.5 s. Nothing sorts the whole matrix; float64 scores that are not exactly
float32 take a slower path (about 3 s).

Undefined values are never NaN in ``evaluate``: they are left out and a count says why. Bad input raises
``ValueError``: shape mismatch, empty matrix, labels other than 0/1, NaN/inf scores (how many, first row
and column).
"""
from __future__ import annotations

from .bootstrap import ConfidenceInterval, PairedComparison, bootstrap_ci, paired_bootstrap
from .classification import (DEFAULT_BINS, CodeCounts, code_counts, f1_by_frequency, frequency_bin_labels,
                             macro_f1_all, macro_f1_caml, macro_f1_present, micro_f1, micro_precision_recall_f1,
                             per_code_f1)
from .core import TUNED_SCORES, dev_threshold_scores, evaluate
from .ranking import (default_k, k_for_label_space, macro_auc, mean_average_precision, micro_auc,
                      per_code_auc, precision_at_k, r_precision, ranking_per_doc, recall_at_k)
from .stopping import check_metric_name, default_stopping_metric, higher_is_better
from .thresholds import Threshold

__all__ = [
    "DEFAULT_BINS", "CodeCounts", "ConfidenceInterval", "PairedComparison", "Threshold",
    "TUNED_SCORES", "bootstrap_ci", "check_metric_name", "code_counts", "default_k", "default_stopping_metric",
    "dev_threshold_scores", "evaluate",
    "f1_by_frequency", "frequency_bin_labels", "higher_is_better", "k_for_label_space", "macro_auc",
    "macro_f1_all", "macro_f1_caml", "macro_f1_present", "mean_average_precision", "micro_auc", "micro_f1",
    "micro_precision_recall_f1", "paired_bootstrap", "per_code_auc", "per_code_f1", "precision_at_k",
    "r_precision", "ranking_per_doc", "recall_at_k",
]
