"""Synthetic MIMIC-III-shaped data: the tables every mcanb pipeline reads, with a planted, measurable signal.

Real MIMIC-III is credentialed and never on our machines, so every notebook and benchmark runs on what
this module writes: ``NOTEEVENTS``, ``DIAGNOSES_ICD``, ``PROCEDURES_ICD``, ``D_ICD_DIAGNOSES`` and
``D_ICD_PROCEDURES`` (gzip CSV, MIMIC-III v1.4 columns and quoting), CAML-format split files and a
``fixture.json`` summary. Nothing here comes from MIMIC: the codes and their descriptions are the public
ICD-9-CM list shipped with CAML (``resources/ICD9_descriptions.gz``), everything else is random.

Command line::

    python -m mcanb.fixture --size toy --out outputs/fixture/toy            # ~1,000 admissions, seconds
    python -m mcanb.fixture --size full --out /data/fixture_full --scale 0.1  # 10 % of MIMIC-III scale

What is planted
---------------
* **Codes.** Each admission gets diagnosis and procedure codes drawn without replacement from a Zipf-like
  popularity ``p(rank) ~ (rank + offset) ** -ZIPF_EXPONENT`` over a fixed code universe: CAML's real
  top-50 codes take the top ranks, the rest are random ICD-9 leaf codes. A few codes are very frequent,
  most are rare (like MIMIC). Codes are written without dots (``4019``, ``V5861``, ``E8889``, ``0117``).
* **Signal.** Each assigned code ``c`` of an admission that has a discharge summary is *signalled* with a
  per-code probability ``p_c ~ Beta`` (mean ``SIGNAL_PROB_MEAN``): one or more sentences of the summary
  then mention it, by its ICD-9 description, a shortened form of it (``heart failure``), or for common
  codes a clinical abbreviation (``CHF``, ``afib``). Mentions sit in the history, past medical history,
  hospital course, procedures and discharge-diagnosis sections (the last one is near the end, so
  truncation to 512 tokens loses part of the signal, as with real notes). Unsignalled codes leave no trace
  in the text.
* **Noise.** Filler text (clinical sentence templates, medication lists, exam and lab lines, see the
  pools below); *distractors*: negated mentions of codes the admission does not have ("No evidence of
  pneumonia.", "Family history of ..."); *uncoded mentions*: positive-sounding mentions of codes that were
  not coded. Codes sharing description words (``428.0``/``428.1``, ``96.71``/``96.72``) confuse models as
  they do in real data.

Ceiling and floor (in ``fixture.json``)
---------------------------------------
* ``oracle``: the rule "predict a code iff its planted signal is in the admission's discharge summaries",
  evaluated with micro P/R/F1 on ``test_full`` (and on ``test_50`` restricted to the top-50 codes). The
  generator knows where it planted, so the oracle's precision is 1 and its recall is the fraction of gold
  codes that were signalled (about ``SIGNAL_PROB_MEAN``). No model reading the text should beat it by
  more than what code frequencies alone give.
* ``oracle_mention``: a negation-blind reader that predicts every code mentioned at all (signal,
  distractor or uncoded mention): what string matching would get.
* ``baseline_most_frequent``: predict the ``k`` most frequent training codes for everyone
  (``k`` = median number of codes per training admission). A model must land between floor and ceiling.

MIMIC quirks reproduced (each counted under ``quirks`` in ``fixture.json``)
--------------------------------------------------------------------------
Multi-line quoted TEXT with commas and double quotes; de-identification brackets; section headers;
doses; a few non-ASCII characters (``°``, ``m²``); discharge summaries as ``Report`` plus ``Addendum``
rows (ROW_ID order: the report usually first, not always; addenda usually far from their report); a few
admissions with two reports; the 15 note categories with MIMIC's spellings (``"Physician "`` etc.);
notes without HADM_ID; ISERROR rows (incl. discharge summaries); admissions without a discharge summary;
admissions with a summary but no code; empty code rows; duplicate (admission, code) rows; V and E codes;
procedure codes with leading zeros, some of which collide with a real code after CAML's int cast
(``0117`` -> ``117`` -> ``11.7``) and some of which become bogus (``0040`` -> ``40.``); a few used codes
missing from ``D_ICD_*`` (CAML then falls back to its description file).

ISERROR rows are kept everywhere (as CAML does): an ISERROR summary still carries its mentions and counts
for the oracle. A pipeline that drops ISERROR rows loses those mentions, and the rare admission whose only
report is an ISERROR row loses its document.

Splits and top-50
-----------------
Only admissions with a discharge summary and at least one non-empty code enter ``splits/``. Patients
(never admissions) are assigned to test / dev / train until the admission counts reach CAML's
proportions (6.4 % / 3.1 % / rest). ``TOP_50_CODES.csv`` holds the 50 most frequent dotted codes over
all admissions with a discharge summary, duplicate (admission, code) rows counted, empty codes ignored,
ties broken by code string; the ``_50`` files keep the admissions with at least one of them.

Sizes (measured on a 2-core laptop-class machine; see ``fixture.json`` for exact counts)
--------------------------------------------------------------------------------------
* ``toy``: 1,000 admissions with a summary (800 patients), ~490 CAML tokens per document, ~400 distinct
  codes, ~3 other notes per admission; about 1 s, under 1 MB of gzip.
* ``full``: MIMIC-III scale: 52,726 admissions with a summary (46,000 patients; 58,976 admissions in all),
  2,083,180 notes (59,652 discharge-summary rows), 3.8 GB of TEXT, ~1,500 CAML tokens per document,
  ~8,900 distinct codes (6,800 diagnosis, 2,000 procedure); about 1 minute, under 1 GB of memory,
  0.6 GB of gzip. ``scale`` multiplies the counts (not the code universe nor the note lengths), e.g.
  0.01 / 0.1 / 1.0 for the benchmark's 1 % / 10 % / 100 % runs; at most ``MAX_SCALE``.

What is not like MIMIC
----------------------
Codes of an admission are drawn independently (no comorbidity structure), so only the text and code
frequencies carry information. Notes other than discharge summaries carry no planted signal. Filler
sentences are drawn from shared pools, so the text repeats more than real notes, and dates inside the
filler do not match the admission. CAML's published ``_50`` split files hold only 11,368 admissions for
reasons its code does not show; here ``_50`` is the plain "has a top-50 code" filter, so it is almost as
large as ``_full``.

Determinism
-----------
Same size, seed, scale and generator version give identical bytes: every random draw comes from
``numpy.random.Generator(PCG64)`` streams derived from the seed (one stream per component, one per
admission for its summaries), gzip is written with ``mtime=0`` and no file name, and no output depends
on dict/set iteration order or time. Large fixtures are streamed in chunks (bounded memory) and compressed
by a writer thread at gzip level 1.
"""
from __future__ import annotations

import argparse
import bisect
import gzip
import hashlib
import json
import math
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from mcanb.paths import RESOURCES

GENERATOR_VERSION = "2"

# ---------------------------------------------------------------------------------------------------
# Named parameters of the planted signal (recorded in fixture.json)
# ---------------------------------------------------------------------------------------------------
SIGNAL_PROB_MEAN = 0.75          # mean probability that an assigned code is mentioned in its summary
SIGNAL_PROB_CONCENTRATION = 8.0  # per-code p_c ~ Beta(mean * c, (1 - mean) * c)
ABBREVIATION_PROB = 0.35         # a mention of a code with a known abbreviation uses it
DX_SECTION_PROBS = (("hpi", 0.35), ("pmh", 0.25), ("course", 0.45), ("dxlist", 0.6))
PX_SECTION_PROBS = (("proc", 0.6), ("course", 0.5))
CHIEF_COMPLAINT_PROB = 0.5       # the first (primary) diagnosis, when signalled, is the chief complaint
EXTRA_DOC_MENTION_PROB = 0.2     # a mention goes to an addendum / second report instead of the report
DISTRACTOR_MEAN = 2.5            # negated mentions of codes the admission does not have, per summary
DISTRACTOR_POPULARITY_POWER = 0.8  # distractors / uncoded mentions drawn with p(code) ** power (flatter)
DISTRACTOR_PX_FRACTION = 0.15    # share of distractors that are procedures
UNCODED_MENTION_MEAN = 0.4       # positive-sounding mentions of codes that were not coded, per summary
ZIPF_EXPONENT = 1.6              # code popularity p(rank) ~ (rank + offset) ** -exponent
ZIPF_OFFSET_DX = 14.0
ZIPF_OFFSET_PX = 6.0
DS_LENGTH_SIGMA = 0.45           # log-normal spread of summary length
OTHER_LENGTH_SIGMA = 0.6         # log-normal spread of other notes' length
NON_ASCII_KEEP = 0.03            # share of "°" / "m²" pool sentences kept non-ASCII (the rest: "F", "m2")

# MIMIC-III v1.4 column order
NOTE_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
                "DESCRIPTION", "CGID", "ISERROR", "TEXT")
CODE_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE")
DICT_COLUMNS = ("ROW_ID", "ICD9_CODE", "SHORT_TITLE", "LONG_TITLE")
TABLE_FILES = ("NOTEEVENTS.csv.gz", "DIAGNOSES_ICD.csv.gz", "PROCEDURES_ICD.csv.gz",
               "D_ICD_DIAGNOSES.csv.gz", "D_ICD_PROCEDURES.csv.gz")
SPLIT_FILES = tuple(f"splits/{s}_{v}_hadm_ids.csv" for v in ("full", "50") for s in ("train", "dev", "test"))
TOP50_FILE = "splits/TOP_50_CODES.csv"
SUMMARY_FILE = "fixture.json"
MAX_SCALE = 1.5  # HADM_IDs stay 6-digit (100000-199999) like MIMIC's
SPLIT_FRACTIONS = (("test", 0.064), ("dev", 0.031))  # CAML: 3,372 and 1,631 of 52,726; train takes the rest
# toy: CAML's proportions would leave ~30 dev and ~60 test admissions, too few for stable metrics and early
# stopping, so the toy fixture holds out 15 % + 15 % instead.
TOY_SPLIT_FRACTIONS = (("test", 0.15), ("dev", 0.15))
DS_CATEGORY = "Discharge summary"


@dataclass(frozen=True)
class SizeSpec:
    """Counts and lengths of one fixture size (``scale`` multiplies the counts, not the lengths)."""

    admissions_with_ds: int       # admissions with a discharge summary (CAML: 52,726)
    admissions_without_ds: int    # admissions with codes but no summary
    ds_patients: int              # patients of the admissions with a summary
    extra_ds_rows: int            # addenda + second reports (MIMIC: 59,652 - 52,726)
    other_notes: int              # notes of the 14 other categories
    dx_universe: int              # diagnosis codes that can be drawn
    px_universe: int              # procedure codes that can be drawn
    dx_mean: float                # diagnosis codes per admission
    px_mean: float                # procedure codes per admission (those with any)
    px_zero_fraction: float       # admissions without a procedure
    ds_length: float              # 1.0 = about 1,500 CAML tokens per summary
    other_length: float           # multiplies the MIMIC-like mean length of other notes
    pool_sentences: int           # sentences per filler pool
    compresslevel: int
    forced_lz_collisions: int     # leading-zero procedure codes whose int cast hits a used code
    forced_lz_bogus: int          # leading-zero procedure codes whose int cast is no ICD-9 code


SIZES: dict[str, SizeSpec] = {
    "toy": SizeSpec(1000, 100, 800, 131, 3300, 300, 100, 7.0, 3.0, 0.2, 0.27, 0.25, 1500, 6, 3, 3),
    "full": SizeSpec(52726, 6250, 46000, 6926, 2023528, 7400, 2100, 11.0, 4.8, 0.17, 1.4, 1.0, 30000, 1,
                     12, 10),
}

# Quirk rates (per row / admission) and the minimum planted at any size, so small fixtures have them all.
RATES = {
    "iserror_note": (0.0004, 3), "iserror_ds": (0.0004, 2), "two_reports": (0.0015, 1),
    "ds_no_code": (0.0001, 2), "empty_code_extra": (0.0008, 2), "dup_dx": (0.003, 2),
    "dup_px": (0.02, 2), "missing_from_dict": (0.003, 2), "addendum_first": (0.12, 1),
}

# Other note categories: MIMIC-III v1.4 name (with its trailing spaces), row count, mean TEXT characters,
# share without HADM_ID, DESCRIPTION values, whether CGID is set, time columns, text family.
CATEGORIES: tuple[tuple, ...] = (
    ("Nursing/other", 822497, 950, 0.0, ("Report",), True, "both", "nursing"),
    ("Radiology", 522279, 1350, 0.25, ("CHEST (PORTABLE AP)", "CHEST (PA & LAT)", "CT HEAD W/O CONTRAST",
     "CTA CHEST W&W/O C&RECONS, NON-CORONARY", "RENAL U.S.", "BILAT LOWER EXT VEINS",
     "CT ABD & PELVIS WITH CONTRAST", "MR HEAD W & W/O CONTRAST"), False, "chart", "radiology"),
    ("Nursing", 223556, 2300, 0.0, ("Nursing Progress Note", "Nursing Transfer Note", "Generic Note"),
     True, "both", "nursing"),
    ("ECG", 209051, 230, 0.35, ("Report",), False, "date", "ecg"),
    ("Physician ", 141624, 5400, 0.0, ("Physician Resident Progress Note", "Physician Attending Progress Note",
     "Intensivist Note", "Physician Resident Admission Note"), True, "both", "physician"),
    ("Echo", 45794, 2300, 0.1, ("Report",), False, "date", "echo"),
    ("Respiratory ", 31739, 1300, 0.0, ("Respiratory Care Shift Note", "Respiratory Therapy"), True, "both",
     "nursing"),
    ("Nutrition", 9418, 2800, 0.0, ("Nutrition", "Nutrition Follow-up"), True, "both", "allied"),
    ("General", 8301, 1900, 0.0, ("Generic Note", "ICU Event Note"), True, "both", "allied"),
    ("Rehab Services", 5431, 3200, 0.0, ("Physical Therapy Evaluation", "Occupational Therapy Progress Note"),
     True, "both", "allied"),
    ("Social Work", 2670, 2300, 0.0, ("Social Work Admission Note", "Social Work Progress Note"), True,
     "both", "allied"),
    ("Case Management ", 967, 1600, 0.0, ("Case Management Discharge Planning Note",), True, "both", "allied"),
    ("Pharmacy", 103, 3000, 0.0, ("Pharmacy Note",), True, "both", "allied"),
    ("Consult", 98, 6500, 0.0, ("Physician Consult Note",), True, "both", "physician"),
)

# Common clinical names of the frequent (CAML top-50) codes, used instead of the ICD-9 wording.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    "401.9": ("hypertension", "HTN"), "428.0": ("CHF", "congestive heart failure"),
    "427.31": ("atrial fibrillation", "afib"), "414.01": ("CAD", "coronary artery disease"),
    "584.9": ("acute kidney injury", "ARF"), "250.00": ("type 2 diabetes", "DM2", "NIDDM"),
    "272.4": ("hyperlipidemia", "HLD"), "518.81": ("acute respiratory failure", "hypoxic respiratory failure"),
    "599.0": ("UTI", "urinary tract infection"), "530.81": ("GERD", "reflux"), "285.9": ("anemia",),
    "244.9": ("hypothyroidism",), "486": ("pneumonia", "PNA"), "285.1": ("acute blood loss anemia",),
    "276.2": ("metabolic acidosis",), "496": ("COPD",), "995.92": ("severe sepsis",),
    "507.0": ("aspiration pneumonia",), "038.9": ("sepsis", "bacteremia"), "585.9": ("CKD",),
    "403.90": ("hypertensive kidney disease",), "311": ("depression",), "305.1": ("tobacco abuse", "smoker"),
    "412": ("old MI", "remote myocardial infarction"), "287.5": ("thrombocytopenia",), "410.71": ("NSTEMI",),
    "276.1": ("hyponatremia",), "V45.81": ("s/p CABG",), "424.0": ("mitral regurgitation",),
    "V15.82": ("former smoker",), "511.9": ("pleural effusion",), "V58.61": ("chronic anticoagulation",),
    "272.0": ("hypercholesterolemia",), "38.93": ("central line placement", "right IJ central line"),
    "96.04": ("intubation", "endotracheal intubation"), "96.6": ("tube feeds", "enteral nutrition"),
    "96.71": ("mechanical ventilation",), "96.72": ("prolonged mechanical ventilation",),
    "99.04": ("PRBC transfusion", "transfusion of packed red blood cells"), "39.61": ("cardiopulmonary bypass",),
    "88.56": ("coronary angiography",), "36.15": ("CABG", "LIMA to LAD"), "99.15": ("TPN",),
    "88.72": ("transthoracic echocardiogram", "TTE"), "37.22": ("left heart catheterization",),
    "37.23": ("right and left heart catheterization",), "33.24": ("bronchoscopy",), "39.95": ("hemodialysis",),
    "45.13": ("EGD",), "38.91": ("arterial line placement", "A-line"),
}

_STOPWORDS = frozenset(
    "of the and or with without in on to for by as at a an other unspecified specified not elsewhere "
    "classified nos mention site type part any due from into than under which is are stated initial "
    "episode care encounter subsequent nec use its their this that".split())


# ---------------------------------------------------------------------------------------------------
# Randomness: numpy streams, and a fast scalar "dice" over pre-drawn uniforms
# ---------------------------------------------------------------------------------------------------
def _stream(seed: int, *key: int) -> np.random.Generator:
    """An independent PCG64 generator for one component (``key``) of the fixture."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, *key])))


class Dice:
    """Scalar random choices in pure Python, fed by blocks of uniforms from a numpy Generator.

    Example: ``d = Dice(_stream(0, 1)); d.below(6)`` -> an int in ``[0, 6)``.
    """

    __slots__ = ("_rng", "_buf", "_block")

    def __init__(self, rng: np.random.Generator, block: int = 4096) -> None:
        self._rng, self._block, self._buf = rng, block, []

    def u(self) -> float:
        if not self._buf:
            self._buf = self._rng.random(self._block).tolist()
        return self._buf.pop()

    def below(self, n: int) -> int:
        return int(self.u() * n)

    def pick(self, seq: Sequence):
        return seq[int(self.u() * len(seq))]

    def chance(self, p: float) -> bool:
        return self.u() < p

    def poisson(self, lam: float) -> int:
        limit, k, p = math.exp(-lam), 0, self.u()
        while p > limit:
            k += 1
            p *= self.u()
        return k


# ---------------------------------------------------------------------------------------------------
# Filler text: slots and sentence templates
# ---------------------------------------------------------------------------------------------------
_DRUGS = (
    ("Metoprolol Tartrate", "25 mg", "Tablet", "PO", "BID"), ("Furosemide", "40 mg", "Tablet", "PO", "DAILY"),
    ("Aspirin", "81 mg", "Tablet, Chewable", "PO", "DAILY"), ("Lisinopril", "10 mg", "Tablet", "PO", "DAILY"),
    ("Atorvastatin", "80 mg", "Tablet", "PO", "DAILY"), ("Warfarin", "5 mg", "Tablet", "PO", "Once Daily at 4 PM"),
    ("Heparin", "5000 units", "Injection", "SC", "TID"), ("Insulin Glargine", "20 units", "Injection", "SC", "QHS"),
    ("Pantoprazole", "40 mg", "Tablet, Delayed Release (E.C.)", "PO", "Q24H"),
    ("Vancomycin", "1 g", "Recon Soln", "IV", "Q12H"), ("Levofloxacin", "750 mg", "Tablet", "PO", "Q24H"),
    ("Acetaminophen", "650 mg", "Tablet", "PO", "Q6H PRN"), ("Oxycodone", "5 mg", "Tablet", "PO", "Q4H PRN"),
    ("Docusate Sodium", "100 mg", "Capsule", "PO", "BID"), ("Senna", "8.6 mg", "Tablet", "PO", "BID PRN"),
    ("Amlodipine", "5 mg", "Tablet", "PO", "DAILY"), ("Levothyroxine", "50 mcg", "Tablet", "PO", "DAILY"),
    ("Prednisone", "40 mg", "Tablet", "PO", "DAILY"), ("Albuterol", "90 mcg", "HFA Aerosol Inhaler", "INH", "Q6H PRN"),
    ("Tiotropium Bromide", "18 mcg", "Capsule, w/Inhalation Device", "INH", "DAILY"),
    ("Clopidogrel", "75 mg", "Tablet", "PO", "DAILY"), ("Simvastatin", "40 mg", "Tablet", "PO", "DAILY"),
    ("Metformin", "500 mg", "Tablet", "PO", "BID"), ("Gabapentin", "300 mg", "Capsule", "PO", "TID"),
    ("Sertraline", "50 mg", "Tablet", "PO", "DAILY"), ("Quetiapine", "25 mg", "Tablet", "PO", "QHS PRN"),
    ("Lorazepam", "0.5 mg", "Tablet", "PO", "Q4H PRN"), ("Ceftriaxone", "1 g", "Recon Soln", "IV", "Q24H"),
    ("Metronidazole", "500 mg", "Tablet", "PO", "TID"), ("Lactulose", "30 mL", "Syrup", "PO", "TID"),
    ("Rifaximin", "550 mg", "Tablet", "PO", "BID"), ("Diltiazem HCl", "30 mg", "Tablet", "PO", "QID"),
    ("Digoxin", "0.125 mg", "Tablet", "PO", "DAILY"), ("Spironolactone", "25 mg", "Tablet", "PO", "DAILY"),
    ("Carvedilol", "6.25 mg", "Tablet", "PO", "BID"), ("Enoxaparin", "40 mg", "Syringe", "SC", "DAILY"),
    ("Magnesium Oxide", "400 mg", "Tablet", "PO", "BID"), ("Potassium Chloride", "20 mEq", "Tab ER", "PO", "DAILY"),
    ("Folic Acid", "1 mg", "Tablet", "PO", "DAILY"), ("Thiamine HCl", "100 mg", "Tablet", "PO", "DAILY"),
    ("Multivitamin", "1", "Tablet", "PO", "DAILY"), ("Nicotine", "21 mg/24 hr", "Patch 24 hr", "TD", "DAILY"),
    ("Tamsulosin", "0.4 mg", "Capsule, Ext Release 24 hr", "PO", "QHS"),
    ("Hydralazine", "25 mg", "Tablet", "PO", "Q6H"), ("Isosorbide Mononitrate", "30 mg", "Tablet Extended Release",
     "PO", "DAILY"), ("Ondansetron", "4 mg", "Tablet, Rapid Dissolve", "PO", "Q8H PRN"),
    ("Famotidine", "20 mg", "Tablet", "PO", "BID"), ("Fluticasone", "110 mcg", "Aerosol", "INH", "BID"),
    ("Haloperidol", "0.5 mg", "Tablet", "PO", "BID PRN"), ("Polyethylene Glycol 3350", "17 gram", "Powder in Packet",
     "PO", "DAILY"), ("Bisacodyl", "10 mg", "Suppository", "PR", "DAILY PRN"),
)
_FREQ_WORDS = {"BID": "2 times a day", "TID": "3 times a day", "QID": "4 times a day", "DAILY": "once a day",
               "QHS": "at bedtime", "Q24H": "every 24 hours", "Q12H": "every 12 hours", "Q6H": "every 6 hours",
               "Q8H": "every 8 hours", "Q4H": "every 4 hours"}
_SERVICES = ("MEDICINE", "SURGERY", "CARDIOTHORACIC", "NEUROLOGY", "NEUROSURGERY", "ORTHOPAEDICS", "CSURG",
             "TRAUMA SURGERY", "VASCULAR SURGERY", "OBSTETRICS/GYNECOLOGY")
_CONSULTS = ("cardiology", "renal", "infectious disease", "gastroenterology", "hepatology", "neurology",
             "physical therapy", "social work", "nutrition", "palliative care", "psychiatry", "endocrinology",
             "hematology/oncology", "the pulmonary team", "thoracic surgery", "urology", "wound care",
             "speech and swallow", "the ACS team")
_TESTS = ("chest x-ray", "CT of the head", "CT of the abdomen and pelvis", "renal ultrasound", "MRI of the spine",
          "lower extremity dopplers", "CTA of the chest", "right upper quadrant ultrasound", "EEG", "KUB",
          "CT of the chest", "MRI of the brain", "carotid ultrasound", "video swallow study")
_FINDINGS = ("no acute intracranial process", "bibasilar atelectasis", "small bilateral effusions",
             "mild cardiomegaly", "moderate interstitial edema", "no evidence of pneumothorax",
             "a left lower lobe opacity", "an EF of {ef}%", "mild mitral regurgitation", "no DVT",
             "cholelithiasis without evidence of cholecystitis", "diffuse colonic wall thickening",
             "a {small} mm nonobstructing stone", "stable postoperative changes", "no acute fracture",
             "a {small} mm pulmonary nodule", "hyperdense material in the stomach", "trace ascites")
_LABS = ("WBC", "Hct", "Hgb", "platelets", "creatinine", "BUN", "sodium", "potassium", "bicarbonate",
         "lactate", "troponin", "INR", "glucose", "ALT", "AST", "total bilirubin", "lipase", "albumin")
_PLANS = ("continue the current regimen", "outpatient follow up", "repeat imaging in six weeks",
          "serial abdominal exams", "gentle diuresis", "uptitration of the beta blocker",
          "a course of antibiotics", "a physical therapy evaluation", "holding anticoagulation",
          "a low sodium diet", "an outpatient sleep study", "pulmonary rehabilitation",
          "aggressive pulmonary toilet", "bowel regimen", "early mobilization", "fluid restriction")
_SYMPTOMS = ("shortness of breath", "chest pain", "fever", "altered mental status", "abdominal pain",
             "nausea and vomiting", "weakness", "syncope", "a fall", "cough", "leg swelling", "melena",
             "dizziness", "headache", "back pain", "dyspnea on exertion", "palpitations", "confusion",
             "fatigue", "decreased urine output", "hematuria", "chills")
_DIETS = ("regular", "cardiac", "diabetic", "clear liquid", "full liquid", "heart healthy", "renal",
          "soft solid", "pureed", "ground solids with thin liquids")
_QUOTES = ("I feel much better", "I just want to go home", "my chest feels tight", "I can't catch my breath",
           "it hurts when I breathe", "I have not been eating", "I'm tired", "the pills make me dizzy")
_RELATIVES = ("her mother", "his father", "a brother", "a sister", "his mother", "her father", "a maternal aunt")
_GENERIC_PMH = ("s/p cholecystectomy", "remote tonsillectomy", "seasonal allergies", "cataracts",
                "s/p appendectomy", "osteoarthritis of the knees", "chronic low back pain", "s/p hysterectomy",
                "glaucoma", "s/p right knee replacement", "hearing loss", "restless legs")
_DEID = ("[**Hospital1 {n}**]", "[**Known lastname {n}**]", "[**First Name8 (NamePattern2) {n}**]",
         "[**Last Name (NamePattern1) {n}**]", "[**Location (un) {n}**]", "[**Hospital Ward Name {n}**]",
         "[**Name (NI) {n}**]", "[**Doctor Last Name {n}**]", "[**Hospital {n}**]", "[**Doctor First Name {n}**]")
_DISPOSITIONS = ("Home", "Home With Service", "Extended Care", "Home with Service\nFacility:\n[**Company {n}**]",
                 "Extended Care\nFacility:\n[**Hospital {n}**] Rehab")
_CONDITIONS = ("Mental Status: Clear and coherent.\nLevel of Consciousness: Alert and interactive.\n"
               "Activity Status: Ambulatory - Independent.", "Good", "Stable", "Fair, hemodynamically stable.",
               "Mental Status: Confused - sometimes.\nLevel of Consciousness: Lethargic but arousable.\n"
               "Activity Status: Out of Bed with assistance to chair or wheelchair.")
_ALLERGIES = ("Patient recorded as having No Known Allergies to Drugs", "Penicillins",
              "Sulfa (Sulfonamide Antibiotics)",
              "Codeine / Morphine", "Iodine; Iodine Containing", "Lisinopril")


def _int(lo: int, hi: int) -> Callable[[Dice], str]:
    return lambda d: str(lo + d.below(hi - lo + 1))


def _dec(lo: float, hi: float, nd: int = 1) -> Callable[[Dice], str]:
    return lambda d: f"{lo + d.u() * (hi - lo):.{nd}f}"


def _choice(options: Sequence[str]) -> Callable[[Dice], str]:
    return lambda d: d.pick(options)


def _deid_date(d: Dice) -> str:
    return f"[**{2100 + d.below(100)}-{1 + d.below(12)}-{1 + d.below(28)}**]"


def _med_line(d: Dice) -> str:
    name, dose, form, route, freq = d.pick(_DRUGS)
    words = _FREQ_WORDS.get(freq.split()[0], "as directed")
    return f"{name} {dose} {form} Sig: One (1) {form.split(',')[0]} {route} {freq} ({words})."


SLOTS: dict[str, Callable[[Dice], str]] = {
    "drug": lambda d: d.pick(_DRUGS)[0].lower(), "dose": lambda d: d.pick(_DRUGS)[1],
    "drugdose": lambda d: "{} {} {} {}".format(*(lambda x: (x[0].lower(), x[1], x[3], x[4]))(d.pick(_DRUGS))),
    "service": _choice(_CONSULTS), "test": _choice(_TESTS), "finding": _choice(_FINDINGS),
    "lab": _choice(_LABS), "plan": _choice(_PLANS), "symptom": _choice(_SYMPTOMS), "diet": _choice(_DIETS),
    "quote": _choice(_QUOTES), "relative": _choice(_RELATIVES), "date": _deid_date,
    "deid": lambda d: d.pick(_DEID).replace("{n}", str(1 + d.below(9999))),
    "n": _int(1, 9999), "small": _int(2, 9), "days": _int(2, 14), "ef": _int(20, 70), "age": _int(24, 89),
    "num": _dec(0.4, 12.0), "num2": _dec(0.4, 12.0), "hr": _int(52, 128), "sbp": _int(88, 182),
    "dbp": _int(44, 98), "rr": _int(12, 32), "o2": _int(88, 100), "tf": _dec(96.8, 102.4), "tc": _dec(36.1, 39.1),
    "wbc": _dec(2.1, 24.9), "hct": _dec(21.0, 44.9), "plt": _int(45, 480), "na": _int(124, 148),
    "k": _dec(2.9, 5.9), "cr": _dec(0.5, 6.5), "bun": _int(6, 98), "glc": _int(62, 412), "inr": _dec(0.9, 4.2),
    "bsa": _dec(1.45, 2.45, 2), "hh": _int(1, 12), "mm": _int(10, 59), "ampm": _choice(("AM", "PM")),
    "ox": _choice(("RA", "2L NC", "4L NC", "40% FiO2", "a non-rebreather", "room air")),
    "sex": _choice(("man", "woman", "gentleman", "female", "male")),
}

# Sentence templates per pool. ``{slot}`` refers to SLOTS; each sentence gets " ", "\n" or "\n\n" after it.
POOLS: dict[str, tuple[str, ...]] = {
    "hpi": (
        "The patient is a {age} year old {sex} who presented to the ED with {symptom}.",
        "Per report, symptoms began {days} days prior to admission and progressively worsened.",
        "In the ED, initial vitals were T {tf} HR {hr} BP {sbp}/{dbp} RR {rr} O2 sat {o2}% on {ox}.",
        "She was given {drugdose} and {drug} in the ED.", "He was transferred from {deid} for further management.",
        "Labs were notable for {lab} of {num} and {lab} of {num2}.", "{Test} showed {finding}.",
        "Of note, the patient was recently discharged on {date} after a similar presentation.",
        "The patient states \"{quote}\".", "Review of systems is otherwise negative in detail.",
        "Family reports that the patient has been more {symptom2} over the past week.",
        "He was seen by his PCP Dr. {deid} on {date}, who noted {finding}.",
        "Denies recent travel, sick contacts, or changes in medications.",
        "EMS found the patient at home with {symptom}; fingerstick glucose was {glc}.",
        "At baseline the patient lives alone, ambulates with a walker and manages his own medications.",
        "She reports poor PO intake, about one meal a day, for the last {days} days.",
        "Initial ECG showed sinus tachycardia at {hr} without acute ST changes.",
    ),
    "course": (
        "The patient was started on {drugdose}.",
        "{Lab} was {num} on admission and trended to {num2} prior to discharge.",
        "She was evaluated by {service}, who recommended {plan}.", "He was seen by {service} and the plan was {plan}.",
        "Blood pressure was {sbp}/{dbp}, heart rate {hr}, oxygen saturation {o2}% on {ox}.",
        "{Test} on {date} showed {finding}.", "Home {drug} was held and restarted prior to discharge.",
        "Family was updated at the bedside, and the plan was discussed with {deid}.",
        "Tolerating a {diet} diet, ambulating with assistance.", "Pain was controlled with {drugdose} as needed.",
        "The patient remained hemodynamically stable throughout the admission.",
        "Electrolytes were repleted as needed; K {k}, Mg 1.{small}.", "Antibiotics were narrowed to {drug}.",
        "Blood cultures from {date} remained negative at the time of discharge.",
        "Cr peaked at {cr} and returned to baseline with IV fluids.",
        "She was transferred to the floor on hospital day {small}.", "He was called out of the ICU on {date}.",
        "Code status: full code, confirmed with the patient and health care proxy.",
        "Physical therapy recommended discharge to rehab; the patient agreed with this plan.",
        "He was diuresed with IV {drug}, net negative {num} liters for the admission.",
        "The patient was kept NPO overnight and advanced to a {diet} diet as tolerated.",
        "INR was {inr} on discharge; dose adjusted, to be followed by the anticoagulation clinic.",
        "Repeat {lab} on {date} was {num}.", "Glucose was managed with an insulin sliding scale (range {glc}).",
        "Her mental status improved back to baseline after treatment, per her daughter.",
        "Transitional issues: follow up pending labs, repeat {test} in {days} weeks, titrate {drug}.",
    ),
    "exam": (
        "Vitals: T {tf} HR {hr} BP {sbp}/{dbp} RR {rr} O2 sat {o2}% {ox}",
        "Vitals: Tmax {tf}°F, HR {hr}, BP {sbp}/{dbp}, RR {rr}, SpO2 {o2}%",
        "General: NAD, alert and oriented x3, pleasant, comfortable",
        "HEENT: NC/AT, PERRL, EOMI, MMM, oropharynx clear",
        "Neck: supple, JVP not elevated, no LAD", "Lungs: CTAB, no wheezes, rales, or rhonchi",
        "Lungs: bibasilar crackles, decreased breath sounds at the right base", "CV: RRR, normal S1 + S2, no murmurs",
        "CV: irregularly irregular, II/VI systolic murmur at the apex", "Abdomen: soft, NT/ND, +BS, no organomegaly",
        "Ext: warm, well perfused, 2+ pulses, no clubbing, cyanosis or edema", "Ext: 2+ pitting edema to the knees",
        "Neuro: CN II-XII intact, strength 5/5 throughout, gait deferred", "Skin: no rashes, stage II sacral decubitus",
        "GU: foley in place draining clear yellow urine",
    ),
    "results": (
        "{date} 05:{mm}AM BLOOD WBC-{wbc} RBC-3.{small}* Hgb-{num}* Hct-{hct}* MCV-{plt} Plt Ct-{plt}",
        "{date} 05:{mm}AM BLOOD Glucose-{glc}* UreaN-{bun}* Creat-{cr}* Na-{na} K-{k} Cl-10{small} HCO3-2{small}",
        "{date} 06:{mm}AM BLOOD PT-1{small}.{small}* PTT-3{small}.{small} INR(PT)-{inr}*",
        "{date} 04:{mm}PM BLOOD ALT-{bun} AST-{bun} AlkPhos-{plt} TotBili-0.{small}",
        "{date} 05:{mm}AM BLOOD cTropnT-0.0{small}* CK-MB-{small}",
        "{date} 11:{mm}PM URINE Color-Straw Appear-Clear Sp",
        "{date} 02:{mm}PM BLOOD Lactate-{k}", "Echo {date}: LVEF {ef}%, BSA {bsa} m², mild LVH.",
        "CXR {date}: {finding}.", "{Test} {date}: {finding}.", "Micro: urine culture {date} no growth.",
    ),
    "instructions": (
        "You were admitted to the hospital because of {symptom}.", "Please take all of your medications as prescribed.",
        "We made the following changes to your medications: STARTED {drugdose}; STOPPED {drug}.",
        "Please call your doctor or return to the emergency room if you develop {symptom} or {symptom2}.",
        "Weigh yourself every morning, call MD if weight goes up more than 3 lbs.",
        "Please follow up with your primary care physician within one week of discharge.",
        "It was a pleasure taking care of you at {deid}.", "Do not drive while taking {drug}.",
        "Adhere to a 2 gm sodium diet and limit fluids to 1.5 liters a day.",
        "You may shower, but do not take a bath or swim until cleared by your surgeon.",
    ),
    "social": (
        "Lives with her husband in {deid}.", "Retired {job}, lives alone, independent of ADLs.",
        "Tobacco: denies. EtOH: occasional. Illicits: denies.",
        "Former smoker, quit 20 years ago; 40 pack-year history.",
        "Drinks 2-3 beers a day, no history of withdrawal.", "Lives with son; uses a cane at baseline.",
    ),
    "family": (
        "Noncontributory.", "Mother with breast cancer, father died of MI at age {age}.",
        "No family history of sudden cardiac death.", "Family history is otherwise unremarkable.",
    ),
    "nursing": (
        "Neuro: A&Ox3, MAE, follows commands, PERRL.", "CV: NSR {hr}s, no ectopy, SBP {sbp}-{sbp2}.",
        "Resp: LS clear, diminished at bases, on {ox}, sats {o2}%.", "GI: abd soft, +BS, tolerating {diet} diet.",
        "GU: foley draining adequate amounts of clear yellow urine.", "ID: Tmax {tf}, on {drug}.",
        "Skin: intact, turned and repositioned q2h.", "Social: family in to visit, updated by RN.",
        "Plan: continue to monitor, titrate {drug} per protocol.",
        "Pt c/o {symptom}, medicated with {drugdose} with relief.",
        "Vent settings: AC 500 x 14, PEEP 5, FiO2 40%, RSBI {plt}.", "Pt states \"{quote}\".",
        "Lytes repleted per sliding scale.", "Received 1 unit PRBC for Hct {hct}.",
        "Dr. {deid} aware of BP {sbp}/{dbp}.",
        "Respiratory Care: pt received albuterol/atrovent nebs q4h; BS coarse, suctioned for small amounts thick tan.",
    ),
    "radiology": (
        "FINDINGS: {Finding}.", "IMPRESSION: {Finding}.", "Comparison is made to the prior study from {date}.",
        "There is {finding}.", "The cardiac and mediastinal contours are stable.",
        "No focal consolidation, pleural effusion or pneumothorax is identified.",
        "ET tube terminates {small} cm above the carina.", "Left subclavian line tip is in the mid SVC.",
        "The osseous structures are unremarkable.", "Limited study due to patient motion.",
        "Findings were discussed with Dr. {deid} at {hh}:{mm} {ampm} on {date}.",
        "REASON FOR THIS EXAMINATION: eval for {symptom}.", "The visualized bowel loops are non-dilated.",
    ),
    "ecg": (
        "Sinus rhythm.", "Sinus tachycardia.", "Atrial fibrillation with rapid ventricular response.",
        "Left axis deviation.", "Normal ECG.", "Since the previous tracing of {date} no significant change.",
        "Nonspecific ST-T wave changes.", "Left ventricular hypertrophy.", "Borderline first degree A-V delay.",
        "Low QRS voltages in the limb leads.", "Right bundle-branch block.",
    ),
    "echo": (
        "The left atrium is mildly dilated.", "Left ventricular wall thickness, cavity size and systolic function are "
        "normal (LVEF >{ef}%).", "Right ventricular chamber size and free wall motion are normal.",
        "The aortic valve leaflets (3) are mildly thickened.", "Mild (1+) mitral regurgitation is seen.",
        "There is no pericardial effusion.", "BSA: {bsa} m²", "Compared with the prior study (images reviewed) of "
        "{date}, no change.", "Suboptimal image quality - poor echo windows.", "IMPRESSION: {Finding}.",
    ),
    "physician": (
        "24 Hour Events: {Test} done, showed {finding}.", "Tmax: {tc}°C ({tf}°F)",
        "HR: {hr} (5{small} - 1{small}{small}) bpm",
        "BP: {sbp}/{dbp} mmHg", "Assessment and Plan: {age} yo with {symptom}.", "Plan: {plan}; continue {drugdose}.",
        "ICU Care: Nutrition: {diet}. Glycemic Control: insulin sliding scale. Lines: PICC.",
        "Prophylaxis: DVT: SQ UF heparin; Stress ulcer: PPI; VAP: HOB elevation.",
        "Labs / Radiology: WBC {wbc}, Hct {hct}, Plt {plt}, Cr {cr}, Glucose {glc}.",
        "I saw and examined the patient with the resident and agree with the findings and plan.",
        "Code status: Full code. Disposition: ICU.", "Patient is critically ill. Total time spent: {days}0 minutes.",
    ),
    "allied": (
        "Pt seen for initial evaluation, chart reviewed.", "Goals: pt will ambulate 150 ft with a rolling walker.",
        "Recommend {diet} diet with supplements TID.", "Estimated needs: 1{small}00-1{small}00 kcal/day.",
        "Met with the patient and family to discuss discharge planning.", "Plan: continue to follow, {plan}.",
        "Pt tolerated session well, no adverse events.", "Medication reconciliation completed; {drugdose} verified.",
        "Pt states \"{quote}\".", "Contact: {deid}.",
    ),
}
_EXTRA_SLOTS: dict[str, Callable[[Dice], str]] = {
    "symptom2": _choice(_SYMPTOMS), "sbp2": _int(120, 190),
    "job": _choice(("teacher", "mechanic", "nurse", "engineer", "bus driver", "accountant", "carpenter")),
}
SLOTS.update(_EXTRA_SLOTS)

# Mention templates: {x} is the code phrase; {X} the same with a capital first letter.
POSITIVE_DX = ("Patient with a history of {x}.", "Found to have {x}.", "Course was complicated by {x}.",
               "{X} was managed with {drug}.", "{X}, stable during this admission.", "Treated for {x} this admission.",
               "Admitted with {x}.", "\n# {X}: ", "Diagnosed with {x} on {date}.", "{X} - continue home regimen.",
               "Known {x}, followed by {service}.")
POSITIVE_PX = ("Underwent {x} on {date}.", "{X} was performed without complication.", "Status post {x}.",
               "The patient was taken for {x}.", "{X} on hospital day {small}.")
NEGATIVE_DX = ("No evidence of {x}.", "{X} was ruled out.", "Denies any history of {x}.", "Negative for {x}.",
               "There was initial concern for {x}, which was subsequently ruled out.", "Low suspicion for {x}.",
               "{X} was considered but felt to be unlikely.", "No {x}.")
NEGATIVE_PX = ("{X} was considered but deferred.", "No {x} was performed during this admission.",
               "Family declined {x}.")
FAMILY_DX = ("Family history of {x} in {relative}.", "{Relative} with {x}.")

_SLOT_RE = re.compile(r"\{(\w+)\}")


def _compile(template: str) -> tuple[str, ...]:
    """``"a {b} c"`` -> ``("a ", "b", " c")``: literal / slot name alternate."""
    return tuple(_SLOT_RE.split(template))


def _fill(parts: tuple[str, ...], d: Dice, x: str = "") -> str:
    """Fill a compiled template; ``{x}``/``{X}`` take ``x``, a capitalised slot name capitalises its value."""
    out = list(parts)
    for i in range(1, len(out), 2):
        name = out[i]
        if name in ("x", "X"):
            value = x
        else:
            value = SLOTS[name.lower()](d)
            if "{" in value:  # a slot value with slots of its own ("an EF of {ef}%")
                value = _fill(_compile(value), d)
        out[i] = value[:1].upper() + value[1:] if name[:1].isupper() else value
    return "".join(out)


_COMPILED_POOLS = {k: tuple(_compile(t) for t in v) for k, v in POOLS.items()}
_COMPILED_MENTIONS = {k: tuple(_compile(t) for t in v) for k, v in (
    ("pos_dx", POSITIVE_DX), ("pos_px", POSITIVE_PX), ("neg_dx", NEGATIVE_DX), ("neg_px", NEGATIVE_PX),
    ("family", FAMILY_DX))}


@dataclass
class Pool:
    """Pre-generated sentences joined into one string (CSV-escaped), with sentence start offsets."""

    text: str
    offsets: np.ndarray  # (n + 1,) character offsets; sentence i is text[offsets[i]:offsets[i + 1]]

    @property
    def n(self) -> int:
        return len(self.offsets) - 1

    def take(self, d: Dice, k: int) -> str:
        """``k`` consecutive sentences from a random start."""
        k = max(0, min(k, self.n))
        s = d.below(self.n - k + 1)
        return self.text[self.offsets[s]:self.offsets[s + k]]


def _make_pool(name: str, n: int, d: Dice) -> Pool:
    templates = _COMPILED_POOLS[name]
    parts = []
    line_sep = name in ("exam", "results", "nursing", "physician", "ecg", "echo")
    for _ in range(n):
        s = _fill(d.pick(templates), d).replace('"', '""')
        if not s.isascii() and not d.chance(NON_ASCII_KEEP):
            s = s.replace("°", " ").replace("²", "2")
        u = d.u()
        parts.append(s + ("\n" if line_sep or u < 0.25 else "\n\n" if u < 0.32 else " "))
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return Pool("".join(parts), offsets)


def make_pools(n_sentences: int, seed: int) -> dict[str, Pool]:
    """Every filler pool, ``n_sentences`` sentences each (deterministic in ``seed``)."""
    d = Dice(_stream(seed, 1))
    pools = {name: _make_pool(name, n_sentences, d) for name in POOLS}
    pools["meds"] = _med_pool(d, max(200, n_sentences // 20))
    return pools


def _med_pool(d: Dice, n: int) -> Pool:
    parts = [_med_line(d) + "\n" for _ in range(n)]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum([len(p) for p in parts], out=offsets[1:])
    return Pool("".join(parts), offsets)


# ---------------------------------------------------------------------------------------------------
# The ICD-9 code universe
# ---------------------------------------------------------------------------------------------------
_PX_RE = re.compile(r"^\d{2}(\.\d{1,2})?$")
_DX_RE = re.compile(r"^(\d{3}|V\d{2})(\.\d{1,2})?$|^E\d{3}(\.\d)?$")


def load_descriptions() -> dict[str, str]:
    """CAML's ``ICD9_descriptions``: dotted code -> description (range rows and the root included)."""
    with gzip.open(RESOURCES / "ICD9_descriptions.gz", "rt", encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t", 1) for line in f if "\t" in line]
    return {code: desc for code, desc in rows}


def _parent(code: str) -> str:
    p = code[:-1]
    return p[:-1] if p.endswith(".") else p


def leaf_codes(desc: dict[str, str]) -> tuple[list[str], list[str]]:
    """(diagnosis leaves, procedure leaves): codes that no other code refines."""
    inner = {_parent(c) for c in desc}
    dx = [c for c in desc if _DX_RE.match(c) and c not in inner]
    px = [c for c in desc if _PX_RE.match(c) and c not in inner]
    return dx, px


def undot(code: str) -> str:
    """``"401.9"`` -> ``"4019"``, ``"01.17"`` -> ``"0117"`` (MIMIC's storage format)."""
    return code.replace(".", "")


def caml_int_cast(px_code: str) -> str:
    """What CAML makes of a procedure code it read as a number: ``"01.17"`` -> ``"11.7"``, ``"00.40"`` -> ``"40."``."""
    s = str(int(undot(px_code)))
    return s[:2] + "." + s[2:]


@dataclass
class Universe:
    """The codes that can be drawn, by popularity rank, with their mention phrases."""

    dx: list[str]                      # dotted, rank order
    px: list[str]
    desc: dict[str, str]
    phrases: dict[str, tuple[str, ...]]
    signal_p: dict[str, float]
    lz_collisions: list[str]           # forced leading-zero procedure codes colliding after the int cast
    lz_bogus: list[str]
    unused_dx: list[str]               # extra leaves listed in D_ICD_DIAGNOSES only
    unused_px: list[str]

    def popularity(self, kind: str) -> np.ndarray:
        k, off = (len(self.dx), ZIPF_OFFSET_DX) if kind == "dx" else (len(self.px), ZIPF_OFFSET_PX)
        w = (np.arange(k) + off) ** -ZIPF_EXPONENT
        return w / w.sum()


def _phrases(code: str, desc: str) -> tuple[str, ...]:
    """Ways a note may mention a code: its description, its head, pairs of its content words."""
    core = re.sub(r"\s*[\(\[][^\)\]]*[\)\]]", "", desc).strip()
    head = core.split(",")[0].strip() or desc
    words = head.lower().split()
    content = [i for i, w in enumerate(words) if w.strip(";:-'") not in _STOPWORDS and w[:1].isalpha()]
    # contiguous windows of 2-4 words that start and end with a content word, e.g. "renal failure"
    spans = [" ".join(words[i:j + 1]) for j in reversed(content) for i in content if 1 <= j - i <= 3]
    if not spans and content:
        spans = [words[content[-1]]]
    out = [desc, desc.lower(), head.lower(), *spans[:3]]
    return tuple(dict.fromkeys(p for p in out if p))


def _leading_zero_codes(px_leaves: list[str], n_collide: int, n_bogus: int, d: Dice,
                        desc: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(colliding leading-zero codes, their collision targets, bogus leading-zero codes)."""
    leaves = set(px_leaves)
    lz = [c for c in px_leaves if c.startswith("0")]
    colliding = [c for c in lz if caml_int_cast(c) in leaves]
    bogus = [c for c in lz if caml_int_cast(c) not in desc]
    pick_c = _sample(colliding, n_collide, d)
    pick_b = _sample(bogus, n_bogus, d)
    return pick_c, [caml_int_cast(c) for c in pick_c], pick_b


def _sample(items: Sequence, k: int, d: Dice) -> list:
    """``k`` distinct items in random order (partial Fisher-Yates)."""
    items = list(items)
    k = min(k, len(items))
    for i in range(k):
        j = i + d.below(len(items) - i)
        items[i], items[j] = items[j], items[i]
    return items[:k]


def build_universe(spec: SizeSpec, seed: int) -> Universe:
    """Rank CAML's top-50 codes first, then forced leading-zero codes, then random leaves."""
    desc = load_descriptions()
    dx_leaves, px_leaves = leaf_codes(desc)
    d = Dice(_stream(seed, 2))
    top50 = (RESOURCES / "caml_top50_codes.csv").read_text().split()
    top_px = [c for c in top50 if _PX_RE.match(c)]
    top_dx = [c for c in top50 if c not in top_px]
    coll, targets, bogus = _leading_zero_codes(px_leaves, spec.forced_lz_collisions, spec.forced_lz_bogus, d, desc)
    forced_px = list(dict.fromkeys(coll + targets + bogus))
    px = _rank(top_px, forced_px, px_leaves, spec.px_universe, d)
    dx = _rank(top_dx, [], dx_leaves, spec.dx_universe, d)
    used = set(dx) | set(px)
    unused_dx = sorted(_sample([c for c in dx_leaves if c not in used], len(dx) // 20, d))
    unused_px = sorted(_sample([c for c in px_leaves if c not in used], len(px) // 20, d))
    a = SIGNAL_PROB_MEAN * SIGNAL_PROB_CONCENTRATION
    b = (1 - SIGNAL_PROB_MEAN) * SIGNAL_PROB_CONCENTRATION
    beta = _stream(seed, 3).beta(a, b, size=len(dx) + len(px)).tolist()
    codes = dx + px
    phrases = {c: _phrases(c, desc[c]) for c in codes}
    return Universe(dx, px, desc, phrases, dict(zip(codes, beta)), coll, bogus, unused_dx, unused_px)


def _rank(top: list[str], forced: list[str], leaves: list[str], k: int, d: Dice) -> list[str]:
    """Top codes first, forced codes scattered over the next ranks, random leaves for the rest."""
    forced = [c for c in forced if c not in set(top)]
    chosen = set(top) | set(forced)
    rest = _sample([c for c in leaves if c not in chosen], max(0, k - len(chosen)), d)
    head_span = min(len(rest), max(len(forced) * 4, 20))
    for i, code in enumerate(forced):  # ranks len(top) + a few: frequent enough to appear in small fixtures
        rest.insert(min(len(rest), (i * head_span) // max(1, len(forced)) + d.below(3)), code)
    return (top + rest)[:max(k, len(top) + len(forced))]


# ---------------------------------------------------------------------------------------------------
# Cohort: patients, admissions, codes
# ---------------------------------------------------------------------------------------------------
@dataclass
class Cohort:
    """One row per admission (arrays aligned), plus code lists."""

    hadm: np.ndarray          # (n_adm,) HADM_ID
    subject: np.ndarray       # (n_adm,) SUBJECT_ID
    admit_day: np.ndarray     # days since 2100-01-01
    los: np.ndarray           # length of stay, days
    has_ds: np.ndarray        # bool
    dx: list[list[str]]       # dotted diagnosis codes in SEQ_NUM order ("" = empty code row)
    px: list[list[str]]
    quirk_rows: dict[str, int]


def _counts(spec: SizeSpec, scale: float | None) -> SizeSpec:
    if scale is None:
        return spec
    f = float(scale)
    return replace(spec, admissions_with_ds=max(20, round(spec.admissions_with_ds * f)),
                   admissions_without_ds=max(2, round(spec.admissions_without_ds * f)),
                   ds_patients=max(16, round(spec.ds_patients * f)),
                   extra_ds_rows=max(3, round(spec.extra_ds_rows * f)),
                   other_notes=max(60, round(spec.other_notes * f)))


def _quirk_count(name: str, n: int) -> int:
    rate, minimum = RATES[name]
    return max(minimum, round(rate * n))


def build_cohort(spec: SizeSpec, uni: Universe, seed: int) -> Cohort:
    rng = _stream(seed, 4)
    n_ds, n_no = spec.admissions_with_ds, spec.admissions_without_ds
    n_adm = n_ds + n_no
    patient = _assign_patients(rng, n_ds, spec.ds_patients)
    extra_patients = max(1, round(0.4 * n_no))  # no-summary admissions: some new patients, some known
    patient_no = np.where(rng.random(n_no) < 0.4, spec.ds_patients + rng.integers(0, extra_patients, n_no),
                          rng.integers(0, spec.ds_patients, n_no))
    patient = np.concatenate([patient, patient_no])
    n_pat = int(patient.max()) + 1
    subject_ids = np.sort(rng.choice(np.arange(2, 100000), size=n_pat, replace=False)) if n_pat < 99000 \
        else np.arange(2, 2 + n_pat)
    subject_ids = rng.permutation(subject_ids)
    hadm = rng.choice(np.arange(100000, 200000), size=n_adm, replace=False)
    base_day = rng.integers(0, 36500 - 3000, n_pat)
    order = np.lexsort((rng.random(n_adm), patient))
    nth = np.zeros(n_adm, dtype=np.int64)  # admission number within the patient
    nth[order] = np.arange(n_adm) - np.searchsorted(patient[order], patient[order])
    los = np.minimum(1 + np.floor(rng.lognormal(1.6, 0.7, n_adm)), 120).astype(np.int64)
    admit_day = base_day[patient] + nth * 300 + rng.integers(0, 150, n_adm)  # stays never overlap
    has_ds = np.arange(n_adm) < n_ds
    dx, px = _draw_codes(spec, uni, rng, n_adm)
    cohort = Cohort(hadm, subject_ids[patient], admit_day, los, has_ds, dx, px, {})
    _plant_code_quirks(cohort, rng)
    return cohort


def _assign_patients(rng: np.random.Generator, n_adm: int, n_pat: int) -> np.ndarray:
    """Every patient gets one admission; the rest go to a skewed subset (a few patients return often)."""
    n_pat = min(n_pat, n_adm)
    w = rng.pareto(1.5, n_pat) + 0.05
    extra = rng.choice(n_pat, size=n_adm - n_pat, p=w / w.sum())
    return rng.permutation(np.concatenate([np.arange(n_pat), extra]))


def _draw_codes(spec: SizeSpec, uni: Universe, rng: np.random.Generator,
                n_adm: int) -> tuple[list[list[str]], list[list[str]]]:
    n_dx = np.minimum(1 + rng.negative_binomial(3, 3 / (2 + spec.dx_mean), n_adm), min(39, len(uni.dx) // 2))
    n_px = np.minimum(1 + rng.negative_binomial(2, 2 / (1 + spec.px_mean), n_adm), min(40, len(uni.px) // 2))
    n_px[rng.random(n_adm) < spec.px_zero_fraction] = 0
    dx = _successive_draws(rng, uni.popularity("dx"), n_dx)
    px = _successive_draws(rng, uni.popularity("px"), n_px)
    return [[uni.dx[i] for i in row] for row in dx], [[uni.px[i] for i in row] for row in px]


def _successive_draws(rng: np.random.Generator, p: np.ndarray, sizes: np.ndarray) -> list[list[int]]:
    """Per admission, ``sizes[i]`` distinct indices drawn without replacement with probabilities ``p``."""
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    stream: list[int] = []
    pos, out = 0, []
    for m in sizes.tolist():
        seen: dict[int, None] = {}
        while len(seen) < m:
            if pos >= len(stream):
                stream = np.searchsorted(cdf, rng.random(max(4096, int(sizes.sum()))), side="right").tolist()
                pos = 0
            seen.setdefault(stream[pos])
            pos += 1
        out.append(list(seen))
    return out


def _plant_code_quirks(c: Cohort, rng: np.random.Generator) -> None:
    """Empty code rows, admissions with a summary but no code, duplicate (admission, code) rows."""
    ds_idx = np.flatnonzero(c.has_ds)
    n_adm = len(c.hadm)
    nocode = rng.choice(ds_idx, _quirk_count("ds_no_code", len(ds_idx)), replace=False)
    for i in nocode.tolist():
        c.dx[i], c.px[i] = [""], []
    others = np.setdiff1d(np.arange(n_adm), nocode)
    for i in rng.choice(others, _quirk_count("empty_code_extra", n_adm), replace=False).tolist():
        c.dx[i] = c.dx[i] + [""]
    dup_dx = rng.choice(others, _quirk_count("dup_dx", n_adm), replace=False).tolist()
    for i in dup_dx:
        c.dx[i] = c.dx[i] + [c.dx[i][int(rng.integers(0, len(c.dx[i])))]]
    with_px = [i for i in others.tolist() if c.px[i]]
    dup_px = rng.choice(with_px, min(len(with_px), _quirk_count("dup_px", n_adm)), replace=False).tolist()
    for i in dup_px:
        c.px[i] = c.px[i] + [c.px[i][int(rng.integers(0, len(c.px[i])))]]
    c.quirk_rows.update(admissions_with_ds_but_no_code=len(nocode))


def gold_codes(c: Cohort, i: int) -> list[str]:
    """Distinct non-empty dotted codes of admission ``i``, diagnoses first, in SEQ_NUM order."""
    return list(dict.fromkeys(x for x in c.dx[i] + c.px[i] if x))


# ---------------------------------------------------------------------------------------------------
# Discharge summaries
# ---------------------------------------------------------------------------------------------------
@dataclass
class Plan:
    """What one admission's summaries say: rendered mention sentences per document and section."""

    signalled: list[str]
    mentioned: list[str]                       # signalled + distractors + uncoded mentions
    docs: list[dict[str, list[str]]]           # per document: section -> sentences


def _phrase(code: str, uni: Universe, d: Dice) -> str:
    abbr = ABBREVIATIONS.get(code)
    if abbr and d.chance(ABBREVIATION_PROB):
        return d.pick(abbr)
    return d.pick(uni.phrases[code])


def _is_px(code: str) -> bool:
    return bool(_PX_RE.match(code))


def _mention(section: str, code: str, uni: Universe, d: Dice, kind: str = "pos") -> str:
    x = _phrase(code, uni, d)
    if section == "dxlist" or section == "proc":
        return x[:1].upper() + x[1:] + "\n"
    if section == "pmh":
        return f"- {x}\n"
    if section == "cc":
        return x[:1].upper() + x[1:]
    key = "family" if section == "family" else f"{kind}_{'px' if _is_px(code) else 'dx'}"
    return _fill(d.pick(_COMPILED_MENTIONS[key]), d, x) + (" " if d.chance(0.75) else "\n")


def plan_admission(codes: list[str], n_docs: int, uni: Universe, d: Dice,
                   dx_cdf: list[float], px_cdf: list[float]) -> Plan:
    """Decide which codes are signalled and render every mention (signal, distractor, uncoded)."""
    docs: list[dict[str, list[str]]] = [{} for _ in range(n_docs)]

    def put(section: str, sentence: str, doc: int = 0) -> None:
        docs[doc].setdefault(section, []).append(sentence)

    signalled = []
    for j, code in enumerate(codes):
        if not d.chance(uni.signal_p[code]):
            continue
        signalled.append(code)
        probs = PX_SECTION_PROBS if _is_px(code) else DX_SECTION_PROBS
        sections = [s for s, p in probs if d.chance(p)] or [d.pick(probs)[0]]
        if j == 0 and not _is_px(code) and d.chance(CHIEF_COMPLAINT_PROB):
            put("cc", _mention("cc", code, uni, d))
        for s in sections:
            doc = 1 + d.below(n_docs - 1) if n_docs > 1 and d.chance(EXTRA_DOC_MENTION_PROB) else 0
            put(s, _mention(s, code, uni, d), doc)
    gold = set(codes)
    other = _draw_others(d.poisson(DISTRACTOR_MEAN), gold, uni, d, dx_cdf, px_cdf)
    for code in other:
        section = "family" if not _is_px(code) and d.chance(0.2) else d.pick(("hpi", "course"))
        put(section, _mention(section, code, uni, d, "neg"))
    uncoded = _draw_others(d.poisson(UNCODED_MENTION_MEAN), gold | set(other), uni, d, dx_cdf, px_cdf)
    for code in uncoded:
        section = d.pick(("pmh", "course")) if not _is_px(code) else "course"
        put(section, _mention(section, code, uni, d))
    return Plan(signalled, list(dict.fromkeys(signalled + other + uncoded)), docs)


def _draw_others(n: int, exclude: set[str], uni: Universe, d: Dice, dx_cdf: list[float],
                 px_cdf: list[float]) -> list[str]:
    out: list[str] = []
    for _ in range(n * 4):
        if len(out) >= n:
            break
        if d.chance(DISTRACTOR_PX_FRACTION):
            code = uni.px[min(bisect.bisect(px_cdf, d.u()), len(uni.px) - 1)]
        else:
            code = uni.dx[min(bisect.bisect(dx_cdf, d.u()), len(uni.dx) - 1)]
        if code not in exclude and code not in out:
            out.append(code)
    return out


def _interleave(pool: Pool, k: int, mentions: list[str], d: Dice) -> str:
    """``k`` filler sentences with the mention sentences inserted at random sentence boundaries."""
    k = max(1, min(k, pool.n))
    s = d.below(pool.n - k + 1)
    cuts = sorted(d.below(k + 1) for _ in mentions)
    out, prev = [], 0
    for c, m in zip(cuts, mentions):
        out.append(pool.text[pool.offsets[s + prev]:pool.offsets[s + c]])
        out.append(m)
        prev = c
    out.append(pool.text[pool.offsets[s + prev]:pool.offsets[s + k]])
    return "".join(out)


@dataclass
class AdmissionDates:
    admit: str
    discharge: str
    dob: str
    sex: str


def _n(base: float, scale: float, minimum: int = 1) -> int:
    return max(minimum, int(round(base * scale)))


def discharge_summary(m: dict[str, list[str]], dates: AdmissionDates, length: float, pools: dict[str, Pool],
                      d: Dice) -> str:
    """One "Report" in MIMIC's layout; ``m`` holds the mention sentences of each section."""
    L = length
    cc = m.get("cc", [d.pick(_SYMPTOMS)])[0]
    proc = "".join(m.get("proc", [])) or "None\n"
    pmh = "".join(m.get("pmh", [])) + "".join(f"- {d.pick(_GENERIC_PMH)}\n" for _ in range(1 + d.below(3)))
    meds_adm = pools["meds"].take(d, _n(7, L ** 0.5))
    meds_dis = "".join(f"{i}. {line}\n" for i, line in enumerate(
        pools["meds"].take(d, _n(9, L ** 0.5)).splitlines(), 1))
    dx_lines = m.get("dxlist", [])
    dxlist = ("Primary:\n" + dx_lines[0] + "\nSecondary:\n" + "".join(dx_lines[1:]) if len(dx_lines) > 2
              and d.chance(0.6) else "".join(dx_lines) or d.pick(_SYMPTOMS) + "\n")
    num = lambda: str(1 + d.below(9999))  # noqa: E731 - a de-identified number
    parts = [
        f"Admission Date:  [**{dates.admit}**]              Discharge Date:   [**{dates.discharge}**]\n\n",
        f"Date of Birth:  [**{dates.dob}**]             Sex:   {dates.sex}\n\n",
        f"Service: {d.pick(_SERVICES)}\n\nAllergies:\n{d.pick(_ALLERGIES)}\n\n",
        f"Attending:[**First Name3 (LF) {num()}**]\nChief Complaint:\n{cc}\n\n",
        f"Major Surgical or Invasive Procedure:\n{proc}\n\n",
        "History of Present Illness:\n", _interleave(pools["hpi"], _n(9, L), m.get("hpi", []), d), "\n\n",
        "Past Medical History:\n", pmh, "\nSocial History:\n", pools["social"].take(d, _n(2, L)),
        "\nFamily History:\n", _interleave(pools["family"], 1, m.get("family", []), d),
        "\nPhysical Exam:\n", pools["exam"].take(d, _n(11, L)),
        "\nPertinent Results:\n", pools["results"].take(d, _n(13, L)),
        "\nBrief Hospital Course:\n", _interleave(pools["course"], _n(34, L), m.get("course", []), d),
        "\n\nMedications on Admission:\n", meds_adm, "\nDischarge Medications:\n", meds_dis,
        f"\nDischarge Disposition:\n{d.pick(_DISPOSITIONS).replace('{n}', num())}\n\n",
        "Discharge Diagnosis:\n", dxlist, f"\nDischarge Condition:\n{d.pick(_CONDITIONS)}\n\n",
        "Discharge Instructions:\n", pools["instructions"].take(d, _n(9, L)),
        f"\nFollowup Instructions:\nProvider: {d.pick(_DEID).replace('{n}', num())} Phone:[**Telephone/Fax (1) "
        f"{num()}**] Date/Time:[**{dates.discharge}**] 10:00\n\n\n",
        f"                             [**First Name11 (Name Pattern1) {num()}**] [**Last Name (NamePattern4) "
        f"{num()}**] MD [**MD Number(1) {num()}**]\n\nCompleted by:[**{dates.discharge}**]",
    ]
    return "".join(parts)


def addendum(m: dict[str, list[str]], dates: AdmissionDates, length: float, pools: dict[str, Pool],
             d: Dice) -> str:
    """A short "Addendum" row; it carries whatever mentions were routed to it."""
    mentions = [s for key in ("cc", "hpi", "pmh", "course", "proc", "family") for s in m.get(key, [])]
    body = _interleave(pools["course"], _n(6, length), mentions, d)
    dx = "".join(m.get("dxlist", []))
    tail = f"\nDischarge Diagnosis:\n{dx}" if dx else ""
    return (f"Name:  [**Known lastname {1 + d.below(9999)}**],[**Known firstname {1 + d.below(999)}**]"
            f"       Unit No:   [**Numeric Identifier {1 + d.below(99999)}**]\n\n"
            f"Admission Date:  [**{dates.admit}**]     Discharge Date:   [**{dates.discharge}**]\n\n"
            f"Date of Birth:  [**{dates.dob}**]     Sex:   {dates.sex}\n\nService: {d.pick(_SERVICES)}\n\n"
            f"ADDENDUM:\n{body}{tail}\n\n[**First Name11 (Name Pattern1) {1 + d.below(999)}**] MD "
            f"[**MD Number(2) {1 + d.below(9999)}**]\n\nCompleted by:[**{dates.discharge}**]")


# ---------------------------------------------------------------------------------------------------
# Dates
# ---------------------------------------------------------------------------------------------------
_EPOCH = np.datetime64("2100-01-01", "D")


def _ymd(days: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    dt = _EPOCH + days.astype("timedelta64[D]")
    y = dt.astype("datetime64[Y]").astype(np.int64) + 1970
    mo = dt.astype("datetime64[M]").astype(np.int64) % 12 + 1
    da = (dt - dt.astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1
    return y, mo, da


def _bracket_dates(days: np.ndarray) -> list[str]:
    """MIMIC's unpadded de-identified dates: ``2151-7-16``."""
    y, m, d = _ymd(days)
    return [f"{a}-{b}-{c}" for a, b, c in zip(y.tolist(), m.tolist(), d.tolist())]


def _iso_dates(days: np.ndarray) -> list[str]:
    return np.datetime_as_string(_EPOCH + days.astype("timedelta64[D]"), unit="D").tolist()


def _iso_times(days: np.ndarray, minutes: np.ndarray) -> list[str]:
    t = (_EPOCH + days.astype("timedelta64[D]")).astype("datetime64[m]") + minutes.astype("timedelta64[m]")
    return [s.replace("T", " ") + ":00" for s in np.datetime_as_string(t, unit="m").tolist()]


# ---------------------------------------------------------------------------------------------------
# Writing: a deterministic gzip writer fed by a thread, CSV helpers
# ---------------------------------------------------------------------------------------------------
class GzipSink:
    """gzip (mtime=0, no name) written by a background thread; sha256 and sizes taken on the fly."""

    def __init__(self, path: Path, compresslevel: int) -> None:
        self.path = path
        self._raw = open(path, "wb")
        self._sha = hashlib.sha256()
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self, mtime=0, compresslevel=compresslevel)
        self._q: queue.Queue[bytes | None] = queue.Queue(maxsize=6)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._error: BaseException | None = None
        self.uncompressed = 0
        self._thread.start()

    def write(self, data: bytes) -> int:  # called by GzipFile with compressed bytes
        self._sha.update(data)
        return self._raw.write(data)

    def flush(self) -> None:
        self._raw.flush()

    def _run(self) -> None:
        try:
            while (chunk := self._q.get()) is not None:
                self._gz.write(chunk)
        except BaseException as e:  # surfaced in put()/close()
            self._error = e
            while self._q.get() is not None:
                pass

    def put(self, text: str) -> None:
        if self._error:
            raise self._error
        data = text.encode("utf-8")
        self.uncompressed += len(data)
        self._q.put(data)

    def close(self) -> dict[str, int | str]:
        self._q.put(None)
        self._thread.join()
        if self._error:
            raise self._error
        self._gz.close()
        self._raw.close()
        return {"bytes": self.path.stat().st_size, "sha256": self._sha.hexdigest()}


def _q(s: str) -> str:
    """A quoted CSV string field (MIMIC quotes every string)."""
    return '"' + s.replace('"', '""') + '"'


def _header(columns: Iterable[str]) -> str:
    return ",".join(f'"{c}"' for c in columns) + "\n"


# ---------------------------------------------------------------------------------------------------
# NOTEEVENTS
# ---------------------------------------------------------------------------------------------------
@dataclass
class NoteStats:
    by_category: Counter
    text_chars: int = 0
    text_bytes: int = 0
    multiline: int = 0
    comma: int = 0
    quote: int = 0
    deid: int = 0
    non_ascii: int = 0
    no_hadm: int = 0
    iserror: int = 0
    iserror_ds: int = 0
    ds_sections: int = 0
    ds_doses: int = 0
    doc_tokens: dict[int, int] | None = None  # sampled admissions: CAML tokens of all their summaries

    def see(self, text: str) -> None:
        """``text`` is already CSV-escaped (quotes doubled)."""
        self.text_chars += len(text)
        self.multiline += "\n" in text
        self.comma += "," in text
        if '""' in text:
            self.quote += 1
            self.text_chars -= text.count('""')  # count the TEXT as read back, not as escaped
        self.deid += "[**" in text
        if not text.isascii():
            self.non_ascii += 1
            self.text_bytes += len(text.encode("utf-8")) - len(text)


_TOKEN_RE = re.compile(r"\w+")


def caml_token_count(text: str) -> int:
    """Tokens under CAML's rule: ``\\w+`` runs, numeric tokens dropped."""
    return sum(1 for t in _TOKEN_RE.findall(text) if not t.isnumeric())


@dataclass
class DsRow:
    adm: int        # admission index
    doc: int        # 0 = the report, >0 = addendum / second report
    kind: str       # "Report" | "Addendum"


def _ds_rows(c: Cohort, spec: SizeSpec, rng: np.random.Generator) -> tuple[list[DsRow], dict[str, int]]:
    """Discharge-summary rows in ROW_ID order: reports in a random admission order, extra rows later
    (usually far later; a few just before their report), a few second reports."""
    ds_idx = np.flatnonzero(c.has_ds)
    n = len(ds_idx)
    pos = rng.permutation(n).astype(np.float64)
    extra_adm = rng.choice(n, spec.extra_ds_rows, replace=True)
    n_two = min(len(extra_adm), _quirk_count("two_reports", n))
    rate, minimum = RATES["addendum_first"]
    first = rng.random(len(extra_adm)) < rate
    first[n_two: n_two + minimum] = True
    keys, rows = [], []
    for j in range(n):
        keys.append(pos[j])
        rows.append(DsRow(int(ds_idx[j]), 0, "Report"))
    n_docs = Counter()
    for e, a in enumerate(extra_adm.tolist()):
        n_docs[a] += 1
        kind = "Report" if e < n_two else "Addendum"
        keys.append(pos[a] - 0.5 + 0.001 * n_docs[a] if first[e] else pos[a] + 1 + rng.random() * (n - pos[a]))
        rows.append(DsRow(int(ds_idx[a]), n_docs[a], kind))
    order = np.argsort(np.asarray(keys), kind="stable")
    rows = [rows[i] for i in order.tolist()]
    before: set[int] = set()
    seen_report: set[int] = set()
    for r in rows:  # as a reader of the table sees it: an Addendum whose admission has no Report yet
        if r.kind == "Report":
            seen_report.add(r.adm)
        elif r.adm not in seen_report:
            before.add(r.adm)
    return rows, {"admissions_with_addendum_before_report": len(before), "two_report_rows": n_two}


def _dates_of(c: Cohort, i: int, d: Dice) -> AdmissionDates:
    a, b = int(c.admit_day[i]), int(c.admit_day[i] + c.los[i])
    dob = a - 365 * (20 + d.below(70)) - d.below(365)
    ad, dd, bd = _bracket_dates(np.array([a, b, dob]))
    return AdmissionDates(ad, dd, bd, d.pick(("M", "F")))


def write_discharge_summaries(sink: GzipSink, c: Cohort, uni: Universe, pools: dict[str, Pool],
                              spec: SizeSpec, seed: int, stats: NoteStats,
                              progress: bool) -> tuple[dict[int, Plan], dict[str, int], int]:
    """Write every discharge-summary row; return the plans (for the oracle), quirk counts, next ROW_ID."""
    rng = _stream(seed, 5)
    rows, quirks = _ds_rows(c, spec, rng)
    iserror = set(rng.choice(len(rows), _quirk_count("iserror_ds", len(rows)), replace=False).tolist())
    n_docs = Counter(r.adm for r in rows)
    dx_cdf, px_cdf = _flat_cdf(uni.popularity("dx")), _flat_cdf(uni.popularity("px"))
    plans: dict[int, Plan] = {}
    sample_every = max(1, len(n_docs) // 2000)
    stats.doc_tokens = {}
    batch: list[str] = []
    for rid, r in enumerate(_progress(rows, progress, "discharge summaries"), 1):
        d_adm = Dice(_stream(seed, 6, int(c.hadm[r.adm])), 512)
        dates = _dates_of(c, r.adm, d_adm)
        plan = plans.get(r.adm) or plan_admission(gold_codes(c, r.adm), n_docs[r.adm], uni, d_adm, dx_cdf, px_cdf)
        plans[r.adm] = plan
        text, chart = _ds_text(r, c, plan.docs[r.doc], dates, spec, pools, seed)
        n_docs[r.adm] -= 1
        if not n_docs[r.adm]:
            plan.docs = []  # all of this admission's rows are built: free the sentences
        err = "1" if rid - 1 in iserror else ""
        _count_ds(stats, text, err, r.adm if r.adm % sample_every == 0 else None)
        batch.append(f'{rid},{c.subject[r.adm]},{c.hadm[r.adm]},{chart},,,"{DS_CATEGORY}","{r.kind}",,{err},"{text}"\n')
        if len(batch) >= 200:
            sink.put("".join(batch))
            batch = []
    sink.put("".join(batch))
    stats.iserror += len(iserror)
    quirks["discharge_summary_rows"] = len(rows)
    quirks["addendum_rows"] = sum(r.kind == "Addendum" for r in rows)
    quirks["admissions_with_addendum"] = len({r.adm for r in rows if r.kind == "Addendum"})
    return plans, quirks, len(rows) + 1


def _ds_text(r: DsRow, c: Cohort, mentions: dict[str, list[str]], dates: AdmissionDates, spec: SizeSpec,
             pools: dict[str, Pool], seed: int) -> tuple[str, str]:
    """(TEXT, CHARTDATE) of one discharge-summary row; its filler comes from its own random stream."""
    d = Dice(_stream(seed, 7, int(c.hadm[r.adm]), r.doc), 1024)
    length = spec.ds_length * math.exp(DS_LENGTH_SIGMA * _normal(d) - DS_LENGTH_SIGMA ** 2 / 2)
    if r.kind == "Report":
        text = discharge_summary(mentions, dates, length * (1.0 if r.doc == 0 else 0.5), pools, d)
    else:
        text = addendum(mentions, dates, spec.ds_length, pools, d)
    chart = _iso_dates(np.array([c.admit_day[r.adm] + c.los[r.adm] + (d.below(20) if r.doc else 0)]))[0]
    return text, chart


def _count_ds(stats: NoteStats, text: str, err: str, sampled_adm: int | None) -> None:
    stats.see(text)
    stats.by_category[DS_CATEGORY] += 1
    stats.iserror_ds += bool(err)
    stats.ds_sections += "Admission Date:" in text
    stats.ds_doses += " mg " in text
    if sampled_adm is not None:
        stats.doc_tokens[sampled_adm] = stats.doc_tokens.get(sampled_adm, 0) + caml_token_count(text)


def _flat_cdf(p: np.ndarray) -> list[float]:
    """Cumulative distribution of ``p ** DISTRACTOR_POPULARITY_POWER`` (normalised) for bisect draws."""
    w = p ** DISTRACTOR_POPULARITY_POWER
    return (np.cumsum(w) / w.sum()).tolist()


def _normal(d: Dice) -> float:
    """Standard normal from two uniforms (Box-Muller)."""
    return math.sqrt(-2.0 * math.log(1.0 - d.u())) * math.cos(2.0 * math.pi * d.u())


def _progress(it, on: bool, desc: str, total: int | None = None):
    if not on:
        return it
    from tqdm import tqdm
    return tqdm(it, desc=desc, total=total, unit="row", mininterval=1.0, file=sys.stderr)


@dataclass
class OtherNotes:
    """Metadata of every non-summary note, in ROW_ID order (aligned arrays)."""

    cat: np.ndarray
    adm: np.ndarray     # admission index or -1
    subject: np.ndarray
    day: np.ndarray
    minute: np.ndarray
    store: np.ndarray   # minutes after charttime
    cgid: np.ndarray
    iserror: np.ndarray
    length: np.ndarray  # target TEXT characters


def _category_counts(spec: SizeSpec) -> np.ndarray:
    """MIMIC's category mix scaled to ``spec.other_notes`` (largest remainder; at least one of each)."""
    real = np.array([c[1] for c in CATEGORIES], dtype=np.int64)
    exact = real * spec.other_notes
    n = exact // real.sum()
    left = spec.other_notes - int(n.sum())
    n[np.argsort(-(exact % real.sum()), kind="stable")[:left]] += 1
    return np.maximum(1, n)


def plan_other_notes(c: Cohort, spec: SizeSpec, rng: np.random.Generator) -> OtherNotes:
    """Assign categories, admissions (weighted by length of stay), dates and lengths to the other notes."""
    n_cat = _category_counts(spec)
    cat = np.repeat(np.arange(len(CATEGORIES)), n_cat)
    n = len(cat)
    no_hadm_p = np.array([x[3] for x in CATEGORIES])[cat]
    no_hadm = rng.random(n) < no_hadm_p
    no_hadm[rng.choice(np.flatnonzero(cat == 1), min(int((cat == 1).sum()), 2), replace=False)] = True
    w = c.los.astype(np.float64) + 2
    adm = rng.choice(len(c.hadm), size=n, p=w / w.sum())
    subj_pool = np.unique(c.subject)
    subject = np.where(no_hadm, rng.choice(subj_pool, n), c.subject[adm])
    day = np.where(no_hadm, np.maximum(0, c.admit_day[adm] + rng.integers(-900, 900, n)),
                   c.admit_day[adm] + np.floor(rng.random(n) * (c.los[adm] + 1)).astype(np.int64))
    adm = np.where(no_hadm, -1, adm)
    minute = rng.integers(0, 1440, n)
    store = rng.integers(5, 180, n)
    has_cgid = np.array([x[5] for x in CATEGORIES])[cat]
    cgid = np.where(has_cgid, rng.integers(14000, 21600, n), 0)
    iserror = np.zeros(n, dtype=bool)
    iserror[rng.choice(n, min(n, _quirk_count("iserror_note", n)), replace=False)] = True
    mean = np.array([x[2] for x in CATEGORIES], dtype=np.float64)[cat] * spec.other_length
    length = np.maximum(60, mean * rng.lognormal(-OTHER_LENGTH_SIGMA ** 2 / 2, OTHER_LENGTH_SIGMA, n)).astype(np.int64)
    order = np.lexsort((minute, day, subject, cat))
    return OtherNotes(cat[order], adm[order], subject[order], day[order], minute[order], store[order],
                      cgid[order], iserror[order], length[order])


def _other_header(family: str, desc: str, date: str, r: int) -> str:
    """A short category-specific opening (de-identified date, clip numbers, titles)."""
    h, mnt = 1 + r % 12, 10 + (r >> 4) % 50
    if family == "radiology":
        return (f"[**{date}**] {h}:{mnt} {'AM' if r & 1 else 'PM'}\n     {desc}{' ' * 20}Clip # "
                f"[**Clip Number (Radiology) {r % 99999}**]\n     Reason: {_SYMPTOMS[r % len(_SYMPTOMS)]}\n"
                f" {'_' * 78}\n                                 FINAL REPORT\n")
    if family == "echo":
        return (f"PATIENT/TEST INFORMATION:\nIndication: {_SYMPTOMS[r % len(_SYMPTOMS)]}.\nHeight: (in) "
                f"{60 + r % 15}\nWeight (lb): {110 + r % 150}\nBP (mm Hg): {100 + r % 60}/{50 + r % 40}\n"
                f"Status: Inpatient\nDate/Time: [**{date}**] at {h}:{mnt}\nTest: TTE (Complete)\n\nINTERPRETATION:\n\n")
    if family == "physician":
        return f"Chief Complaint: {_SYMPTOMS[r % len(_SYMPTOMS)]}\n{desc}\n"
    if family == "ecg":
        return ""
    return f"{desc}\n" if r % 3 == 0 else ""


def write_other_notes(sink: GzipSink, notes: OtherNotes, c: Cohort, pools: dict[str, Pool], first_row_id: int,
                      seed: int, stats: NoteStats, progress: bool, chunk: int = 20000) -> None:
    """Stream the non-summary notes in chunks: header + a slice of the category's filler pool."""
    rng = _stream(seed, 8)
    n = len(notes.cat)
    families = [x[7] for x in CATEGORIES]
    starts = range(0, n, chunk)
    for s0 in _progress(starts, progress, "other notes (chunks)", total=len(starts)):
        sl = slice(s0, min(n, s0 + chunk))
        lines = _other_chunk(notes, sl, c, pools, families, rng, first_row_id + s0, stats)
        sink.put("".join(lines))


def _pool_slices(pool: Pool, lengths: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(start, end) character offsets of sentence-aligned slices of about ``lengths`` characters."""
    off = pool.offsets
    lengths = np.minimum(lengths, off[-1] // 2)
    last = np.searchsorted(off, off[-1] - lengths, side="right") - 1
    s = np.floor(rng.random(len(lengths)) * np.maximum(last, 1)).astype(np.int64)
    e = np.maximum(np.searchsorted(off, off[s] + lengths), s + 1)
    return off[s], off[np.minimum(e, len(off) - 1)]


def _other_chunk(notes: OtherNotes, sl: slice, c: Cohort, pools: dict[str, Pool], families: list[str],
                 rng: np.random.Generator, row0: int, stats: NoteStats) -> list[str]:
    cat = notes.cat[sl]
    m = len(cat)
    a = np.zeros(m, dtype=np.int64)
    b = np.zeros(m, dtype=np.int64)
    fam_of = np.array([families.index(f) for f in families])[cat]  # first category of each family
    for f in sorted(set(fam_of.tolist())):
        idx = np.flatnonzero(fam_of == f)
        a[idx], b[idx] = _pool_slices(pools[families[f]], notes.length[sl][idx], rng)
    a_l, b_l = a.tolist(), b.tolist()
    rand = rng.integers(0, 1 << 30, m).tolist()
    desc_pick = rng.random(m).tolist()
    day, minute = notes.day[sl], notes.minute[sl]
    cdate, bdate = _iso_dates(day), _bracket_dates(day)
    ctime, stime = _iso_times(day, minute), _iso_times(day, minute + notes.store[sl])
    adm = notes.adm[sl].tolist()
    hadm = [str(c.hadm[x]) if x >= 0 else "" for x in adm]
    cgid = [str(g) if g else "" for g in notes.cgid[sl].tolist()]
    err = ["1" if e else "" for e in notes.iserror[sl].tolist()]
    subj = notes.subject[sl].tolist()
    out = []
    for i, k in enumerate(cat.tolist()):
        name, _, _, _, descs, _, times, family = CATEGORIES[k]
        desc = descs[int(desc_pick[i] * len(descs))]
        text = _other_header(family, desc, bdate[i], rand[i]) + pools[family].text[a_l[i]:b_l[i]]
        stats.see(text)
        stats.by_category[name] += 1
        stats.no_hadm += not hadm[i]
        ct = ctime[i] if times in ("both", "chart") else ""
        st = stime[i] if times == "both" else ""
        out.append(f'{row0 + i},{subj[i]},{hadm[i]},{cdate[i]},{ct},{st},"{name}","{desc}",{cgid[i]},{err[i]},'
                   f'"{text}"\n')
    stats.iserror += sum(1 for e in err if e)
    return out


# ---------------------------------------------------------------------------------------------------
# Code tables and dictionaries
# ---------------------------------------------------------------------------------------------------
def write_code_table(path: Path, c: Cohort, which: str, level: int) -> tuple[dict, dict[str, int]]:
    """DIAGNOSES_ICD or PROCEDURES_ICD, admissions ordered by (SUBJECT_ID, admission date)."""
    sink = GzipSink(path, level)
    sink.put(_header(CODE_COLUMNS))
    rows = c.dx if which == "dx" else c.px
    order = np.lexsort((c.admit_day, c.subject)).tolist()
    lines, row_id, empty, dups = [], 0, 0, 0
    for i in order:
        seen: set[str] = set()
        seq = 0
        for code in rows[i]:
            row_id += 1
            if not code:
                empty += 1
                lines.append(f"{row_id},{c.subject[i]},{c.hadm[i]},,\n")
                continue
            seq += 1
            dups += code in seen
            seen.add(code)
            lines.append(f'{row_id},{c.subject[i]},{c.hadm[i]},{seq},"{undot(code)}"\n')
        if len(lines) >= 50000:
            sink.put("".join(lines))
            lines = []
    sink.put("".join(lines))
    return sink.close(), {"rows": row_id, "empty": empty, "duplicates": dups}


def short_title(desc: str) -> str:
    """MIMIC-like SHORT_TITLE: at most 24 characters."""
    s = desc.replace(", unspecified", " NOS").replace("unspecified", "unsp").replace(" without ", " w/o ")
    s = s.replace(" with ", " w ").replace("Other ", "Oth ").replace("other ", "oth ")
    return s[:24].rstrip(" ,;(-")


def write_dictionary(path: Path, codes: list[str], desc: dict[str, str], level: int) -> dict:
    sink = GzipSink(path, level)
    sink.put(_header(DICT_COLUMNS))
    lines = [f"{i},{_q(undot(code))},{_q(short_title(desc[code]))},{_q(desc[code])}\n"
             for i, code in enumerate(sorted(codes, key=undot), 1)]
    sink.put("".join(lines))
    return sink.close()


def _dictionary_codes(c: Cohort, uni: Universe, rng: np.random.Generator) -> tuple[list[str], list[str], list[str]]:
    """(D_ICD_DIAGNOSES codes, D_ICD_PROCEDURES codes, used codes left out of them)."""
    dx_used = sorted({x for row in c.dx for x in row if x})
    px_used = sorted({x for row in c.px for x in row if x})
    counts = Counter(x for row in c.dx + c.px for x in row if x)
    rare = sorted((code for code in dx_used + px_used if counts[code] <= 2 and code not in ABBREVIATIONS))
    k = min(len(rare), _quirk_count("missing_from_dict", len(dx_used) + len(px_used)))
    missing = sorted(rng.choice(rare, k, replace=False).tolist()) if k else []
    drop = set(missing)
    dx = [x for x in dx_used if x not in drop] + uni.unused_dx
    px = [x for x in px_used if x not in drop] + uni.unused_px
    return dx, px, missing


# ---------------------------------------------------------------------------------------------------
# Splits, top-50, oracle, baseline
# ---------------------------------------------------------------------------------------------------
def dotted_rows(c: Cohort, i: int) -> list[str]:
    """Every non-empty code row of admission ``i`` (duplicates kept), dotted."""
    return [x for x in c.dx[i] + c.px[i] if x]


def top50_codes(c: Cohort) -> list[str]:
    """50 most frequent codes over admissions with a summary; duplicate rows counted; ties by code string."""
    counts = Counter(x for i in np.flatnonzero(c.has_ds).tolist() for x in dotted_rows(c, i))
    return [code for code, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:50]]


def make_splits(c: Cohort, top50: list[str], rng: np.random.Generator,
                fractions: tuple = SPLIT_FRACTIONS) -> dict[str, list[int]]:
    """Patient-grouped train/dev/test over admissions with a summary and a code; ``_50`` subsets."""
    eligible = [i for i in np.flatnonzero(c.has_ds).tolist() if gold_codes(c, i)]
    by_patient: dict[int, list[int]] = {}
    for i in eligible:
        by_patient.setdefault(int(c.subject[i]), []).append(i)
    patients = sorted(by_patient)
    order = rng.permutation(len(patients)).tolist()
    n = len(eligible)
    targets = [(name, max(1, round(frac * n))) for name, frac in fractions]
    split: dict[str, list[int]] = {"train": [], "dev": [], "test": []}
    t = 0
    for j in order:
        while t < len(targets) and len(split[targets[t][0]]) >= targets[t][1]:
            t += 1
        name = targets[t][0] if t < len(targets) else "train"
        split[name].extend(sorted(by_patient[patients[j]], key=lambda i: int(c.admit_day[i])))
    top = set(top50)
    out = {f"{s}_full": split[s] for s in ("train", "dev", "test")}
    out.update({f"{s}_50": [i for i in split[s] if top & set(gold_codes(c, i))] for s in ("train", "dev", "test")})
    return out


def micro_prf(gold: list[set[str]], pred: list[set[str]]) -> dict[str, float]:
    """Micro precision / recall / F1 over admissions."""
    tp = sum(len(g & p) for g, p in zip(gold, pred))
    n_pred, n_gold = sum(map(len, pred)), sum(map(len, gold))
    prec = tp / n_pred if n_pred else 0.0
    rec = tp / n_gold if n_gold else 0.0
    f1 = 2 * prec * rec / (prec + rec) if prec + rec else 0.0
    return {"micro_f1": round(f1, 6), "micro_precision": round(prec, 6), "micro_recall": round(rec, 6),
            "n_admissions": len(gold)}


def ceiling_and_floor(c: Cohort, plans: dict[int, Plan], splits: dict[str, list[int]],
                      top50: list[str]) -> dict[str, dict]:
    """Oracle (planted signal), negation-blind mention oracle and most-frequent baseline on test."""
    out: dict[str, dict] = {"oracle": {}, "oracle_mention": {}, "baseline_most_frequent": {}}
    for space, restrict in (("full", None), ("50", set(top50))):
        test, train = splits[f"test_{space}"], splits[f"train_{space}"]
        keep = (lambda s: s) if restrict is None else (lambda s: s & restrict)
        gold = [keep(set(gold_codes(c, i))) for i in test]
        out["oracle"][f"test_{space}"] = micro_prf(gold, [keep(set(plans[i].signalled)) for i in test])
        out["oracle_mention"][f"test_{space}"] = micro_prf(gold, [keep(set(plans[i].mentioned)) for i in test])
        train_sets = [keep(set(gold_codes(c, i))) for i in train]
        freq = Counter(x for s in train_sets for x in s)
        k = int(round(float(np.median([len(s) for s in train_sets])))) if train_sets else 0
        top_k = {x for x, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:k]}
        res = micro_prf(gold, [set(top_k) for _ in test])
        out["baseline_most_frequent"][f"test_{space}"] = {**res, "k": k}
    return out


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.write_bytes("".join(f"{x}\n" for x in lines).encode("ascii"))


# ---------------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------------
def _spec(size: str, scale: float | None) -> SizeSpec:
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    if scale is not None and not (0 < float(scale) <= MAX_SCALE):
        raise ValueError(f"scale must be in (0, {MAX_SCALE}], got {scale!r}")
    return _counts(SIZES[size], scale)


def expected_files() -> list[str]:
    return [*TABLE_FILES, *SPLIT_FILES, TOP50_FILE, SUMMARY_FILE]


def generate(out_dir: str | os.PathLike, size: str = "toy", seed: int = 0, scale: float | None = None,
             progress: bool = True) -> dict:
    """Write a complete fixture to ``out_dir`` and return its summary (also ``out_dir/fixture.json``).

    Files are written to a temporary sibling folder first and moved in with ``fixture.json`` last, so an
    interrupted run never leaves a fixture that looks complete. Example:
    ``generate("outputs/fixture/toy", size="toy", seed=0)["counts"]["admissions_with_ds"]`` -> 1000.
    """
    spec = _spec(size, scale)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "splits").mkdir(parents=True)
    t0 = time.perf_counter()
    try:
        summary = _generate_into(tmp, spec, size, int(seed), scale, progress)
        _move_into(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        print(f"mcanb.fixture: {size} (seed {seed}, scale {scale}) written to {out} in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return summary


def _move_into(tmp: Path, out: Path) -> None:
    (out / "splits").mkdir(parents=True, exist_ok=True)
    (out / SUMMARY_FILE).unlink(missing_ok=True)
    for name in expected_files():
        if name != SUMMARY_FILE:
            os.replace(tmp / name, out / name)
    os.replace(tmp / SUMMARY_FILE, out / SUMMARY_FILE)


def _generate_into(tmp: Path, spec: SizeSpec, size: str, seed: int, scale: float | None, progress: bool) -> dict:
    uni = build_universe(spec, seed)
    cohort = build_cohort(spec, uni, seed)
    pools = make_pools(spec.pool_sentences, seed)
    level = spec.compresslevel
    stats = NoteStats(Counter())
    sink = GzipSink(tmp / "NOTEEVENTS.csv.gz", level)
    sink.put(_header(NOTE_COLUMNS))
    plans, ds_quirks, next_row = write_discharge_summaries(sink, cohort, uni, pools, spec, seed, stats, progress)
    notes = plan_other_notes(cohort, spec, _stream(seed, 9))
    write_other_notes(sink, notes, cohort, pools, next_row, seed, stats, progress)
    files = {"NOTEEVENTS.csv.gz": sink.close()}
    files["DIAGNOSES_ICD.csv.gz"], dx_rows = write_code_table(tmp / "DIAGNOSES_ICD.csv.gz", cohort, "dx", level)
    files["PROCEDURES_ICD.csv.gz"], px_rows = write_code_table(tmp / "PROCEDURES_ICD.csv.gz", cohort, "px", level)
    dict_dx, dict_px, missing = _dictionary_codes(cohort, uni, _stream(seed, 10))
    files["D_ICD_DIAGNOSES.csv.gz"] = write_dictionary(tmp / "D_ICD_DIAGNOSES.csv.gz", dict_dx, uni.desc, level)
    files["D_ICD_PROCEDURES.csv.gz"] = write_dictionary(tmp / "D_ICD_PROCEDURES.csv.gz", dict_px, uni.desc, level)
    top50 = top50_codes(cohort)
    splits = make_splits(cohort, top50, _stream(seed, 11), TOY_SPLIT_FRACTIONS if size == "toy" else SPLIT_FRACTIONS)
    for name, idx in splits.items():
        _write_lines(tmp / f"splits/{name}_hadm_ids.csv", (str(cohort.hadm[i]) for i in idx))
    _write_lines(tmp / TOP50_FILE, top50)
    summary = _summary(size, seed, scale, spec, cohort, uni, stats, ds_quirks, dx_rows, px_rows, missing,
                       splits, top50, plans, files, sink.uncompressed)
    (tmp / SUMMARY_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return summary


def _code_quirks(c: Cohort, uni: Universe) -> dict[str, int]:
    dx_codes = [x for row in c.dx for x in row if x]
    px_codes = [x for row in c.px for x in row if x]
    px_set = set(px_codes)
    lz = sorted(x for x in px_set if x.startswith("0"))
    cast = {x: caml_int_cast(x) for x in lz}
    return {
        "v_code_rows": sum(x.startswith("V") for x in dx_codes),
        "e_code_rows": sum(x.startswith("E") for x in dx_codes),
        "leading_zero_dx_rows": sum(x[0] == "0" for x in dx_codes),
        "leading_zero_px_rows": sum(x[0] == "0" for x in px_codes),
        "leading_zero_px_codes": len(lz),
        "int_cast_collisions": sum(cast[x] in px_set for x in lz),
        "int_cast_bogus": sum(cast[x] not in uni.desc for x in lz),
    }


def _token_stats(tokens: list[int]) -> dict[str, float]:
    """Length of the CAML documents (an admission's summaries joined) over a sample of admissions."""
    t = np.asarray(tokens, dtype=np.float64)
    return {"sample_size": len(t), "mean": round(float(t.mean()), 1), "median": float(np.median(t)),
            "max": int(t.max()), "share_over_2500": round(float((t > 2500).mean()), 4),
            "share_over_512": round(float((t > 512).mean()), 4)}


def _summary(size: str, seed: int, scale: float | None, spec: SizeSpec, c: Cohort, uni: Universe,
             stats: NoteStats, ds_quirks: dict[str, int], dx_rows: dict, px_rows: dict, missing: list[str],
             splits: dict[str, list[int]], top50: list[str], plans: dict[int, Plan], files: dict,
             note_bytes: int) -> dict:
    ds = np.flatnonzero(c.has_ds).tolist()
    counts = {
        "admissions": len(c.hadm), "admissions_with_ds": len(ds),
        "admissions_without_ds": int((~c.has_ds).sum()),
        "patients": int(len(np.unique(c.subject))), "patients_with_ds": int(len(np.unique(c.subject[c.has_ds]))),
        "notes": int(sum(stats.by_category.values())), "notes_by_category": dict(sorted(stats.by_category.items())),
        "discharge_summary_rows": ds_quirks["discharge_summary_rows"], "addendum_rows": ds_quirks["addendum_rows"],
        "diagnoses_icd_rows": dx_rows["rows"], "procedures_icd_rows": px_rows["rows"],
        "distinct_dx_codes": len({x for i in ds for x in c.dx[i] if x}),
        "distinct_px_codes": len({x for i in ds for x in c.px[i] if x}),
        "distinct_codes": len({x for i in ds for x in gold_codes(c, i)}),
        "codes_per_admission_mean": round(float(np.mean([len(gold_codes(c, i)) for i in ds])), 3),
        "split_sizes": {k: len(v) for k, v in splits.items()},
        "noteevents_uncompressed_bytes": note_bytes,
        "text_bytes": stats.text_chars + stats.text_bytes,
        "ds_document_caml_tokens": _token_stats(list(stats.doc_tokens.values())),
    }
    quirks = {
        "notes_multiline_text": stats.multiline, "notes_text_with_comma": stats.comma,
        "notes_text_with_double_quote": stats.quote, "notes_with_deid_brackets": stats.deid,
        "notes_with_non_ascii": stats.non_ascii, "discharge_summaries_with_section_headers": stats.ds_sections,
        "discharge_summaries_with_doses": stats.ds_doses, "addendum_rows": ds_quirks["addendum_rows"],
        "admissions_with_addendum": ds_quirks["admissions_with_addendum"],
        "admissions_with_addendum_before_report": ds_quirks["admissions_with_addendum_before_report"],
        "admissions_with_two_reports": ds_quirks["two_report_rows"],
        "categories_with_trailing_space": sum(1 for k in stats.by_category if k != k.rstrip()),
        "notes_without_hadm_id": stats.no_hadm, "iserror_notes": stats.iserror,
        "iserror_discharge_summaries": stats.iserror_ds, "admissions_without_ds": counts["admissions_without_ds"],
        "admissions_with_ds_but_no_code": c.quirk_rows["admissions_with_ds_but_no_code"],
        "empty_code_rows": dx_rows["empty"] + px_rows["empty"],
        "duplicate_admission_code_rows": dx_rows["duplicates"] + px_rows["duplicates"],
        "codes_missing_from_d_icd": len(missing), **_code_quirks(c, uni),
    }
    freq = Counter(x for i in ds for x in gold_codes(c, i))
    zipf = {"top_code": top50[0], "top_code_admission_share": round(freq[top50[0]] / max(1, len(ds)), 4),
            "codes_seen_once": sum(1 for v in freq.values() if v == 1),
            "codes_seen_at_most_5_times": sum(1 for v in freq.values() if v <= 5)}
    params = {k: v for k, v in globals().items() if k.isupper() and isinstance(v, (int, float, tuple))
              and k.startswith(("SIGNAL", "ABBREV", "DX_SEC", "PX_SEC", "CHIEF", "EXTRA", "DISTRACT", "UNCODED",
                                "ZIPF", "DS_LEN", "OTHER_LEN", "NON_ASCII"))}
    return {
        "generator": "mcanb.fixture", "version": GENERATOR_VERSION, "size": size, "seed": seed,
        "scale": None if scale is None else float(scale), "spec": asdict(spec), "parameters": params,
        "counts": counts, "quirks": quirks, "code_frequency": zipf, "missing_from_d_icd": missing,
        **ceiling_and_floor(c, plans, splits, top50), "files": files,
    }


def ensure(out_dir: str | os.PathLike, size: str = "toy", seed: int = 0, scale: float | None = None,
           progress: bool = False) -> Path:
    """Return ``out_dir`` holding the requested fixture, generating it only when absent or different.

    Idempotent: when ``fixture.json`` matches (size, seed, scale, version) and every file is there with its
    recorded size, nothing is written.
    """
    out = Path(out_dir)
    if not is_current(out, size, seed, scale):
        generate(out, size=size, seed=seed, scale=scale, progress=progress)
    return out


def is_current(out: Path, size: str, seed: int, scale: float | None) -> bool:
    """Whether ``out`` holds a complete fixture of these settings and of this generator version."""
    try:
        s = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = (GENERATOR_VERSION, size, int(seed), None if scale is None else float(scale))
    if (s.get("version"), s.get("size"), s.get("seed"), s.get("scale")) != want:
        return False
    for name in expected_files():
        if not (out / name).is_file():
            return False
    return all((out / name).stat().st_size == meta["bytes"] for name, meta in s.get("files", {}).items())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mcanb.fixture", description=__doc__.split("\n")[0])
    p.add_argument("--size", choices=sorted(SIZES), default="toy")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", type=float, default=None, help="multiply the counts (0.01 = 1 %% of MIMIC-III)")
    p.add_argument("--force", action="store_true", help="regenerate even if an identical fixture is there")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    a = p.parse_args(argv)
    if a.force or not is_current(Path(a.out), a.size, a.seed, a.scale):
        generate(a.out, size=a.size, seed=a.seed, scale=a.scale, progress=not a.quiet)
    else:
        print(f"mcanb.fixture: {a.out} is up to date", file=sys.stderr)
    s = json.loads((Path(a.out) / SUMMARY_FILE).read_text(encoding="utf-8"))
    print(json.dumps({k: s[k] for k in ("counts", "oracle", "baseline_most_frequent")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
