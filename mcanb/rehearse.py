"""``mcanb study PROFILE --rehearse``: the real study at MIMIC-III scale, on this machine, before anyone rents a GPU.

The same profile and parameter files, with four substitutions, each written into a derived profile
(``outputs/rehearsal/profiles/<profile>.yaml``) or this module's environment record, never hidden:

* the full-scale MIMIC-shaped fixture (``mcanb.fixture``, size ``full``; generated into ``outputs/fixtures`` when
  missing) in place of ``$MIMIC3_DIR``, with its own split files (``splits_dir`` null, no CAML hash check);
* each hub encoder replaced by a **stand-in** of the same architecture and vocabulary size with random weights: a
  ``BertConfig`` from the encoder's model-card facts (``mcanb.published.ENCODER_CARDS``) and a WordPiece tokenizer
  of that vocabulary size and casing trained on the fixture's top-50 training notes, whichever the profile (one
  per (vocabulary size, casing), cached and shared by the profiles). Run names, row labels and caches keep the hub ids:
  only :func:`mcanb.encoders.resolve_encoder` answers with the stand-in's directory;
* one seed per run (the others have the same shapes; projections multiply by the profile's seeds), micro-batch
  optimizer steps (``grad_accum_steps: 1``) of at most ``batch_docs`` notes (``batch_size``; every note keeps its
  real length and segments: on a shared 2-core CPU one BERT-base segment of 512 word pieces takes 5-20 s forward and
  backward, so a step of 2 notes × 7 segments would take minutes per run; projections count FLOPs per note, not per
  step) and ``amp: off`` when there is no CUDA device;
* every training run capped at ``max_steps`` optimizer steps (:func:`apply_caps`, called by ``mcanb.train.fit``)
  and evaluated on ``eval_docs`` documents of dev and of test at the real code count: the rehearsal's split files
  (:func:`eval_splits`) keep the whole full training split, cut the top-50 one to MIMIC-III's size (CAML's share)
  and cut dev and test, so every later step (predictions, bootstrap, frequency analysis, report) sees the same
  documents;
* nothing else: asserts stay on (``PYTHONOPTIMIZE`` is removed from the child's environment). The notebooks report
  results as facts (a model at or below the most-frequent floor is a printed ``WARNING``, which one step of a
  random-weight stand-in always prints), and assert only what guards the code, which the real run needs too.

Everything else runs in full: preprocessing with word2vec, word pieces of every note for each tokenizer, batching,
TF-IDF baselines, the frequency analysis and the report. The runs that need no encoder (preprocessing, the CNNs)
go first, then the stand-ins are built from the preprocessed training notes and the rest of the profile runs. Outputs go to ``outputs/rehearsal/`` (the study runs in a
child process with ``MCANB_OUTPUTS`` there), so they never mix with real results; ``fit`` refuses the caps
anywhere else. A failure (out of memory, a shape or length error, a run colliding with another) stops the
rehearsal with the real error; :mod:`mcanb.rehearse_table` then prints what each run cost and the projected time
of the full study. Explained in the README section "Rehearsing the real study".
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

from . import identity, published
from .rehearsal_env import ENV  # the switch the engine and the encoder loader read (mcanb.rehearsal_env)
# optimizer steps per training run; notes per micro-batch (at most); dev and test documents per label space (two:
# with one, no code is both present and absent, macro-AUC is undefined and the notebooks' summaries lack it)
DEFAULT_CAPS = {"max_steps": 1, "batch_docs": 1, "eval_docs": 2}


def encoder_facts(hub_id: str) -> "published.EncoderCard":
    """The model card of ``hub_id`` (``mcanb.published.ENCODER_CARDS``): the architecture a same-shape stand-in needs."""
    for card in published.ENCODER_CARDS.values():
        if card.hub_id == hub_id:
            return card
    raise ValueError(f"encoder {hub_id!r}: no recorded architecture in mcanb.published.ENCODER_CARDS; a rehearsal "
                     "needs its layers, hidden size, heads and vocabulary (add its model card's facts there)")


# ---------------------------------------------------------------------------------------------- inside the study

def eval_splits(fixture: Path, out: Path, n: int) -> dict[str, int]:
    """Split files in ``out``: the fixture's whole full training split, its top-50 training split cut (evenly
    spaced) to CAML's share of the full one, and ``n`` evenly spaced documents of dev and test per label space (a
    top-50 document stays in its full split). Returns the split sizes the real run would have: the fixture's full
    splits, and the top-50 splits at CAML's shares (``mcanb.splits.CAML_SIZES``: 8,066 of 47,723 training notes;
    the fixture's own top-50 split holds every admission with a top-50 code, about six times as many)."""
    from .splits import CAML_SIZES

    src, out = fixture / "splits", Path(out)
    out.mkdir(parents=True, exist_ok=True)
    read = lambda name: (src / name).read_text().split()  # noqa: E731
    sizes = {}
    for split in ("train", "dev", "test"):
        full, top = read(f"{split}_full_hadm_ids.csv"), read(f"{split}_50_hadm_ids.csv")
        share = CAML_SIZES[(split, "50")] / CAML_SIZES[(split, "full")]
        sizes[f"{split}_full"], sizes[f"{split}_50"] = len(full), min(len(top), round(share * len(full)))
        if split == "train":
            top = _spaced(top, sizes["train_50"])
        else:
            top = _spaced(top, n)
            keep = set(top) | set(_spaced(full, n))
            full = [h for h in full if h in keep]
        for name, ids in ((f"{split}_full_hadm_ids.csv", full), (f"{split}_50_hadm_ids.csv", top)):
            (out / name).write_text("".join(f"{h}\n" for h in ids))
    for extra in src.iterdir():
        if not extra.name.endswith("_hadm_ids.csv"):
            (out / extra.name).write_bytes(extra.read_bytes())
    return sizes


def _spaced(ids: list[str], n: int) -> list[str]:
    if len(ids) <= n:
        return list(ids)
    step = (len(ids) - 1) / max(n - 1, 1)
    return [ids[round(i * step)] for i in range(n)]


# ---------------------------------------------------------------------------------------------- stand-ins

def _cached(path: Path, record: dict) -> bool:
    try:
        return json.loads((path / "standin.json").read_text()).get("record") == record
    except (OSError, ValueError):
        return False


def build_stand_ins(hub_ids: list[str], texts: list[str], out: Path, *, facts: Callable[[str], published.EncoderCard]
                    = encoder_facts, echo: Callable[[str], None] = print) -> dict[str, str]:
    """``{hub id: directory}`` of random-weight stand-ins (``BertModel`` + tokenizer), built once and cached.

    One tokenizer per (vocabulary size, casing), trained on ``texts``; one weights directory per architecture and
    tokenizer, shared by encoders of the same shape (their run folders stay apart: they are keyed by hub id)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from .encoders import _quiet_transformers, train_wordpiece

    _quiet_transformers()
    corpus = identity.of_texts(texts)
    made: dict[str, str] = {}
    for hub_id in dict.fromkeys(hub_ids):
        f = facts(hub_id)
        case = "cased" if f.cased else "uncased"
        tok_dir = out / f"tokenizer-{f.vocab_size}-{case}"
        tok_record = {"vocab_size": f.vocab_size, "cased": f.cased, "corpus": corpus, "documents": len(texts),
                      "code": identity.code_version("encoders")}          # train_wordpiece's code
        if not _cached(tok_dir, tok_record):
            t0 = time.perf_counter()
            tok = train_wordpiece(texts, f.vocab_size, tok_dir, lowercase=not f.cased)
            (tok_dir / "standin.json").write_text(json.dumps({"record": tok_record, "tokens": len(tok),
                                                              "seconds": round(time.perf_counter() - t0, 1)}))
            echo(f"rehearsal: WordPiece {f.vocab_size} {case} ({len(tok)} pieces learnt from {len(texts)} notes) "
                 f"in {time.perf_counter() - t0:.0f} s")
        model_dir = out / (f"bert-L{f.layers}-H{f.hidden_size}-A{f.heads}-I{f.intermediate_size}-P{f.max_positions}"
                           f"-{f.vocab_size}-{case}")
        # the architecture only (not the hub id): encoders of one shape share this directory and its cache entry
        record = {"config": f.bert_config(), "tokenizer": tok_record}
        if not _cached(model_dir, record):
            t0 = time.perf_counter()
            tok = AutoTokenizer.from_pretrained(tok_dir)
            torch.manual_seed(0)
            config = BertConfig(**f.bert_config(), pad_token_id=tok.pad_token_id)
            BertModel(config, add_pooling_layer=False).save_pretrained(model_dir)
            tok.save_pretrained(model_dir)
            (model_dir / "vocab.txt").write_bytes((tok_dir / "vocab.txt").read_bytes())
            (model_dir / "standin.json").write_text(json.dumps({"record": record}))
            echo(f"rehearsal: stand-in {model_dir.name} in {time.perf_counter() - t0:.0f} s")
        made[hub_id] = str(model_dir)
    return made


# ---------------------------------------------------------------------------------------------- the rehearsal

def fixture_dir(scale: float | None) -> Path:
    """``outputs/fixtures/mimic_full`` (or ``mimic_full_x<scale>``) of the real outputs folder."""
    from .paths import OUTPUTS

    return OUTPUTS / "fixtures" / ("mimic_full" if scale is None else f"mimic_full_x{scale:g}")


def derived_runs(profile, fixture: Path, splits: Path, *, seeds: int = 1, cuda: bool = False,
                 batch_docs: int | None = None, extra: dict[str, dict] | None = None) -> list[dict]:
    """The profile's runs with the rehearsal's overrides (see the module docstring), as profile entries."""
    from . import params as P
    from .paths import NOTEBOOKS
    from .study import resolve

    runs = []
    for spec in profile.runs:
        defaults = P.notebook_defaults(NOTEBOOKS / f"{spec.notebook}.ipynb")
        values = resolve(spec)
        o = dict(spec.overrides)
        if "input_path" in defaults:
            o["input_path"] = str(fixture)
            o.update({k: v for k, v in (("splits_dir", str(splits)), ("verify_caml_splits", False)) if k in defaults})
        if isinstance(values.get("seeds"), list) and len(values["seeds"]) > seeds:
            o["seeds"] = values["seeds"][:seeds]
        if values.get("grad_accum_steps", 1) != 1:
            o["grad_accum_steps"] = 1
        if batch_docs and isinstance(values.get("batch_size"), int) and values["batch_size"] > batch_docs:
            o["batch_size"] = batch_docs
        if not cuda and values.get("amp", "off") != "off":
            o["amp"] = "off"
        o.update((extra or {}).get(spec.notebook, {}))
        runs.append({"notebook": spec.notebook, "run": spec.run, "params": o, "reads": list(spec.reads)})
    return runs


def _hub_encoders(entry: dict) -> list[str]:
    from .names import LOCAL_ENCODERS
    from .study import RunSpec, resolve

    names = resolve(RunSpec(entry["notebook"], entry["run"], entry["params"])).get("encoders") or []
    return [n for n in names if n not in LOCAL_ENCODERS and not Path(str(n)).is_dir()]


def _without_encoders(runs: list[dict], hub: list[list[str]]) -> list[dict]:
    """The runs that need no hub encoder and read none that does (profile order): they run before the stand-ins
    are built, so preprocessing and the CNNs are measured first."""
    late: set[str] = set()
    early = []
    for e, h in zip(runs, hub):
        key = f"{e['notebook']}/{e['params'].get('run_name', e['run'])}"
        if h or any(r in late for r in e["reads"]):
            late.add(key)
        else:
            early.append(e)
    return early


def _run_child(profile_yaml: Path, root: Path, record: dict, echo: Callable[[str], None]) -> int:
    # Asserts stay on: the notebooks report results (a model below the floor is a printed WARNING, not a crash), so
    # an assert that fails here guards the code and would fail the real run too.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONOPTIMIZE"}
    env.update({"MCANB_OUTPUTS": str(root), ENV: json.dumps(record)})
    from .paths import ROOT

    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, "-m", "mcanb.cli", "study", str(profile_yaml)]
    echo("rehearsal: " + " ".join(cmd[1:]) + f"   (MCANB_OUTPUTS={root})")
    return subprocess.call(cmd, env=env, cwd=str(ROOT))


def rehearse_study(profile: str, *, scale: float | None = None, caps_: dict | None = None, seeds: int = 1,
                   root: str | Path | None = None, facts: Callable[[str], published.EncoderCard] = encoder_facts,
                   extra: dict[str, dict] | None = None, echo: Callable[[str], None] = print) -> Path:
    """Rehearse ``profile`` (see the module docstring); print the cost table; return the table's markdown file.

    ``scale`` shrinks the fixture (tests), ``facts`` the stand-ins (tests), ``extra`` adds parameters per
    notebook. Raises ``StudyError`` naming the step when the study fails, after printing what did run."""
    import torch
    import yaml

    from . import fixture
    from .paths import OUTPUTS
    from .processed import load
    from .rehearse_table import machine, write_table
    from .study import StudyError, load_profile

    t0 = time.time()
    prof = load_profile(profile)
    root = Path(root) if root else OUTPUTS / "rehearsal"
    cuda = torch.cuda.is_available()
    fx = fixture_dir(scale)
    t = time.perf_counter()
    fixture.ensure(fx, size="full", scale=scale, progress=True)
    echo(f"rehearsal: fixture {fx} ready in {time.perf_counter() - t:.0f} s")
    record = {**DEFAULT_CAPS, **(caps_ or {}), "profile": prof.name, "scale": scale, "fixture": str(fx),
              "machine": machine(), "encoders": {}}
    record["split_sizes"] = eval_splits(fx, root / "splits", record["eval_docs"])
    runs = derived_runs(prof, fx, root / "splits", seeds=seeds, cuda=cuda, batch_docs=record["batch_docs"],
                        extra=extra)
    hub = [_hub_encoders(e) for e in runs]
    early = _without_encoders(runs, hub)
    (root / "profiles").mkdir(parents=True, exist_ok=True)
    # The caps and the stand-ins are not notebook parameters, so no run's fingerprint sees them: when they change,
    # every run of this rehearsal folder is forgotten and reruns.
    ids = list(dict.fromkeys(i for h in hub for i in h))
    record["key"] = identity.of_texts([json.dumps({"caps": {k: record[k] for k in DEFAULT_CAPS}, "scale": scale,
                                             "facts": {i: dataclasses.asdict(facts(i)) for i in ids}},
                                            sort_keys=True)])
    previous = root / "rehearsal.json"
    if previous.exists() and json.loads(previous.read_text()).get("key") != record["key"]:
        echo("rehearsal: the caps or stand-ins changed since the last rehearsal in this folder: every run reruns")
        for f in root.rglob(".mcanb-run.json"):
            f.unlink()
        shutil.rmtree(root / "runs", ignore_errors=True)            # the run store (mcanb.grid)

    def write(name: str, entries: list[dict]) -> Path:
        path = root / "profiles" / f"{name}.yaml"
        path.write_text(f"# mcanb study {prof.name} --rehearse: {prof.path.name} with the rehearsal's overrides "
                        "(mcanb.rehearse)\n" + yaml.safe_dump({"description": f"rehearsal of {prof.name}: "
                                                               + prof.description, "runs": entries},
                                                              sort_keys=False))
        return path

    (root / "rehearsal.json").write_text(json.dumps(record, indent=2) + "\n")
    status = 1
    try:
        status = 0
        if early:           # data steps and CNNs first: the stand-ins' tokenizers learn from the training notes
            status = _run_child(write(f"{prof.path.stem}_data", early), root, record, echo)
        if status == 0 and any(hub):
            entry = next(e for e, h in zip(runs, hub) if h)
            values = _resolved(entry)
            data_dir = Path(str(values["data_dir"]))
            data_dir = root.joinpath(*data_dir.parts[1:]) if data_dir.parts[0] == "outputs" else data_dir
            # the top-50 training notes whatever the profile's label space: one corpus, so every profile's
            # rehearsal in this folder shares the stand-ins (and the runs keyed by their files) instead of
            # retraining the tokenizers under a study that may still be running
            texts = load(data_dir, "50").frames["train"]["text"].tolist()
            record["encoders"] = build_stand_ins(ids, texts, root / "standins", facts=facts, echo=echo)
            (root / "rehearsal.json").write_text(json.dumps(record, indent=2) + "\n")
        if status == 0:
            status = _run_child(write(prof.path.stem, runs), root, record, echo)
    finally:            # interrupted or failed too: the table says what ran and what it cost
        table = write_table(prof, runs, root, record, seconds=time.time() - t0, echo=echo)
    if status != 0:
        raise StudyError(f"rehearsal of {prof.name} failed (exit status {status}); the error is above, the runs "
                         f"that finished are in {table}")
    return table


def _resolved(entry: dict) -> dict[str, Any]:
    from .study import RunSpec, resolve

    return resolve(RunSpec(entry["notebook"], entry["run"], entry["params"]))


def main(argv: list[str] | None = None) -> None:
    """``python -m mcanb.rehearse PROFILE``: the cost table again from what ``outputs/rehearsal/`` holds (after an
    interrupted rehearsal too); ``--readme``: the README's run-time table from the rehearsals' tables."""
    from .rehearse_table import _json, update_readme, write_table
    from .paths import OUTPUTS, ROOT

    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] != "--readme":
        from .study import load_profile

        root = OUTPUTS / "rehearsal"
        record = _json(root / "rehearsal.json")
        if not record:
            sys.exit(f"no rehearsal in {root}; run `mcanb study {argv[0]} --rehearse` first")
        prof = load_profile(argv[0])
        runs = derived_runs(prof, Path(record["fixture"]), root / "splits", batch_docs=record.get("batch_docs"))
        write_table(prof, runs, root, record, seconds=float("nan"))
        return
    tables = sorted((OUTPUTS / "rehearsal").glob("rehearsal_*.md"))
    if not tables:
        sys.exit(f"no rehearsal tables in {OUTPUTS / 'rehearsal'}; run `mcanb study mimic3_50 --rehearse` first")
    changed = update_readme(ROOT / "README.md", tables)
    print(f"README.md {'updated' if changed else 'unchanged'} from {', '.join(t.name for t in tables)}")


if __name__ == "__main__":
    main()
