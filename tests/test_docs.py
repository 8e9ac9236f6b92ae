"""The documentation the code points at exists: every `docs/<file>.md#<anchor>` cited in the
repository names a heading of that file, and nothing cites the design notes or research files that
live outside the repository (a maintainer does not have them).

Anchors follow GitHub's rules for headings: lower-case, punctuation dropped, each space a hyphen,
and a repeated heading gets `-1`, `-2`, ... appended.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
THIS = Path(__file__).resolve()

SCANNED_SUFFIXES = {".py", ".md", ".bicep", ".sh", ".json", ".toml", ".txt", ".yaml", ".yml", ".cfg"}
SCANNED_NAMES = {"Makefile", ".funcignore"}
SKIPPED_DIRS = {
    ".git", ".venv", ".venv-infra", "node_modules", "build", "out", "__pycache__", ".mypy_cache",
    ".ruff_cache", ".pytest_cache", ".hypothesis", ".azurite",
}  # fmt: skip
SKIPPED_FILES = {"package-lock.json"}

CITATION = re.compile(r"docs/([\w.-]+\.md)(?:#([\w-]+))?")
# Inside docs/: [text](other.md#anchor), [text](#anchor), [text](other.md).
RELATIVE_LINK = re.compile(r"\]\((?!https?://)([\w.-]+\.md)?(?:#([\w-]+))?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
# What the code used to cite: design notes and research files kept outside the repository.
OUTSIDE = re.compile(
    r"\bDESIGN\b"
    r"|reference/[\w-]+\.md"
    r"|\breference \d"
    r"|\b(?:api-contracts|azure-functions|changes-2026|mailitemsaccessed-event|perf-reliability)\.md"
)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading's text (before de-duplication)."""
    kept = "".join(char for char in heading.strip().lower() if char.isalnum() or char in " -_")
    return kept.replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a Markdown text; headings inside fenced code blocks do not count."""
    found: set[str] = set()
    seen: Counter[str] = Counter()
    fenced = False
    for line in markdown.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else HEADING.match(line)
        if match is None:
            continue
        anchor = github_anchor(match.group(2))
        found.add(f"{anchor}-{seen[anchor]}" if seen[anchor] else anchor)
        seen[anchor] += 1
    return found


def scanned_files() -> list[Path]:
    files = []
    for folder, dirs, names in os.walk(ROOT):
        dirs[:] = [name for name in dirs if name not in SKIPPED_DIRS and not name.endswith(".egg-info")]
        for name in names:
            path = Path(folder) / name
            if name not in SKIPPED_FILES and (path.suffix in SCANNED_SUFFIXES or name in SCANNED_NAMES):
                files.append(path)
    return sorted(files)


def citations() -> list[tuple[str, str, str | None]]:
    """(where, cited file, anchor or None) for every `docs/<file>.md[#anchor]` in the repository."""
    found = []
    for path in scanned_files():
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for match in CITATION.finditer(line):
                found.append((f"{path.relative_to(ROOT)}:{number}", match.group(1), match.group(2)))
    return found


def doc_anchors(name: str) -> set[str] | None:
    path = DOCS / name
    return anchors(path.read_text(encoding="utf-8")) if path.is_file() else None


# --- the anchor rules -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("Storage model", "storage-model"),
        ("Raw evidence: audit-raw", "raw-evidence-audit-raw"),
        ("What changed in 2026", "what-changed-in-2026"),
        ("AppId and ClientAppId", "appid-and-clientappid"),
        ("The `mia` CLI", "the-mia-cli"),
        ("fetch_audit (timer)", "fetch_audit-timer"),
        ("Bind / Sync", "bind--sync"),
    ],
)
def test_anchor_follows_github_rules(heading: str, anchor: str) -> None:
    assert github_anchor(heading) == anchor


def test_repeated_headings_and_code_blocks() -> None:
    text = "# Top\n## Notes\n```toml\n# not a heading\n```\n### Notes\n## Notes ##\n"
    assert anchors(text) == {"top", "notes", "notes-1", "notes-2"}


def test_citations_are_found_in_code() -> None:
    """The scan sees the citations the library makes (so the checks below are not vacuous)."""
    cited = {(name, anchor) for _, name, anchor in citations()}
    assert ("architecture.md", "storage-model") in cited
    assert ("mailitemsaccessed.md", "throttling") in cited


# --- the documentation the code cites exists ---------------------------------------------------


def test_every_cited_docs_anchor_is_a_heading() -> None:
    missing = []
    for where, name, anchor in citations():
        headings = doc_anchors(name)
        if headings is None:
            missing.append(f"{where}: docs/{name} does not exist")
        elif anchor is not None and anchor not in headings:
            missing.append(f"{where}: docs/{name} has no heading for #{anchor}")
    assert not missing, "\n".join(missing)


def test_links_between_the_docs_resolve() -> None:
    missing = []
    for path in sorted(DOCS.glob("*.md")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for match in RELATIVE_LINK.finditer(line):
                name, anchor = match.group(1) or path.name, match.group(2)
                headings = doc_anchors(name)
                if headings is None:
                    missing.append(f"docs/{path.name}:{number}: {name} does not exist")
                elif anchor is not None and anchor not in headings:
                    missing.append(f"docs/{path.name}:{number}: {name} has no heading for #{anchor}")
    assert not missing, "\n".join(missing)


def test_nothing_cites_files_outside_the_repository() -> None:
    offending = []
    for path in scanned_files():
        if path.resolve() == THIS:
            continue  # the patterns themselves
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offending, "cite docs/ or a public URL instead:\n" + "\n".join(offending)
