"""Start-up time of the processes the project starts many times (run on demand, not a test).

    python benchmarks/bench_startup.py              # 5 fresh processes per case
    python benchmarks/bench_startup.py --repeats 9

Every `mcanb run` / `mcanb study`, every papermill call, the nbval plugin and `mcanb lab` import ``nbformat``,
which imports ``jsonschema``. jsonschema 4.25 and 4.26 import the optional ``rfc3987_syntax`` at start-up when it
is installed (jupyterlab's ``jsonschema[format-nongpl]`` installs it), and that module builds a parsing grammar
on import (python-jsonschema/jsonschema#1428). pyproject.toml therefore asks for ``jsonschema<4.25``.

For each import (and one `mcanb` command) the script times fresh interpreters twice, in one run: as installed,
and with ``rfc3987_syntax`` made unimportable (``sys.modules["rfc3987_syntax"] = None``, what jsonschema < 4.25
amounts to), and prints the medians and their ratio. With jsonschema < 4.25 installed both columns are the same.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BLOCK = "import sys; sys.modules['rfc3987_syntax'] = None; "
CASES = {
    "import nbformat": "import nbformat",
    "import papermill": "import papermill",
    "mcanb run 01_preprocess toy --dry-run": (
        "import sys; sys.argv = ['mcanb', 'run', '01_preprocess', 'toy', '--dry-run']; "
        "from mcanb.cli import main; main()"),
}


def _seconds(code: str) -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5, help="fresh processes per case and variant")
    args = ap.parse_args()
    from importlib.metadata import version
    print(f"python {sys.version.split()[0]} · jsonschema {version('jsonschema')} · median of {args.repeats} "
          f"fresh processes")
    print(f"{'case':42s} {'as installed':>13s} {'no rfc3987_syntax':>18s} {'ratio':>6s}")
    for name, code in CASES.items():
        plain = statistics.median(_seconds(code) for _ in range(args.repeats))
        blocked = statistics.median(_seconds(BLOCK + code) for _ in range(args.repeats))
        print(f"{name:42s} {plain:12.2f}s {blocked:17.2f}s {plain / blocked:5.1f}×")


if __name__ == "__main__":
    main()
