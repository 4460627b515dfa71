"""Browser smoke tests: an executed notebook in JupyterLab and the study report, rendered by headless chromium.

Chromium comes from Debian (``apt-get install -y chromium``, done here when it is missing and we are root);
without it the tests skip and say why. JupyterLab listens on 127.0.0.1 only, on a free port, with a known token,
and is always stopped. Every browser call has a time limit.
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
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("chromium is not installed and cannot be installed here (needs root and apt-get)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], env=env,
                           capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        pytest.skip("apt-get install chromium took more than 5 minutes")
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip(f"apt-get install chromium failed (exit {r.returncode}): {r.stderr.strip()[-300:]}")
    return exe


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


@pytest.fixture
def lab(tmp_path, tiny_study):
    """A JupyterLab server on an executed copy of notebook 04 (from the tiny study); yields (url, notebook name)."""
    outputs = tiny_study[0]
    root = tmp_path / "lab"
    root.mkdir()
    shutil.copy(outputs / "04_cnn_retraining" / "tiny" / "04_cnn_retraining.ipynb", root / "executed.ipynb")
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell, not only those in view (JupyterLab 4 virtualises long notebooks)
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "ws"), JUPYTER_RUNTIME_DIR=str(tmp_path / "rt"),
               JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"), JUPYTER_DATA_DIR=str(tmp_path / "data"))
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
                             f"--ServerApp.root_dir={root}", "--ServerApp.port_retries=0",
                             *(["--allow-root"] if os.geteuid() == 0 else [])],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/status?token={TOKEN}", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield base, "executed.ipynb"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()


def test_jupyterlab_renders_markdown_and_a_figure_of_an_executed_notebook(chromium, lab, tmp_path):
    base, name = lab
    dom = dump_dom(chromium, f"{base}/lab/tree/{name}?token={TOKEN}", tmp_path / "chrome", budget_ms=30000)
    assert "jp-Notebook" in dom, dom[:2000]
    markdown = re.findall(r'class="[^"]*jp-RenderedMarkdown[^"]*"', dom)
    assert markdown, "no rendered markdown cell"
    assert re.search(r"<h1[^>]*>(<[^>]*>)*\s*04 · CNN retraining", dom), "the title cell did not render as a heading"
    assert re.search(r'jp-RenderedImage[^>]*>\s*<img[^>]+src="data:image/png;base64,', dom), "no rendered figure"


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
    assert "<h2>Reproduced tables beside the paper</h2>" in dom
    assert re.search(r"<td>CNN \(retrained\)</td><td>micro-F1</td><td>67\.1</td>", dom)
    widths = re.search(r'data-images="([^"]*)"', dom)
    assert widths and widths.group(1), "the page has no figure"
    assert all(int(w) > 0 for w in widths.group(1).split(",")), f"a figure did not load: {widths.group(1)}"
