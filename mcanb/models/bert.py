"""The BERT family: BERT-trun and BERT-hier with a fully connected (FCN) or label-wise attention (LAN) head.

Ji, Hölttä & Marttinen 2021, §3.2–3.4 and Figure 2:

* **BERT-trun**: the first 512 word pieces (``[CLS]`` + 510 + ``[SEP]``), the final ``[CLS]`` state C, and an FCN
  (dropout -> linear -> sigmoid in the loss).
* **BERT-hier** (the default, ``hier_variant="paper"``): the note (up to 2,500 preprocessed tokens) cut into
  segments of at most ``segment_length`` word pieces, each with its own ``[CLS]``/``[SEP]`` and positions. All real
  segments of a batch go through the encoder in **one** pass (padding segments are never encoded). One
  ``nn.TransformerEncoderLayer`` with PyTorch's defaults (8 heads, feed-forward 2,048, ReLU, post-norm) runs over
  the segments' ``[CLS]`` states with a learned segment-position embedding: the "additional transformer network"
  of §3.2. This size is the one whose count matches the paper's 115 M (top-50) and 128 M (full) parameters for
  BERT-hier + LAN with a BERT-base encoder (§3.4; tests/test_bert.py counts it). Then either
  - FCN on the max-pool of the segments' second-level states ("the classifier follows the same set-up of the
    truncated version", §3.2), or
  - LAN over all token states (``A = softmax(H·U)``, ``V = Aᵀ·H``, one logit per label, §3.3), with the project's
    one :class:`~mcanb.models.label_attention.LabelAttention` (float32 softmax, padding masked). §3.3 says H is the
    encoder's last layer over the note's n tokens, and the paper's parameter count says the segment transformer is
    part of BERT-hier + LAN; the text does not say how the two meet. Our reading: H is the encoder's last layer
    for every token, except that each segment's ``[CLS]`` row holds that segment's second-level state, so n stays
    the number of tokens and the second level reaches the label attention through the segment summaries only.
* ``hier_variant="segment_context"``: the project's earlier, larger design, kept for comparison. Pre-norm GELU
  transformer layers with a final LayerNorm (give ``segment_layers=2``, ``segment_ff=None`` for 4 × hidden, i.e.
  3,072 at BERT-base, to get the earlier model: 123.2 M / 136.8 M parameters), and LAN reads every token state
  *plus* its segment's second-level state, so every token sees both levels. Not described by the paper.

``segment_layers=0`` drops the second level: with ``segment_length=128``, ``max_segments=24`` and LAN that is
PLM-ICD (Huang et al. 2022), the strongest public PLM baseline (``parameters/03_hierarchy/mimic3_50_plmicd.yaml``).

Inputs follow the coding-model contract: ``input_ids (B, T)`` are word pieces **without** special tokens (as
``mcanb.wordpiece`` caches them) and ``attention_mask (B, T)`` marks the real ones; the model adds the special
tokens. The encoder is any Hugging Face encoder, by hub id or directory (``mcanb.encoders``). Explained in
notebooks/03_hierarchy.ipynb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .label_attention import LabelAttention, check_impl
from .outputs import CodingOutput, coding_loss

HEADS = ("fcn", "lan")
POOLINGS = ("max", "mean")
HIER_VARIANTS = ("paper", "segment_context")
SEGMENT_INITS = ("identity", "default")


@dataclass
class BertHierConfig:
    """Settings of BERT-hier; defaults as Ji et al. 2021 §3.2–3.4 (2,500 tokens, segments of 512, dropout 0.1)."""

    num_codes: int                   # 50 (top-50) or 8,921 (full)
    encoder: str = "bert-base-uncased"  # hub id, local directory or "local:minilm" (mcanb.encoders.resolve_encoder)
    encoder_init: str = "pretrained"  # "pretrained" | "random" (same architecture, no pretraining)
    cls_token_id: int = 101          # the encoder tokenizer's [CLS]/[SEP]/[PAD] ids (bert-base-uncased values;
    sep_token_id: int = 102          #   mcanb.bert_study fills them from the tokenizer)
    pad_token_id: int = 0
    segment_length: int = 512        # word pieces per segment incl. [CLS]/[SEP] (paper: 512; PLM-ICD: 128)
    max_segments: int = 8            # segments per note; 2,500 words ≈ 3,300 pieces ≈ 7 segments of 510
    head: str = "lan"                # "fcn" | "lan"
    segment_layers: int = 1          # transformer layers over segments (paper: 1, see the module docstring; 0 = none)
    segment_heads: int = 8           # attention heads of that transformer (must divide the hidden size; paper: 8)
    segment_ff: int | None = 2048    # its feed-forward width (PyTorch's default, the paper's count); None: 4 x hidden
    hier_variant: str = "paper"      # "paper" | "segment_context" (the earlier design; module docstring)
    segment_init: str = "default"    # "default": PyTorch's initialisation; "identity": the second level's residual
                                     #   branches start at zero, so it starts as (LayerNorms of) its input
    pooling: str = "max"             # FCN over segments: "max" | "mean" of the segment states
    lan_projection_dim: int | None = None  # None: the paper's A = softmax(H·U); an int: LAAT/PLM-ICD's tanh(W·H)
    dropout: float = 0.1             # head dropout (the encoder keeps its own, 0.1 in BERT)
    gradient_checkpointing: bool = False  # recompute encoder activations in backward (long notes on a GPU)
    encoder_batch_size: int | None = None  # segments per encoder call (None = all at once; bounds memory)
    attention_impl: str = "auto"     # LabelAttention implementation: "auto" | "dense" | "blocked"
    return_attention: bool = False   # put the LAN weights (B, num_codes, tokens) in CodingOutput.attention

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.segment_init not in SEGMENT_INITS:
            raise ValueError(f"segment_init must be one of {SEGMENT_INITS}, got {self.segment_init!r}")
        if self.hier_variant not in HIER_VARIANTS:
            raise ValueError(f"hier_variant must be one of {HIER_VARIANTS}, got {self.hier_variant!r}")
        if self.segment_ff is not None and int(self.segment_ff) < 1:
            raise ValueError(f"segment_ff must be >= 1 or None (4 x hidden), got {self.segment_ff}")
        if self.encoder_init not in ("pretrained", "random"):
            raise ValueError(f"encoder_init must be 'pretrained' or 'random', got {self.encoder_init!r}")
        for name in ("num_codes", "segment_length", "max_segments", "segment_heads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.segment_length < 3:
            raise ValueError(f"segment_length must leave room for [CLS] and [SEP] (>= 3), got {self.segment_length}")
        if self.segment_layers < 0:
            raise ValueError(f"segment_layers must be >= 0, got {self.segment_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        check_impl(self.attention_impl)

    @property
    def max_pieces(self) -> int:
        """Word pieces (without special tokens) the model reads per note: ``max_segments * (segment_length - 2)``."""
        return self.max_segments * (self.segment_length - 2)


@dataclass
class BertTrunConfig(BertHierConfig):
    """Settings of BERT-trun: one segment of 512 word pieces, the [CLS] state, an FCN (Ji et al. 2021 §3.2)."""

    max_segments: int = 1
    head: str = "fcn"
    segment_layers: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.max_segments != 1 or self.segment_layers != 0:
            raise ValueError("BERT-trun reads one segment without a second level: max_segments must be 1 and "
                             f"segment_layers 0 (got {self.max_segments}, {self.segment_layers}); use bert_hier")


def split_segments(input_ids: Tensor, attention_mask: Tensor, config: BertHierConfig
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Cut ``(B, T)`` word pieces into ``[CLS] … [SEP]`` segments.

    Returns ``tokens (B, S, L)`` (PAD after ``[SEP]``), ``token_mask (B, S, L)`` bool (True on ``[CLS]``, real
    pieces and ``[SEP]``), and ``segment_mask (B, S)`` bool (segments holding at least one real piece), with
    ``L = segment_length`` and ``S = min(max_segments, ceil(T / (L - 2)))``.
    """
    B, T = input_ids.shape
    body = config.segment_length - 2
    S = max(1, min(config.max_segments, math.ceil(T / body)))
    width = S * body
    mask = attention_mask.bool()
    if T < width:
        pad = width - T
        input_ids = torch.nn.functional.pad(input_ids, (0, pad), value=config.pad_token_id)
        mask = torch.nn.functional.pad(mask, (0, pad), value=False)
    ids = input_ids[:, :width].reshape(B, S, body)
    mask = mask[:, :width].reshape(B, S, body)
    n_real = mask.sum(-1)                                            # (B, S) real pieces per segment
    L = config.segment_length
    tokens = torch.full((B, S, L), config.pad_token_id, dtype=input_ids.dtype, device=input_ids.device)
    tokens[:, :, 1: body + 1] = torch.where(mask, ids, torch.full_like(ids, config.pad_token_id))
    tokens[:, :, 0] = config.cls_token_id
    tokens.scatter_(2, (n_real + 1)[..., None], config.sep_token_id)  # [SEP] right after the last real piece
    positions = torch.arange(L, device=input_ids.device)
    token_mask = positions[None, None, :] < (n_real + 2)[..., None]
    segment_mask = n_real > 0
    segment_mask[:, 0] = True                                        # an empty note still has "[CLS] [SEP]"
    return tokens, token_mask & segment_mask[..., None], segment_mask


class BertCodingModel(nn.Module):
    """BERT-trun / BERT-hier with an FCN or LAN head (see the module docstring).

    Args:
        config: :class:`BertHierConfig` or :class:`BertTrunConfig`.
        encoder: an already built encoder module (tests, or a caller that loaded it); default: loaded from
            ``config.encoder`` with ``mcanb.encoders.load_encoder``.
    """

    def __init__(self, config: BertHierConfig, encoder: nn.Module | None = None):
        super().__init__()
        self.config = config
        if encoder is None:
            from ..encoders import load_encoder
            encoder = load_encoder(config.encoder, init=config.encoder_init)
            _check_special_ids(config)
        self.encoder = encoder
        if config.gradient_checkpointing:
            enable = getattr(encoder, "activation_checkpointing_enable", None)  # transformers >= 5.x name
            if enable is not None:
                enable({"use_reentrant": False})
            else:
                encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        h = encoder.config.hidden_size
        _check_encoder_fits(config, encoder.config)
        if config.segment_layers > 0:
            if h % config.segment_heads:
                raise ValueError(f"segment_heads={config.segment_heads} must divide the encoder's hidden size {h}")
            self.segment_position = nn.Embedding(config.max_segments, h)
            nn.init.normal_(self.segment_position.weight, std=0.02)
            ff = config.segment_ff or 4 * h
            if config.hier_variant == "paper":   # PyTorch's defaults: ReLU, post-norm
                layer = nn.TransformerEncoderLayer(h, config.segment_heads, dim_feedforward=ff, dropout=config.dropout,
                                                   batch_first=True)
                self.segment_norm = nn.Identity()
            else:
                layer = nn.TransformerEncoderLayer(h, config.segment_heads, dim_feedforward=ff, dropout=config.dropout,
                                                   activation="gelu", batch_first=True, norm_first=True)
                self.segment_norm = nn.LayerNorm(h)
            self.segment_encoder = nn.TransformerEncoder(layer, config.segment_layers, enable_nested_tensor=False)
            if config.segment_init == "identity":
                for block in self.segment_encoder.layers:      # zero the last projection of each residual branch
                    for last in (block.self_attn.out_proj, block.linear2):
                        nn.init.zeros_(last.weight)
                        nn.init.zeros_(last.bias)
        else:
            self.segment_position = self.segment_encoder = self.segment_norm = None
        self.dropout = nn.Dropout(config.dropout)
        if config.head == "fcn":
            self.classifier = nn.Linear(h, config.num_codes)
            self.label_attention = None
        else:
            self.classifier = None
            self.label_attention = LabelAttention(h, config.num_codes, projection_dim=config.lan_projection_dim,
                                                  impl=config.attention_impl)

    def encode_segments(self, tokens: Tensor, token_mask: Tensor, segment_mask: Tensor) -> Tensor:
        """``(B, S, L)`` segments -> ``(B, S, L, h)`` last-layer states; padding segments stay zero, unencoded."""
        B, S, L = tokens.shape
        flat_tokens, flat_mask = tokens[segment_mask], token_mask[segment_mask]    # (N, L): real segments only
        step = self.config.encoder_batch_size or flat_tokens.shape[0]
        states = torch.cat([
            self.encoder(input_ids=flat_tokens[i: i + step],
                         attention_mask=flat_mask[i: i + step].long()).last_hidden_state
            for i in range(0, flat_tokens.shape[0], step)])
        out = states.new_zeros(B, S, L, states.shape[-1])
        out[segment_mask] = states
        return out

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None,
                labels: Tensor | None = None) -> CodingOutput:
        """``input_ids (B, T)`` word pieces without special tokens -> ``CodingOutput`` with ``logits (B, num_codes)``."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids, dtype=torch.bool)
        tokens, token_mask, segment_mask = split_segments(input_ids, attention_mask, self.config)
        states = self.encode_segments(tokens, token_mask, segment_mask)          # (B, S, L, h)
        segments = states[:, :, 0]                                               # (B, S, h) [CLS] per segment
        if self.segment_encoder is not None:
            pos = self.segment_position(torch.arange(segments.shape[1], device=segments.device))
            segments = self.segment_norm(self.segment_encoder(segments + pos, src_key_padding_mask=~segment_mask))
            segments = segments.masked_fill(~segment_mask[..., None], 0.0)
        attention = None
        if self.classifier is not None:
            logits = self.classifier(self.dropout(self._pool(segments, segment_mask)))
        else:
            if self.segment_encoder is not None and self.config.hier_variant == "segment_context":
                states = states + segments[:, :, None, :]                        # each token sees its segment's context
            elif self.segment_encoder is not None:                               # paper: [CLS] rows carry the 2nd level
                states = torch.cat([segments[:, :, None, :].to(states.dtype), states[:, :, 1:]], dim=2)
            B, S, L, h = states.shape
            logits, attention = self.label_attention(self.dropout(states.reshape(B, S * L, h)),
                                                     token_mask.reshape(B, S * L), self.config.return_attention)
        logits = logits.float()
        return CodingOutput(loss=None if labels is None else coding_loss(logits, labels), logits=logits,
                            attention=attention)

    def init_output_bias(self, frequencies: Tensor) -> None:
        """Start each code's output bias at the log-odds of its training frequency (clipped to [1e-4, 1 - 1e-4]), so
        that the first predictions are the codes' prior instead of 0.5 everywhere. With a zero bias the early
        gradients mostly push every logit down, the same for every note; from the prior they carry what sets a note
        apart (the "prior" initialisation of Lin et al. 2017, focal loss, §3.3)."""
        p = torch.as_tensor(frequencies, dtype=torch.float32).clamp(1e-4, 1 - 1e-4)
        bias = self.classifier.bias if self.classifier is not None else self.label_attention.output_bias
        if bias.shape != p.shape:
            raise ValueError(f"{p.numel()} code frequencies for a model of {bias.numel()} codes")
        with torch.no_grad():
            bias.copy_(torch.log(p) - torch.log1p(-p))

    def _pool(self, segments: Tensor, segment_mask: Tensor) -> Tensor:
        """``(B, S, h)`` -> ``(B, h)``: the one segment (trun), or max / mean over real segments (hier)."""
        if segments.shape[1] == 1:
            return segments[:, 0]
        if self.config.pooling == "mean":
            m = segment_mask[..., None].to(segments.dtype)
            return (segments * m).sum(1) / m.sum(1).clamp_min(1.0)
        return segments.masked_fill(~segment_mask[..., None], float("-inf")).amax(1)


def _check_special_ids(config: BertHierConfig) -> None:
    """The [CLS]/[SEP]/[PAD] ids must be those of ``config.encoder``'s tokenizer (the defaults are bert-base-uncased's:
    silently wrong for any other vocabulary). Skipped for an encoder saved without a tokenizer."""
    from ..encoders import EncoderNotFound, load_tokenizer
    try:
        tok = load_tokenizer(config.encoder)
    except EncoderNotFound:
        return
    bad = {k: (getattr(config, k), getattr(tok, k)) for k in ("cls_token_id", "sep_token_id", "pad_token_id")
           if getattr(tok, k) is not None and getattr(config, k) != getattr(tok, k)}
    if bad:
        raise ValueError(f"special token ids (config, tokenizer) {bad} do not match the tokenizer of "
                         f"{config.encoder!r}; pass its ids (mcanb.bert_study.model_config does)")


def _check_encoder_fits(config: BertHierConfig, enc) -> None:
    """Clear errors for settings the encoder cannot take (instead of an index error deep inside it)."""
    positions = getattr(enc, "max_position_embeddings", None)
    if positions is not None and config.segment_length > positions:
        raise ValueError(f"segment_length={config.segment_length} exceeds the encoder's {positions} positions")
    vocab = getattr(enc, "vocab_size", None)
    special = {"cls_token_id": config.cls_token_id, "sep_token_id": config.sep_token_id,
               "pad_token_id": config.pad_token_id}
    bad = {k: v for k, v in special.items() if vocab is not None and not 0 <= v < vocab}
    if bad:
        raise ValueError(f"{bad} outside the encoder's vocabulary of {vocab}; take them from its tokenizer")


def param_groups(model: BertCodingModel, *, encoder_lr: float, head_lr: float, layer_decay: float = 1.0,
                 weight_decay: float = 0.01, segment_lr: float | None = None) -> list[dict]:
    """AdamW parameter groups: one learning rate for the encoder and one for the heads (Ji et al. 2021 §3.4).

    ``segment_lr`` gives BERT-hier's second level (the segment transformer and its position embedding) its own rate;
    None: the heads' rate, as the paper's two groups have it.

    ``layer_decay < 1`` gives layer-wise learning rates: the top encoder layer gets ``encoder_lr``, each layer
    below ``layer_decay`` times the one above, the embeddings the smallest. Biases and LayerNorm weights get no
    weight decay (the usual BERT fine-tuning recipe). Groups with no parameters are left out.
    """
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    n_layers = int(getattr(model.encoder.config, "num_hidden_layers", 0))
    groups: dict[tuple[float, float], list[Tensor]] = {}

    def add(p: Tensor, lr: float, name: str) -> None:
        wd = 0.0 if p.ndim < 2 or "norm" in name.lower() else weight_decay
        groups.setdefault((lr, wd), []).append(p)

    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name.startswith("segment_") and segment_lr is not None:
            add(p, segment_lr, name)
            continue
        if not name.startswith("encoder."):
            add(p, head_lr, name)
            continue
        depth = _layer_index(name, n_layers)            # 0 = embeddings, 1..n = layers (n also: above them)
        add(p, encoder_lr * layer_decay ** (n_layers - depth), name)
    return [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]


def _layer_index(name: str, n_layers: int) -> int:
    """0 for embeddings, ``i + 1`` for encoder layer ``i``, ``n_layers`` for anything else in the encoder."""
    parts = name.split(".")
    if "embeddings" in parts:
        return 0
    for i, part in enumerate(parts[:-1]):
        if part in ("layer", "layers") and parts[i + 1].isdigit():
            return int(parts[i + 1]) + 1
    return n_layers
