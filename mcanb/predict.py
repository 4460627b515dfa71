"""Codes for a new note from a trained run: top codes with descriptions, scores and attention spans.

``mcanb predict --model outputs/04_cnn_retraining/toy/caml/seed13 --text note.txt`` rebuilds the model that
``mcanb.train.fit`` saved in that folder: ``params.yaml`` names the model, its config overrides, ``max_length``,
``data_dir`` and ``label_space``; ``checkpoints/best.pt`` holds the weights; the preprocessing output in
``data_dir`` holds the vocabulary (``vocab.csv``), the codes with descriptions (``<label_space>/labels.csv``) and
the tokeniser settings (``preprocess_config.yaml``), so a new note is tokenised exactly like the training notes.
Label-attention models (CAML, DR-CAML, MultiResCNN, LAAT, BERT with LAN) are rebuilt with ``return_attention=True``,
and each predicted code comes with the text spans its attention weighted most. BERT runs (notebooks 02 and 03) load
their encoder and tokenizer from the ``model_config`` in ``params.yaml``; their attention over word pieces is summed
per word of the note.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import yaml

from . import checkpoint as ckpt
from . import text as textmod
from .errors import UserError, read_yaml_mapping
from .models import PLM_MODELS
from .names import MODEL_NAMES
from .paths import resolve, resolve_near


@dataclass
class Span:
    """A window of the note around one highly attended token."""

    text: str          # the original characters of the window
    token: str         # the attended token (as tokenised)
    weight: float      # its attention weight (weights of one code sum to 1 over the note's tokens)
    position: int      # its token position


@dataclass
class CodePrediction:
    code: str
    description: str
    score: float
    spans: list[Span] = field(default_factory=list)


@dataclass
class Prediction:
    model: str
    run_dir: Path
    label_space: str
    n_tokens: int          # tokens of the note after tokenisation
    n_unknown: int         # of which not in the training vocabulary
    truncated: bool        # the note was cut at max_length tokens
    codes: list[CodePrediction]


def _read_params(run_dir: Path) -> dict:
    """The model folder's ``params.yaml``; a ``UserError`` for a folder that holds no trained model, or a model
    name that :mod:`mcanb.models` does not know."""
    from .runs import not_a_model

    f = run_dir / "params.yaml"
    if not f.exists():
        raise UserError(f"{f}: missing; {not_a_model(run_dir)}")
    doc = read_yaml_mapping(f)
    if any(k not in doc for k in ("model", "data_dir", "label_space")):
        raise UserError(not_a_model(run_dir))
    if doc["model"] not in MODEL_NAMES:
        from .params import close_names
        close = close_names(doc["model"], MODEL_NAMES, n=1)
        raise UserError(f"{f}: model: unknown {doc['model']!r}" + (f" (did you mean {close[0]}?)" if close else "")
                        + f"; expected one of {', '.join(MODEL_NAMES)}")
    return doc


def _load_best(run_dir: Path, model: torch.nn.Module) -> None:
    """The weights of ``checkpoints/best.pt`` into ``model``; a damaged file names how to retrain the run."""
    from .runs import retrain_advice

    best = run_dir / "checkpoints" / "best.pt"
    if not best.exists():
        raise UserError(f"{best}: missing: the run did not finish an epoch; {retrain_advice(run_dir)}")
    ckpt.load_model_state(best, model, ckpt.load(best, "best", remedy=lambda: retrain_advice(run_dir))["model"])
    model.eval()


def token_offsets(note: str, token_rule: str = "caml", engine: str = "re") -> list[tuple[str, int, int]]:
    """``[(token, start, end)]``: :func:`mcanb.text.tokenize` with character offsets into ``note``."""
    if engine == "regex":
        import regex
        finditer = regex.compile(textmod.PATTERN, regex.UNICODE | regex.MULTILINE | regex.DOTALL).finditer
    else:
        finditer = re.compile(textmod.PATTERN, re.UNICODE | re.MULTILINE | re.DOTALL).finditer
    out = [(m.group().lower(), m.start(), m.end()) for m in finditer(note) if textmod._keep(m.group(), token_rule)]
    assert [t for t, _, _ in out] == textmod.tokenize(note, token_rule, engine), "offsets disagree with tokenize"
    return out


class Predictor:
    """A trained model with the vocabulary, codes and tokeniser it was trained with (see module doc)."""

    def __init__(self, run_dir: str | Path):
        from .models import build_model, config_fields
        from .processed import Processed

        self.run_dir = run_dir = resolve(run_dir)
        p = _read_params(run_dir)
        self.name, self.label_space, self.max_length = p["model"], str(p["label_space"]), int(p.get("max_length", 2500))
        data = resolve_near(p["data_dir"], run_dir)          # outputs/...: the outputs folder holding this run
        needs = [data / self.label_space / "labels.csv"] + ([] if self.name in PLM_MODELS else [data / "vocab.csv"])
        for need in needs:
            if not need.exists():
                raise FileNotFoundError(f"{need}: missing; {run_dir}/params.yaml points at data_dir {data}")
        self.labels = pd.read_csv(data / self.label_space / "labels.csv", dtype={"code": str, "description": str},
                                  keep_default_na=False)
        prep = data / "preprocess_config.yaml"
        prep_cfg = yaml.safe_load(prep.read_text()) if prep.exists() else {}
        self.token_rule, self.engine = prep_cfg.get("token_rule", "caml"), prep_cfg.get("regex_engine", "re")
        self.plm = None
        if self.name in PLM_MODELS:
            self._init_plm(run_dir, p)
            return
        self.vocab = (data / "vocab.csv").read_text(encoding="utf-8").split("\n")[:-1]
        self.w2i = {w: i for i, w in enumerate(self.vocab, start=1)}
        emb_path = data / "embeddings.npy"
        emb = (torch.from_numpy(np.array(np.load(emb_path, mmap_mode="r"), dtype=np.float32))
               if emb_path.exists() else None)
        config = {"num_codes": len(self.labels), **(p.get("model_overrides") or {})}
        if emb is None:
            config.setdefault("vocab_size", len(self.vocab) + 2)
        if "filter_sizes" in config:
            config["filter_sizes"] = tuple(config["filter_sizes"])
        self.attends = "return_attention" in config_fields(self.name)
        if self.attends:
            config["return_attention"] = True
        if self.name == "dr_caml":
            from .cnn_study import description_ids
            labels_only = Processed(data, self.label_space, self.vocab, self.labels, {}, None,
                                    self.token_rule, self.engine)
            config["description_ids"] = description_ids(labels_only)
        self.model = build_model(self.name, config, embeddings=emb)
        _load_best(run_dir, self.model)

    def _init_plm(self, run_dir: Path, p: dict) -> None:
        """The BERT family: the encoder and tokenizer named in ``model_config``, then the checkpoint's weights."""
        from .encoders import load_tokenizer, tokenizer_key
        from .models import build_model

        config = dict(p["model_config"])
        if str(config["encoder"]).startswith("outputs/"):      # a local encoder: in the outputs folder of this run
            config["encoder"] = str(resolve_near(config["encoder"], run_dir))
        self.attends = config.get("head") == "lan"
        config["return_attention"] = self.attends
        self.plm = load_tokenizer(config["encoder"])
        if p.get("tokenizer") and tokenizer_key(self.plm) != p["tokenizer"]:   # pieces the model never saw
            raise UserError(f"{run_dir}: the tokenizer of {config['encoder']} is not the one this model was trained "
                            "with (its files changed since); the model would read other word pieces than it learnt")
        self.max_words = int(p.get("max_words", 2500))
        self.model = build_model(self.name, config)
        _load_best(run_dir, self.model)

    @torch.no_grad()
    def _plm_scores(self, toks: list[tuple[str, int, int]]) -> tuple[np.ndarray, np.ndarray | None, int, bool]:
        """Scores ``(C,)``, per-word attention ``(C, words)`` (a word's pieces summed) or ``None``, unknown pieces and
        whether the note was cut (at ``max_words`` words or at the model's ``max_pieces`` word pieces)."""
        cfg = self.model.config
        words = [t for t, _, _ in toks[: self.max_words]]
        enc = self.plm(words, is_split_into_words=True, add_special_tokens=False)
        ids, word_of = enc["input_ids"][: cfg.max_pieces], enc.word_ids()[: cfg.max_pieces]
        cut = len(toks) > self.max_words or len(enc["input_ids"]) > cfg.max_pieces
        x = torch.tensor([ids], dtype=torch.long)
        out = self.model(x, torch.ones_like(x, dtype=torch.bool), None)
        scores = torch.sigmoid(out.logits.float())[0].numpy()
        att = None
        if self.attends and out.attention is not None:
            body, length = cfg.segment_length - 2, cfg.segment_length
            k = np.arange(len(ids))
            pos = (k // body) * length + k % body + 1          # piece k sits after its segment's [CLS]
            att = np.zeros((len(scores), len(toks)), dtype=np.float32)
            np.add.at(att.T, np.asarray(word_of), out.attention[0].float().numpy()[:, pos].T)
        return scores, att, int(sum(i == self.plm.unk_token_id for i in ids)), cut

    @torch.no_grad()
    def predict(self, note: str, top: int = 10, spans: int = 3, window: int = 4) -> Prediction:
        """The ``top`` codes by score; for label-attention models each with up to ``spans`` non-overlapping windows
        of ``window`` tokens either side of the most attended tokens."""
        toks = token_offsets(note, self.token_rule, self.engine)
        if not toks:
            raise UserError("the note has no tokens after tokenisation (empty, or only numbers and punctuation); "
                            "expected the text of a clinical note")
        if self.plm is not None:
            scores, att, n_unknown, truncated = self._plm_scores(toks)
            toks = toks[: self.max_words]
        else:
            truncated = len(toks) > self.max_length
            toks = toks[: self.max_length]
            unk = len(self.vocab) + 1
            ids = torch.tensor([[self.w2i.get(t, unk) for t, _, _ in toks]], dtype=torch.long)
            out = self.model(ids, torch.ones_like(ids, dtype=torch.bool), None)
            scores = torch.sigmoid(out.logits.float())[0].numpy()
            att = out.attention[0].float().numpy() if self.attends and out.attention is not None else None
            n_unknown = int((ids == unk).sum())
        order = np.lexsort((np.arange(len(scores)), -scores))[:top]   # ties: lower code index first (metrics)
        codes = []
        for c in order:
            row = self.labels.iloc[int(c)]
            found = [] if att is None else self._spans(note, toks, att[c], spans, window)
            codes.append(CodePrediction(row["code"], row["description"], float(scores[c]), found))
        return Prediction(self.name, self.run_dir, self.label_space, len(toks), n_unknown, truncated, codes)

    @staticmethod
    def _spans(note, toks, weights: np.ndarray, n: int, window: int) -> list[Span]:
        taken = np.zeros(len(toks), dtype=bool)
        out = []
        for pos in np.argsort(-weights, kind="stable"):
            if len(out) == n:
                break
            if taken[pos] or (out and weights[pos] < 1.0 / len(toks)):   # later spans: above-uniform weight only
                continue
            lo, hi = max(0, pos - window), min(len(toks) - 1, pos + window)
            taken[lo: hi + 1] = True
            snippet = ("…" if lo > 0 else "") + " ".join(note[toks[lo][1]: toks[hi][2]].split()) + (
                "…" if hi < len(toks) - 1 else "")
            out.append(Span(snippet, toks[pos][0], float(weights[pos]), int(pos)))
        return out


def load_predictor(run_dir: str | Path) -> Predictor:
    return Predictor(run_dir)


def format_prediction(pred: Prediction) -> str:
    """Human-readable lines: a header, then rank, code, score, description and quoted attention spans."""
    head = (f"model {pred.model} ({'top-50' if pred.label_space == '50' else 'full'} codes) from {pred.run_dir}\n"
            f"note: {pred.n_tokens} tokens, {pred.n_unknown} not in the training vocabulary"
            + (" (cut at the model's max_length)" if pred.truncated else ""))
    lines = [head, f"{'rank':>4}  {'code':<8} {'score':>6}  description"]
    for i, c in enumerate(pred.codes, 1):
        lines.append(f"{i:>4}  {c.code:<8} {c.score:6.3f}  {c.description or '(no description)'}")
        for s in c.spans:
            lines.append(f"{'':>14}attention {s.weight:.3f} on '{s.token}': \"{s.text}\"")
    return "\n".join(lines)
