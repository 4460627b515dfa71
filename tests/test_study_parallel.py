"""`mcanb study --jobs N` (or ``jobs: N`` in a profile): several notebook runs at once, each started once every run
it reads has finished; a failure stops new starts and names what did not run; a SIGTERM reaches the running steps.
The notebooks are stood in for by a fake ``mcanb step`` process (timings of sleeps); tests/test_reproducible.py runs
a real study with ``--jobs 2`` and checks that it gives the same numbers as one run at a time."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
import yaml

from mcanb import study, study_run
from mcanb.study import RunSpec

# the toy profile's shape: 02 and 04 read 01, 03 reads 02, 05 reads 02, 03 and 04
SHAPE = {"01_preprocess/toy": [], "02_pretraining_domains/toy": ["01_preprocess/toy"],
         "03_hierarchy/toy": ["02_pretraining_domains/toy"], "04_cnn_retraining/toy": ["01_preprocess/toy"],
         "05_frequency_analysis/toy": ["02_pretraining_domains/toy", "03_hierarchy/toy", "04_cnn_retraining/toy"]}
SECONDS = {"01_preprocess": 0.05, "02_pretraining_domains": 0.4, "03_hierarchy": 0.2, "04_cnn_retraining": 0.3,
           "05_frequency_analysis": 0.05}


def _todo() -> list[tuple[int, RunSpec]]:
    specs = []
    for key, reads in SHAPE.items():
        notebook, run = key.split("/")
        specs.append(RunSpec(notebook, run, {}, list(reads)))
    return list(enumerate(specs, 1))


@pytest.fixture
def fake_steps(monkeypatch):
    """``mcanb step`` processes replaced by sleeps; returns the (start, end) of each notebook, the exit codes to
    give ({notebook: code}, 0 by default) and the signals each step was sent."""
    log: dict[str, tuple[float, float]] = {}
    codes: dict[str, int] = {}
    signals: dict[str, list[int]] = {}
    lock = threading.Lock()

    class Step:
        def __init__(self, cmd, env=None, **kw):
            assert cmd[1:4] == ["-m", "mcanb.cli", "step"], cmd
            assert env and env["OMP_NUM_THREADS"]          # each run gets its share of the cores
            self.notebook = json.loads(cmd[4])["notebook"]
            self.stopped = threading.Event()

        def wait(self):
            start = time.perf_counter()
            stopped = self.stopped.wait(SECONDS[self.notebook])
            with lock:
                log[self.notebook] = (start, time.perf_counter())
            return -15 if stopped else codes.get(self.notebook, 0)

        def send_signal(self, signum):
            signals.setdefault(self.notebook, []).append(signum)
            self.stopped.set()

    monkeypatch.setattr(subprocess, "Popen", Step)
    return log, codes, signals


def test_two_jobs_start_each_run_when_what_it_reads_is_done(fake_steps):
    log, _, _ = fake_steps
    lines: list[str] = []
    study_run._run_parallel(_todo(), {k: "never ran" for k in SHAPE}, 5, 2, lines.append, None)
    assert set(log) == {k.split("/")[0] for k in SHAPE}
    start = {k: v[0] for k, v in log.items()}
    end = {k: v[1] for k, v in log.items()}
    for key, reads in SHAPE.items():              # nothing starts before what it reads has ended
        for r in reads:
            assert start[key.split("/")[0]] >= end[r.split("/")[0]], (key, r)
    # 04 reads only 01: it runs beside 02 (the point of --jobs), and 05 waits for the last of 03 and 04
    assert start["04_cnn_retraining"] < end["02_pretraining_domains"]
    assert any("04_cnn_retraining/toy: never ran (started beside 1 other run(s))" in line for line in lines), lines
    assert sum("done in" in line for line in lines) == 5


def test_a_failed_run_stops_new_starts_and_lets_the_running_one_finish(fake_steps):
    log, codes, _ = fake_steps
    codes["02_pretraining_domains"] = 1
    lines: list[str] = []
    with pytest.raises(study.StudyError) as err:
        study_run._run_parallel(_todo(), {k: "never ran" for k in SHAPE}, 5, 2, lines.append, None)
    msg = str(err.value)
    assert msg.startswith("02_pretraining_domains/toy failed") and "not started: 03_hierarchy/toy, " \
        "05_frequency_analysis/toy" in msg, msg
    assert "04_cnn_retraining" in log and "03_hierarchy" not in log      # 04 was running: it finished
    assert any("02_pretraining_domains/toy: failed after" in line for line in lines), lines


class Stopped(Exception):
    pass


def test_sigterm_reaches_the_running_steps_then_the_study(fake_steps):
    """A batch scheduler's SIGTERM: both running steps (02 and 04) get it, then the study's own earlier handler
    (here one that raises; normally the default, which ends the process); nothing else starts."""
    _, _, signals = fake_steps

    def stopped(signum, frame):
        raise Stopped

    def term_later():
        time.sleep(0.15)                      # 01 has ended, 02 and 04 are running
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.signal(signal.SIGTERM, stopped)
    try:
        threading.Thread(target=term_later).start()
        with pytest.raises(Stopped):
            study_run._run_parallel(_todo(), {k: "never ran" for k in SHAPE}, 5, 2, lambda s: None, None)
        assert signals == {"02_pretraining_domains": [signal.SIGTERM], "04_cnn_retraining": [signal.SIGTERM]}
        assert signal.getsignal(signal.SIGTERM) is stopped     # the study's handler is gone again
    finally:
        signal.signal(signal.SIGTERM, before)


def test_jobs_in_a_profile_is_checked(tmp_path):
    path = tmp_path / "p.yaml"
    runs = [{"notebook": "01_preprocess", "run": "toy"}]
    path.write_text(yaml.safe_dump({"runs": runs, "jobs": 2}))
    assert study.load_profile(str(path)).jobs == 2
    assert study.load_profile("toy").jobs == 2            # the toy study: 04 beside 02 and 03 on two cores
    assert study.load_profile("mimic3-50").jobs == 1      # one GPU: one notebook at a time
    for bad in (0, "two", 1.5):
        path.write_text(yaml.safe_dump({"runs": runs, "jobs": bad}))
        with pytest.raises(study.StudyError, match=r"p\.yaml: jobs: expected a whole number >= 1"):
            study.load_profile(str(path))
    path.write_text(yaml.safe_dump({"runs": runs, "job": 2}))
    with pytest.raises(study.StudyError, match=r"unknown key\(s\) \['job'\]; valid: description, runs, jobs"):
        study.load_profile(str(path))


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="process start times come from Linux's /proc")
def test_a_running_record_is_live_only_while_the_process_that_wrote_it_runs():
    """A record left "running" by a killed process must not block the next run for ever because another process now
    has its number (after a restart, containers count processes from 1 again): the record keeps when its process
    started, and a process of that number that started at another time is not it."""
    child = subprocess.Popen(["sleep", "30"])
    try:
        started = study_run._started(child.pid)
        assert started is not None and study_run._pid_alive(child.pid, started)        # the writer itself
        assert not study_run._pid_alive(child.pid, str(int(started) + 1))              # another process, same number
        assert study_run._pid_alive(child.pid)                                          # an older record: as before
    finally:
        child.kill()
        child.wait()
    assert not study_run._pid_alive(child.pid, started)
