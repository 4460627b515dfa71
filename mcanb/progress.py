"""Progress of long notebook runs on the terminal, not only inside the executed notebook.

The training engine (``mcanb.train.fit``) writes ``progress.json`` into each training run's folder every
``log_every`` optimizer steps and after each epoch. While ``mcanb run`` / ``mcanb study`` executes a notebook,
:class:`Monitor` polls the notebook's run folder for the most recently updated ``progress.json`` and prints one
line when it changes, e.g.::

    [04_cnn_retraining/toy] cnn/seed13 · epoch 3/8 · batch 40/87 · loss 0.2310 · epoch ETA 6 s · run ETA ≤ 41 s

A file is a robust channel: it needs nothing from the kernel, survives the notebook's own output handling, and
a crashed kernel leaves it behind for inspection. ``run ETA ≤`` is an upper bound (early stopping may end sooner).
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable


def describe(doc: dict[str, Any], where: str) -> str:
    """One progress line from a ``progress.json`` document; ``where`` names the model and seed (``cnn/seed13``)."""
    epoch, n_epochs = doc["epoch"], doc["num_epochs"]
    parts = [where, f"epoch {epoch + 1}/{n_epochs}"]
    batch, batches, epoch_s = doc.get("batch"), doc.get("batches"), float(doc.get("epoch_s") or 0)
    if batch:
        per_epoch = epoch_s * batches / batch
        parts += [f"batch {batch}/{batches}", f"loss {doc['train_loss']:.4f}",
                  f"epoch ETA {max(per_epoch - epoch_s, 0):.0f} s",
                  f"run ETA ≤ {max(per_epoch - epoch_s, 0) + per_epoch * (n_epochs - epoch - 1):.0f} s"]
    else:
        best = doc.get("best")
        parts += ["evaluated", f"loss {doc['train_loss']:.4f}",
                  f"best dev {doc['metric']} {best:.4f} @ epoch {doc['best_epoch'] + 1}" if best is not None else "",
                  f"{epoch_s:.1f} s/epoch"]
        if doc.get("stop_reason"):
            parts.append(f"stop: {doc['stop_reason']}")
        elif epoch_s:
            parts.append(f"run ETA ≤ {epoch_s * (n_epochs - epoch - 1):.0f} s")
    return " · ".join(p for p in parts if p)


class Monitor:
    """Context manager: a daemon thread printing progress lines of ``run_dir``'s training runs.

    ``label`` prefixes each line (``04_cnn_retraining/toy``); ``write`` defaults to ``tqdm.write`` on stderr so
    lines do not break papermill's cell progress bar. Only files updated after the monitor started count, and of
    those only runs of this notebook run (``caller`` in ``progress.json``, written by ``fit``; two studies may
    train into one run store at once).
    """

    def __init__(self, run_dir: Path, label: str, *, enabled: bool = True, interval: float = 1.0,
                 min_gap: float = 5.0, write: Callable[[str], None] | None = None, also: tuple[Path, ...] = ()):
        self.run_dir, self.label, self.enabled = Path(run_dir), label, enabled
        self.roots = (self.run_dir, *map(Path, also))   # ``also``: training folders kept elsewhere (BERT runs)
        self.interval, self.min_gap = interval, min_gap
        self.write = write or _tqdm_write
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: dict[Path, float] = {}
        self._last_line, self._last_time = "", 0.0
        self.lines: list[str] = []

    def __enter__(self) -> "Monitor":
        if self.enabled:
            self._start = time.time()
            self._thread = threading.Thread(target=self._loop, name="mcanb-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=5)
            self.poll(final=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - a progress line must never break a run
                pass

    def poll(self, final: bool = False) -> str | None:
        """Print a line for the newest changed ``progress.json`` (throttled to one per ``min_gap`` seconds,
        except epoch ends); return it, or None."""
        newest, newest_t = None, 0.0
        for f in (f for root in self.roots if root.is_dir() for f in root.rglob("progress.json")):
            try:
                t = f.stat().st_mtime
            except OSError:
                continue
            if t >= getattr(self, "_start", 0) - 1 and t > self._seen.get(f, 0) and t > newest_t:
                newest, newest_t = f, t
        if newest is None:
            return None
        try:
            doc = json.loads(newest.read_text())
        except (OSError, ValueError):
            return None
        if doc.get("caller") not in (None, self.label):   # a run of another notebook run sharing the store
            self._seen[newest] = newest_t
            return None
        epoch_end = doc.get("batch") is None
        if not (epoch_end or final) and time.time() - self._last_time < self.min_gap:
            return None
        self._seen[newest] = newest_t
        root = next(r for r in self.roots if r in newest.parents)
        where = str(newest.parent.relative_to(root)) if newest.parent != root else "."
        line = f"[{self.label}] {describe(doc, where)}"
        if line != self._last_line:
            self.write(line)
            self.lines.append(line)
            self._last_line, self._last_time = line, time.time()
        return line


def _tqdm_write(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)
