"""Browser tests: `mcanb lab` opens the executed notebooks of a study in JupyterLab, and the study report, each
rendered by headless Chromium.

Chromium is installed by the set-up, not here: `.ci/run` installs Debian's `chromium` when it is missing, and the
README documents `apt-get install -y chromium` for users. Without it these tests skip and say so, except in CI
(`CI=true`), where a missing browser is a failure. JupyterLab listens on 127.0.0.1 only, on a free port, with a
known token, and is always stopped. Every browser call has a time limit.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from mcanb.paths import ROOT

pytestmark = pytest.mark.slow

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1400,4000"]
TOKEN = "mcanb-browser-test"


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe:
        return exe
    why = "chromium is not installed (`apt-get install -y chromium`; .ci/run installs it in CI)"
    if os.environ.get("CI") == "true":
        pytest.fail(why)
    pytest.skip(why)


def dump_dom(exe: str, url: str, profile: Path, budget_ms: int = 15000) -> str:
    """The DOM of ``url`` after its scripts ran for ``budget_ms`` of virtual time (a fresh browser profile)."""
    r = subprocess.run([exe, *FLAGS, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}",
                        "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _server_pids(port: int) -> list[int]:
    """The JupyterLab server processes on ``port`` (what `mcanb lab` starts: ``python -m jupyterlab --port=N``)."""
    out = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0") if proc.name.isdigit() else []
            if b"jupyterlab" in cmd and f"--port={port}".encode() in cmd:
                out.append(int(proc.name))
        except OSError:
            pass
    return out


def start_lab(tmp_path: Path, outputs: Path, profile: Path) -> tuple[subprocess.Popen, str, int]:
    """`mcanb lab PROFILE` on a free port with the study's outputs; returns (process, base url, port)."""
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True, exist_ok=True)
    # render every cell, not only those in view (JupyterLab 4 virtualises long notebooks)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env = dict(os.environ, MCANB_OUTPUTS=str(outputs), PYTHONPATH=str(ROOT), JUPYTER_TOKEN=TOKEN,
               JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_DATA_DIR=str(tmp_path / "data"))
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mcanb.cli", "lab", str(profile), "--no-browser",
                             f"--port={port}", *(["--allow-root"] if os.geteuid() == 0 else [])],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5) as r:
                if r.status == 200:
                    return proc, base, port
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            stop_lab(proc, port)
            pytest.fail(f"mcanb lab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        time.sleep(0.5)


def stop_lab(proc: subprocess.Popen, port: int) -> None:
    """What a user's `kill` does: SIGTERM to `mcanb lab` only; whatever is left after 30 s is killed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in _server_pids(port):
        os.kill(pid, signal.SIGKILL)


@pytest.fixture
def lab(tmp_path, tiny_study):
    outputs, profile = tiny_study[0], tiny_study[1]
    proc, base, port = start_lab(tmp_path, outputs, profile)
    try:
        yield base, profile
    finally:
        stop_lab(proc, port)


def test_lab_opens_an_executed_notebook_with_its_figures_and_tables(chromium, lab, tmp_path):
    base, profile = lab
    nb = "outputs/04_cnn_retraining/tiny/04_cnn_retraining.ipynb"       # the executed copy, not notebooks/
    dom = dump_dom(chromium, f"{base}/lab/tree/{nb}?token={TOKEN}", tmp_path / "chrome", budget_ms=30000)
    assert "jp-Notebook" in dom, dom[:2000]
    assert re.search(r"<h1[^>]*>(<[^>]*>)*\s*04 · CNN retraining", dom), "the title cell did not render as a heading"
    assert re.search(r'jp-RenderedImage[^>]*>\s*<img[^>]+src="data:image/png;base64,', dom), "no rendered figure"
    table = re.search(r'<table[^>]*class="dataframe".*?</table>', dom, re.S)
    assert table, "no rendered table"
    assert re.search(r"<th>CNN \(retrained\)</th>", dom), "Table 6 did not render"


def test_lab_with_a_profile_opens_its_notebooks_as_tabs(chromium, lab, tmp_path):
    base, profile = lab
    name = f"mcanb-{profile.stem.replace('_', '-')}"
    dom = dump_dom(chromium, f"{base}/lab/workspaces/{name}?token={TOKEN}", tmp_path / "chrome", budget_ms=30000)
    tabs = re.findall(r'class="lm-TabBar-tabLabel[^"]*"[^>]*>([^<]+)<', dom)
    assert {"01_preprocess.ipynb", "04_cnn_retraining.ipynb"} <= set(tabs), tabs
    with urllib.request.urlopen(f"{base}/api/contents/notebooks?token={TOKEN}", timeout=10) as r:
        listed = {c["name"] for c in json.load(r)["content"]}
    assert "04_cnn_retraining.ipynb" in listed                            # notebooks/ is reachable too


def test_sigterm_to_mcanb_lab_stops_jupyterlab(tiny_study, tmp_path):
    proc, _, port = start_lab(tmp_path, tiny_study[0], tiny_study[1])
    try:
        server = _server_pids(port)
        assert server and proc.pid not in server, "JupyterLab should run as a child of `mcanb lab`"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        stop_lab(proc, port)
    deadline = time.time() + 10
    while (_listening(port) or _server_pids(port)) and time.time() < deadline:
        time.sleep(0.2)
    assert not _listening(port) and not _server_pids(port), "JupyterLab outlived `mcanb lab`"


def test_report_page_renders_tables_and_loads_its_figures(chromium, tiny_study, tmp_path):
    outputs, profile = tiny_study[0], tiny_study[1]
    page = outputs / "report" / profile.stem.replace("_", "-") / "index.html"
    probe = page.with_name("browser_probe.html")          # same folder, so the page's relative links still work
    script = ("<script>window.addEventListener('load',()=>{document.body.setAttribute('data-images',"
              "[...document.images].map(i=>i.complete?i.naturalWidth:0).join(','))})</script></body>")
    probe.write_text(page.read_text().replace("</body>", script))
    try:
        dom = dump_dom(chromium, probe.as_uri(), tmp_path / "chrome")
    finally:
        probe.unlink()
    assert "<h2>The paper's questions, answered by this run</h2>" in dom
    assert re.search(r"<tr[^>]*><td>CNN \(retrained\)</td><td class=\"map\"></td><td class=\"n\">90\.8</td>", dom)
    widths = re.search(r'data-images="([^"]*)"', dom)
    assert widths and widths.group(1), "the page has no figure"
    assert all(int(w) > 0 for w in widths.group(1).split(",")), f"a figure did not load: {widths.group(1)}"
