"""The project's documentation stands on its own: docs/reference.md has its sections, and citations resolve.

A clone of the project holds no notes from outside it, so no tracked file may cite a document that is not in the
repository (the study's working notes were once cited by name); citations use ``docs/reference.md §Section``.
"""
from __future__ import annotations

import re
import subprocess

from mcanb.paths import ROOT

REFERENCE = ROOT / "docs" / "reference.md"
SECTIONS = ("Data", "Preprocessing", "Splits", "Metrics", "Models and hyperparameters", "Published numbers",
            "Known traps")
# Names of documents outside the repository, spelled in pieces so that this file does not cite them itself.
FOREIGN = tuple(re.compile(p) for p in (r"\bREFERENCE" + r"\.md\b", r"\bPAPER" + r"\.md\b", r"\.\./" + r"shared\b"))
# Files allowed to name them, with the reason.
ALLOWED: dict[str, str] = {
    "mcanb/resources/LICENSE.caml-mimic": "third-party licence text, kept verbatim",
    ".ci/run": "CI's environment: points the real-split tests at the public split files beside the clone",
}


def tracked_files() -> list[str]:
    """Paths (relative, POSIX) of the files git tracks; every file under ROOT outside .git if git is unavailable."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        return [p for p in out.split("\0") if p]
    except (OSError, subprocess.CalledProcessError):
        return [str(p.relative_to(ROOT).as_posix()) for p in ROOT.rglob("*")
                if p.is_file() and ".git" not in p.parts and "outputs" not in p.parts]


def _text(path: str) -> str | None:
    try:
        return (ROOT / path).read_text(encoding="utf-8")
    except (UnicodeDecodeError, FileNotFoundError):
        return None   # binary resources (.gz) cite nothing


def test_reference_has_exactly_the_sections():
    headings = re.findall(r"^## (.+)$", REFERENCE.read_text(), re.M)
    assert tuple(headings) == SECTIONS


def test_every_reference_section_names_sources():
    text = REFERENCE.read_text()
    for name, body in zip(SECTIONS, re.split(r"^## .+$", text, flags=re.M)[1:]):
        assert re.search(r"\((?:[^()]*?)(?:Ji 2021|CAML|MIMIC-III|Edin 2023|PLM-ICD|Kim 2014|gensim|nltk|LAAT|"
                         r"MultiResCNN|Shi 2017)", body), f"docs/reference.md: section {name} cites no source"


def test_no_file_cites_documents_outside_the_repository():
    owned = [p for p in tracked_files() if p not in ALLOWED]
    assert "README.md" in owned and any(p.startswith("notebooks/") for p in owned) and "mcanb/train.py" in owned
    bad = []
    for path in owned:
        text = _text(path)
        for line_no, line in enumerate((text or "").splitlines(), start=1):
            if any(p.search(line) for p in FOREIGN):
                bad.append(f"{path}:{line_no}: {line.strip()[:100]}")
    assert not bad, "cite docs/reference.md §Section instead:\n" + "\n".join(bad)


def test_citations_resolve_to_a_reference_section():
    """Every ``docs/reference.md §Section`` in a tracked file names an existing section (or is that placeholder)."""
    seen = 0
    for path in tracked_files():
        text = _text(path) or ""
        for m in re.finditer(r"docs/reference\.md\s+§", text):
            rest = " ".join(text[m.end():m.end() + 60].replace('\\n", "', " ").split())
            assert rest.startswith((*SECTIONS, "Section")), f"{path}: cites section {rest[:30]!r} of docs/reference.md, which has no such section"
            seen += 1
    assert seen >= 20
