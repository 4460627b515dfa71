"""Published MIMIC-III results of the CNN family, as data with a source for every number (percent).

Two sources per number, because they disagree (docs/reference.md §Published numbers):

* ``"paper"``: as printed in Ji, Hölttä & Marttinen 2021, Table 6 (Ji et al. 2021, Table 6).
* ``"original"``: as reported by each model's own publication, taken from docs/reference.md §Published numbers (CAML:
  Mullenbach et al. 2018; MultiResCNN: Li & Yu 2020; LAAT: Vu et al. 2020). The clearest disagreement: the paper
  prints 44.5 for CAML's full-code P@15, CAML's paper reports 56.1 (the CNN's 44.3 agrees in both).

Numbers missing from a source are simply absent (``value`` returns ``None``); nothing is filled in from memory.
This module also owns the row names of every comparison table (the paper's, and mcanb's own models and local
encoders): :mod:`mcanb.comparison` builds each paper table from them. Explained in notebooks/04_cnn_retraining.ipynb,
§5.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

# The row names of every table, defined in mcanb.names (a training run names its folder by them, and must not
# depend on the published numbers here): re-exported for the tables.
from . import names

ARCHITECTURES, BERT_DOMAINS, BERT_ENCODERS = names.ARCHITECTURES, names.BERT_DOMAINS, names.BERT_ENCODERS
CNN_ROWS, LOCAL_LABELS, slug = names.CNN_ROWS, names.LOCAL_LABELS, names.slug

# Column order of one label space in Table 6; keys are mcanb.metrics.evaluate names.
METRICS = {"50": ("macro_auc", "micro_auc", "macro_f1_caml", "micro_f1", "p@5"),
           "full": ("macro_auc", "micro_auc", "macro_f1_caml", "micro_f1", "p@8", "p@15")}
METRIC_LABELS = {"macro_auc": "macro-AUC", "micro_auc": "micro-AUC", "macro_f1_caml": "macro-F1",
                 "micro_f1": "micro-F1", "p@5": "P@5", "p@8": "P@8", "p@15": "P@15",
                 "micro_f1@dev_threshold": "micro-F1 (dev thr.)", "macro_f1_caml@dev_threshold": "macro-F1 (dev thr.)"}
# This run's F1 at the threshold tuned on dev (mcanb.metrics.dev_threshold_scores): shown beside the paper's metrics,
# which are all at 0.5; no paper number exists for them.
DEV_TUNED_METRICS = ("micro_f1@dev_threshold", "macro_f1_caml@dev_threshold")
SOURCES = {"paper": "as printed in the paper", "original": "original publication"}

# The order of Table 6's rows (names: mcanb.names.CNN_ROWS).
CNN_ROW_ORDER = ["CNN (Kim, 2014)", "CNN (retrained)", "CAML", "DR-CAML", "MultiResCNN", "HyperCore", "LAAT",
                 "TF-IDF + LR", "Most frequent codes"]
BASELINE_ROWS = ("TF-IDF + LR", "Most frequent codes")
# Paper rows of Table 6 that mcanb does not train, and why.
NOT_IMPLEMENTED = {"HyperCore": "not implemented in mcanb (hyperbolic code embeddings and a code co-graph; "
                                "Cao et al. 2020)",
                   "CNN (Kim, 2014)": "the paper's row for the original CNN settings; mcanb's `cnn` is the "
                                      "retrained row"}

# The paper's tables: what each shows, and the notebook that reproduces it.
TABLE_TITLES = {2: "pretraining domains, BERT-hier + LAN", 3: "pretraining corpora (abstracts, full text, notes), "
                "BERT-hier + LAN", 4: "truncated BERT, BERT-trun + FCN", 5: "BERT-trun vs BERT-hier, FCN vs LAN",
                6: "CNN-based models"}
# The notebooks whose runs stand beside each table: Table 4 (more data under BERT-trun + FCN) is notebook 02's pairs,
# or notebook 03 given a pair (mcanb.reproduced.tables_of)
TABLE_NOTEBOOKS = {2: ("02_pretraining_domains",), 3: ("02_pretraining_domains",),
                   4: ("02_pretraining_domains", "03_hierarchy"), 5: ("03_hierarchy",), 6: ("04_cnn_retraining",)}


@dataclass(frozen=True)
class Published:
    """One published number (percent)."""

    model: str          # row name in Table 6, e.g. "CNN (retrained)"
    label_space: str    # "50" | "full"
    metric: str         # an mcanb.metrics.evaluate name
    value: float        # percent, as printed
    source: str         # "paper" | "original"
    where: str          # citation: table and line, or publication


_TABLE6 = "Ji et al. 2021, Table 6"
_REF = "docs/reference.md §Published numbers ({pub})"

# (model, label space, source, where, values in METRICS[label space] order; None = not reported there)
_ROWS = [
    ("CNN (Kim, 2014)", "50", "paper", _TABLE6, (87.6, 90.7, 57.6, 62.5, 62.0)),
    ("CAML", "50", "paper", _TABLE6, (87.5, 90.9, 53.2, 61.4, 60.9)),
    ("MultiResCNN", "50", "paper", _TABLE6, (89.9, 92.8, 60.6, 67.0, 64.1)),
    ("HyperCore", "50", "paper", _TABLE6, (89.5, 92.9, 60.9, 66.3, 63.2)),
    ("CNN (retrained)", "50", "paper", _TABLE6, (90.8, 93.1, 62.4, 67.1, 64.0)),
    ("CNN (Kim, 2014)", "full", "paper", _TABLE6, (80.6, 96.9, 4.2, 41.9, 58.1, 44.3)),
    ("CAML", "full", "paper", _TABLE6, (89.5, 98.6, 8.8, 53.9, 70.9, 44.5)),
    ("MultiResCNN", "full", "paper", _TABLE6, (91.0, 98.6, 8.5, 55.2, 73.4, 58.4)),
    ("HyperCore", "full", "paper", _TABLE6, (93.0, 98.9, 9.0, 55.1, 72.2, 57.9)),
    ("CNN (retrained)", "full", "paper", _TABLE6, (85.0, 97.4, 5.9, 36.5, 49.0, 39.4)),
    # The paper is the retrained CNN's own publication (docs/reference.md §Published numbers lists its top-50
    # row as such).
    ("CNN (retrained)", "50", "original", _REF.format(pub="Ji et al. 2021, Table 6"),
     (90.8, 93.1, 62.4, 67.1, 64.0)),
    ("MultiResCNN", "50", "original", _REF.format(pub="Li & Yu 2020"), (89.9, 92.8, 60.6, 67.0, 64.1)),
    ("LAAT", "50", "original", _REF.format(pub="Vu et al. 2020"), (92.5, 94.6, 66.6, 71.5, 67.5)),
    ("CNN (Kim, 2014)", "full", "original", _REF.format(pub="CAML paper's CNN: P@15 44.3"),
     (None, None, None, None, None, 44.3)),
    ("CAML", "full", "original", _REF.format(pub="Mullenbach et al. 2018"), (89.5, 98.6, 8.8, 53.9, 70.9, 56.1)),
    ("MultiResCNN", "full", "original", _REF.format(pub="Li & Yu 2020"), (91.0, 98.6, 8.5, 55.2, 73.4, 58.4)),
    ("LAAT", "full", "original", _REF.format(pub="Vu et al. 2020"), (91.9, 98.8, 9.9, 57.5, 73.8, 59.1)),
]

NUMBERS: tuple[Published, ...] = tuple(
    Published(model, space, metric, value, source, where)
    for model, space, source, where, values in _ROWS
    for metric, value in zip(METRICS[space], values, strict=True) if value is not None)


def value(model: str, label_space: str, metric: str, source: str) -> float | None:
    """One published number in percent, or ``None`` if that source does not report it.

    Example: ``value("CNN (retrained)", "50", "micro_f1", "paper")`` -> ``67.1``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {list(SOURCES)}, got {source!r}")
    hits = [n.value for n in NUMBERS if (n.model, n.label_space, n.metric, n.source) ==
            (model, label_space, metric, source)]
    return hits[0] if hits else None


def frame() -> pd.DataFrame:
    """Every published number as a tidy table (model, label_space, metric, value, source, where)."""
    return pd.DataFrame([n.__dict__ for n in NUMBERS])


# -- The BERT family: Ji et al. 2021, Tables 2–5 (notebooks 02 and 03) --------------------------------------------
@dataclass(frozen=True)
class EncoderCard:
    """What an encoder's own model card (or its authors' README) says about it; architecture from its config.

    ``vocab_size`` and the architecture fields let a random-weight stand-in of the same shape be built
    (``transformers.BertConfig(**card.bert_config())``). ``verified`` is False where the card does not state a
    value and it comes from the model family (said in ``note``)."""

    encoder: str              # row name, a key of BERT_ENCODERS
    hub_id: str
    corpus: str               # pretraining corpus, as the card describes it
    initialised_from: str     # "scratch" or the checkpoint it continued from
    cased: bool
    vocab_size: int
    mimic: str                # MIMIC-III text in its pretraining: "none" or which notes
    source: str               # the card's URL
    note: str = ""            # uncertainty, or what differs from the paper's wording
    layers: int = 12          # BERT-base shape, shared by every encoder of Tables 2-5
    hidden_size: int = 768
    heads: int = 12
    intermediate_size: int = 3072
    max_positions: int = 512
    verified: bool = True

    def bert_config(self) -> dict:
        """Keyword arguments of ``transformers.BertConfig`` for a random-weight model of this encoder's shape."""
        return {"vocab_size": self.vocab_size, "hidden_size": self.hidden_size, "num_hidden_layers": self.layers,
                "num_attention_heads": self.heads, "intermediate_size": self.intermediate_size,
                "max_position_embeddings": self.max_positions}


_HF = "https://huggingface.co/"
_BIOBERT_V10 = "BioBERT-Base v1.0 (PubMed 200K abstracts + PMC 270K full-text articles)"
ENCODER_CARDS: dict[str, EncoderCard] = {c.encoder: c for c in (
    EncoderCard("BERT-base", "bert-base-uncased", "BooksCorpus + English Wikipedia", "scratch", False, 30522, "none",
                _HF + "bert-base-uncased",
                "the paper does not say cased or uncased; its preprocessing lowercases every note, so uncased"),
    EncoderCard("BlueBERT", "bionlp/bluebert_pubmed_mimic_uncased_L-12_H-768_A-12",
                "PubMed abstracts (about 4,000 M words) + MIMIC-III clinical notes (about 500 M words)",
                "bert-base-uncased", False, 30522, "MIMIC-III clinical notes (NOTEEVENTS)",
                _HF + "bionlp/bluebert_pubmed_mimic_uncased_L-12_H-768_A-12"),
    EncoderCard("BioBERT abstract", "xinzhi/biobert_v1.0_pubmed", "PubMed 200K abstracts (BioBERT-Base v1.0)",
                "bert-base-cased", True, 28996, "none", "https://github.com/dmis-lab/biobert#download",
                "a third-party upload of the authors' v1.0 (+ PubMed 200K) weights: its weight file is named "
                "biobert_v1.0_pubmed.pytorch.bin, so download the repository, rename that file to "
                "pytorch_model.bin and pass the directory; the authors publish v1.0 only as TensorFlow checkpoints"),
    EncoderCard("BioBERT full text", "monologg/biobert_v1.0_pubmed_pmc", _BIOBERT_V10, "bert-base-cased", True, 28996,
                "none", "https://github.com/dmis-lab/biobert#download",
                "a third-party PyTorch conversion of the authors' v1.0 (+ PubMed 200K + PMC 270K) weights; "
                "dmis-lab/biobert-base-cased-v1.2 is NOT this model: its authors describe it as PubMed 1M "
                "abstracts, trained like v1.1, plus an LM head (no full text)"),
    EncoderCard("BioRedditBERT", "cambridgeltl/BioRedditBERT-uncased",
                "health-themed Reddit posts (68 subreddits, 2015-2018, about 300 M tokens)", _BIOBERT_V10, False,
                28996, "none", _HF + "cambridgeltl/BioRedditBERT-uncased",
                "the card does not give the vocabulary: BioBERT v1.0's (BERT-base-cased's) size is assumed; the "
                "name says uncased", verified=False),
    EncoderCard("PubMedBERT abstract", "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract",
                "PubMed abstracts, pretrained from scratch with its own vocabulary", "scratch", False, 30522, "none",
                _HF + "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract",
                "now also named microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract"),
    EncoderCard("PubMedBERT full text", "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext",
                "PubMed abstracts + PubMed Central full-text articles, from scratch with its own vocabulary",
                "scratch", False, 30522, "none",
                _HF + "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext",
                "now also named microsoft/BiomedNLP-BiomedBERT-base-uncased-abstract-fulltext"),
    EncoderCard("SapBERT full text", "cambridgeltl/SapBERT-from-PubMedBERT-fulltext",
                "UMLS 2020AA synonyms (English), self-alignment metric learning", "PubMedBERT full text", False,
                30522, "none", _HF + "cambridgeltl/SapBERT-from-PubMedBERT-fulltext"),
    EncoderCard("ClinicalBERT all notes", "emilyalsentzer/Bio_ClinicalBERT",
                "all MIMIC-III notes (NOTEEVENTS, about 880 M words)", _BIOBERT_V10, True, 28996,
                "all MIMIC-III notes, discharge summaries included (the task's own notes)",
                _HF + "emilyalsentzer/Bio_ClinicalBERT"),
    EncoderCard("ClinicalBERT disch. sum.", "emilyalsentzer/Bio_Discharge_Summary_BERT",
                "MIMIC-III discharge summaries only", _BIOBERT_V10, True, 28996,
                "MIMIC-III discharge summaries (the task's own notes)",
                _HF + "emilyalsentzer/Bio_Discharge_Summary_BERT",
                "the card's training-data paragraph repeats the all-notes wording (~880 M words); its title and "
                "the ClinicalBERT paper say discharge summaries only"),
)}


def encoder_cards() -> pd.DataFrame:
    """ENCODER_CARDS as a table, one row per encoder of Tables 2-5."""
    return pd.DataFrame([c.__dict__ for c in ENCODER_CARDS.values()]).set_index("encoder")


# What each domain means, as the mapping column of a comparison table says it.
DOMAIN_NAMES = {"general": "general", "mixed": "mixed (biomedical)", "in-domain": "in-domain (clinical)",
                "none": "no pretraining"}

# The domain of each local stand-in (row labels: mcanb.names.LOCAL_LABELS).
LOCAL_DOMAINS = {"general": "general", "in-domain": "in-domain", "in-domain-less": "in-domain", "random": "none",
                 "minilm": "general"}


@dataclass(frozen=True)
class PublishedBert:
    """One published number of the BERT family (percent), as printed in Ji et al. 2021."""

    table: int          # 2, 3, 4 or 5
    encoder: str        # row name, a key of BERT_ENCODERS
    architecture: str   # a key of ARCHITECTURES
    label_space: str    # "50" | "full"
    metric: str         # an mcanb.metrics.evaluate name
    value: float
    where: str          # "Ji et al. 2021, Table N, row <encoder> (<architecture>)"


# What a reader of the paper's tables as printed needs to know (shown under them: report, README, notebook 02).
TABLE_NOTES = {
    2: "Table 3 of the paper prints P@5 64.0 and P@15 51.7 for the same PubMedBERT full-text run (64.4 and 50.4 in "
       "Table 2); each table is kept as printed.",
    3: "– marks a cell the paper's text leaves empty (PubMedBERT abstract's top-50 micro-F1 and full-code "
       "macro-AUC). PubMedBERT full text has P@5 64.0 and P@15 51.7 here, 64.4 and 50.4 in Table 2; each table is "
       "kept as printed.",
}

# (table, line of the paper's text (kept for review), encoder, architecture, top-50 values, full values); None = not printed. Table 3's first row has
# an empty top-50 micro-F1 and an empty full macro-AUC cell in the paper's text; the order of values follows
# METRICS. Tables 2 and 3 print different numbers for the same runs (PubMedBERT full text P@5 64.4 vs 64.0, P@15
# 50.4 vs 51.7): each table is kept as printed.
_BERT_ROWS = [
    (2, 112, "BERT-base", "hier_lan", (82.7, 86.3, 40.8, 50.8, 52.2), (82.2, 96.6, 5.8, 44.1, 63.3, 48.1)),
    (2, 113, "BlueBERT", "hier_lan", (89.4, 92.0, 61.0, 65.6, 62.8), (84.4, 97.5, 5.1, 42.5, 62.6, 47.3)),
    (2, 114, "BioBERT full text", "hier_lan", (88.8, 91.7, 60.4, 66.0, 63.1), (85.2, 97.4, 6.4, 47.0, 65.8, 50.7)),
    (2, 115, "BioRedditBERT", "hier_lan", (87.1, 89.6, 59.4, 64.8, 62.4), (86.5, 98.0, 3.0, 40.6, 62.4, 47.8)),
    (2, 116, "PubMedBERT full text", "hier_lan", (88.6, 90.8, 63.3, 68.1, 64.4),
     (87.4, 98.1, 4.3, 44.5, 65.2, 50.4)),
    (2, 117, "SapBERT full text", "hier_lan", (88.5, 90.8, 62.2, 66.7, 63.1), (86.4, 97.7, 6.2, 46.8, 68.5, 53.0)),
    (2, 118, "ClinicalBERT all notes", "hier_lan", (89.2, 91.6, 59.5, 64.8, 62.0),
     (84.7, 97.4, 6.0, 46.6, 65.1, 49.9)),
    (3, 143, "PubMedBERT abstract", "hier_lan", (90.1, 92.5, 62.3, None, 63.8), (None, 97.1, 5.8, 37.5, 66.6, 50.4)),
    (3, 144, "PubMedBERT full text", "hier_lan", (88.6, 90.8, 63.3, 68.1, 64.0),
     (87.4, 98.1, 4.3, 44.5, 65.2, 51.7)),
    (3, 145, "BioBERT abstract", "hier_lan", (89.4, 91.6, 59.5, 64.8, 62.7), (84.5, 97.3, 6.3, 46.5, 65.3, 50.0)),
    (3, 146, "BioBERT full text", "hier_lan", (88.8, 91.7, 60.4, 66.0, 63.1), (85.2, 97.4, 6.4, 47.0, 65.8, 50.7)),
    (3, 147, "ClinicalBERT disch. sum.", "hier_lan", (88.7, 91.4, 60.6, 65.9, 62.6),
     (82.9, 96.6, 6.2, 45.0, 63.8, 48.7)),
    (3, 148, "ClinicalBERT all notes", "hier_lan", (89.2, 91.6, 59.5, 64.8, 62.0),
     (84.7, 97.4, 6.0, 46.6, 65.1, 49.9)),
    (4, 161, "PubMedBERT abstract", "trun_fcn", (82.4, 85.9, 47.5, 54.8, 54.7), None),
    (4, 162, "PubMedBERT full text", "trun_fcn", (82.1, 84.4, 52.6, 57.3, 55.7), None),
    (4, 163, "BioBERT abstract", "trun_fcn", (80.9, 83.6, 48.9, 54.8, 54.0), None),
    (4, 164, "BioBERT full text", "trun_fcn", (81.8, 84.3, 50.5, 55.4, 54.5), None),
    (4, 165, "ClinicalBERT disch. sum.", "trun_fcn", (81.8, 84.2, 49.7, 55.8, 54.9), None),
    (4, 166, "ClinicalBERT all notes", "trun_fcn", (82.3, 85.3, 50.6, 56.9, 55.7), None),
]
# Table 5 (top-50 only): rows "<encoder>-trun + FCN", "-hier + FCN", "-hier + LAN" on lines 194-214, three per
# encoder in this order. BioBERT and PubMedBERT are the "full text" checkpoints (their Table 5 numbers match those
# rows of Tables 2 and 4), ClinicalBERT the "all notes" one.
_TABLE5 = [
    ("BERT-base", (80.1, 83.0, 46.3, 51.6, 51.1), (85.4, 88.4, 53.1, 59.4, 57.6), (83.7, 86.5, 48.1, 54.2, 53.5)),
    ("BlueBERT", (78.2, 82.1, 23.7, 36.6, 45.9), (89.1, 91.8, 59.9, 65.1, 62.5), (89.4, 92.0, 61.0, 65.6, 62.8)),
    ("BioBERT full text", (81.8, 84.3, 50.5, 55.4, 54.5), (87.3, 89.5, 59.9, 65.6, 62.7),
     (88.8, 91.7, 60.4, 66.0, 63.1)),
    ("BioRedditBERT", (80.7, 83.5, 49.3, 55.5, 53.8), (87.0, 89.4, 59.1, 64.2, 61.9), (87.1, 89.6, 59.4, 64.8, 62.4)),
    ("PubMedBERT full text", (82.1, 84.4, 52.6, 57.3, 55.7), (88.8, 91.4, 57.7, 64.2, 62.2),
     (88.6, 90.8, 63.3, 68.1, 64.4)),
    ("SapBERT full text", (82.3, 84.8, 51.2, 56.8, 55.2), (88.5, 90.3, 63.3, 67.3, 63.8),
     (88.5, 90.8, 62.2, 66.7, 63.1)),
    ("ClinicalBERT all notes", (82.3, 85.3, 50.6, 56.9, 55.7), (87.2, 90.7, 54.6, 62.5, 60.7),
     (89.2, 91.6, 59.5, 64.8, 62.0)),
]
_BERT_ROWS += [(5, 194 + 3 * i + j, enc, arch, vals, None)
               for i, (enc, *rows) in enumerate(_TABLE5)
               for j, (arch, vals) in enumerate(zip(("trun_fcn", "hier_fcn", "hier_lan"), rows))]

BERT_NUMBERS: tuple[PublishedBert, ...] = tuple(
    PublishedBert(table, enc, arch, space, metric, value,
                  f"Ji et al. 2021, Table {table}, row {enc!r} ({ARCHITECTURES[arch]})")
    for table, line, enc, arch, top50, full in _BERT_ROWS
    for space, values in (("50", top50), ("full", full)) if values is not None
    for metric, value in zip(METRICS[space], values, strict=True) if value is not None)


def bert_frame(table: int | None = None) -> pd.DataFrame:
    """The BERT family's published numbers as a tidy table (one table, or all): table, encoder, architecture,
    label_space, metric, value, where."""
    df = pd.DataFrame([n.__dict__ for n in BERT_NUMBERS])
    return df if table is None else df[df["table"] == table].reset_index(drop=True)
