"""The names a parameter file may use for models, baselines, architectures and encoders, and the row names they
get in tables, run folders and ``metrics.json`` keys (:func:`slug`; :mod:`mcanb.published` re-exports them beside
the paper's numbers).

Defined here, in a module that imports nothing, so that the parameter checks (:mod:`mcanb.preflight`) run before
torch, scikit-learn or transformers load (about 2 s of every `mcanb run`); the modules that implement each name
import it from here (:mod:`mcanb.models`, :mod:`mcanb.cnn_study`, :mod:`mcanb.bert_study`).
"""
from __future__ import annotations

MODEL_NAMES: tuple[str, ...] = ("cnn", "caml", "dr_caml", "multirescnn", "laat", "bert_trun", "bert_hier")
PLM_MODELS: tuple[str, ...] = ("bert_trun", "bert_hier")      # read word pieces and load a pretrained encoder
CNN_MODELS: tuple[str, ...] = tuple(m for m in MODEL_NAMES if m not in PLM_MODELS)
BASELINES: tuple[str, ...] = ("most_frequent", "tfidf_lr")   # non-neural reference points (notebook 04)
LOCAL_ENCODERS: tuple[str, ...] = ("general", "in-domain", "in-domain-less", "random", "minilm")

# Row names of mcanb's CNN-family models and baselines in Table 6 ("CNN (retrained)" is the paper's row for the
# settings mcanb's "cnn" uses).
CNN_ROWS = {"cnn": "CNN (retrained)", "caml": "CAML", "dr_caml": "DR-CAML", "multirescnn": "MultiResCNN",
            "laat": "LAAT", "tfidf_lr": "TF-IDF + LR", "most_frequent": "Most frequent codes"}

# -- The BERT family (Ji et al. 2021, Tables 2-5)
# Architectures as named in mcanb: "hier_lan" = BERT-hier + LAN, "hier_fcn" = BERT-hier + FCN, "trun_fcn" = BERT-trun.
# "trun_lan" (BERT-trun + LAN) is in the paper's text (§3.3: both architectures "can integrate" LAN) but in no table.
ARCHITECTURES = {"trun_fcn": "BERT-trun + FCN", "trun_lan": "BERT-trun + LAN", "hier_fcn": "BERT-hier + FCN",
                 "hier_lan": "BERT-hier + LAN"}

# The encoder of each row and the Hugging Face hub id that a user with internet passes as ``encoder``. The paper
# names models, not ids: each id below is the public checkpoint whose own model card describes the corpus the paper
# names for that row (§3.1, §4.2); the card's facts are in mcanb.published.ENCODER_CARDS and docs/encoders.md. "abstract" /
# "full text" is BioBERT v1.0's PubMed 200K abstracts vs + PMC 270K full-text articles, and PubMedBERT's PubMed
# abstracts vs + PubMed Central full text. ClinicalBERT's pair differs in its MIMIC-III corpus (all notes vs
# discharge summaries only).
BERT_ENCODERS = {
    "BERT-base": "bert-base-uncased",
    "BlueBERT": "bionlp/bluebert_pubmed_mimic_uncased_L-12_H-768_A-12",
    "BioBERT abstract": "xinzhi/biobert_v1.0_pubmed",
    "BioBERT full text": "monologg/biobert_v1.0_pubmed_pmc",
    "BioRedditBERT": "cambridgeltl/BioRedditBERT-uncased",
    "PubMedBERT abstract": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract",
    "PubMedBERT full text": "microsoft/BiomedNLP-PubMedBERT-base-uncased-abstract-fulltext",
    "SapBERT full text": "cambridgeltl/SapBERT-from-PubMedBERT-fulltext",
    "ClinicalBERT all notes": "emilyalsentzer/Bio_ClinicalBERT",
    "ClinicalBERT disch. sum.": "emilyalsentzer/Bio_Discharge_Summary_BERT",
}


# The pretraining domain of each encoder (Ji et al. 2021 §3.1, Figure 1).
BERT_DOMAINS = {"BERT-base": "general", "BlueBERT": "mixed", "BioBERT abstract": "mixed",
                "BioBERT full text": "mixed", "BioRedditBERT": "mixed", "PubMedBERT abstract": "mixed",
                "PubMedBERT full text": "mixed", "SapBERT full text": "mixed",
                "ClinicalBERT all notes": "in-domain", "ClinicalBERT disch. sum.": "in-domain"}

# The row labels of mcanb's local stand-ins for the paper's encoders (mcanb.bert_study.local_encoders; their domains:
# mcanb.published.LOCAL_DOMAINS). A local row stands in for the paper's rows of the same domain (mcanb.comparison).
LOCAL_LABELS = {"general": "general (MLM on English docstrings)", "in-domain": "in-domain (MLM on training notes)",
                "in-domain-less": "in-domain, less data (MLM on {pct} % of training notes)",
                "random": "random init (no pretraining)", "minilm": "general (all-MiniLM-L6-v2)"}


def slug(label: str) -> str:
    """A file- and key-safe form of a row label (run folders, metrics.json keys):
    "in-domain (MLM on training notes)" -> "in_domain_mlm_on_training_notes"."""
    keep = "".join(c if c.isalnum() else "_" for c in label.lower())
    return "_".join(p for p in keep.split("_") if p)[:48]
