"""Every relative link of the README and docs/*.md leads somewhere: the file exists and, for a
``file.md#anchor`` or ``#anchor`` link, the anchor is one of the target's headings (GitHub's
rule: lower case, punctuation but ``-`` and ``_`` dropped, spaces to ``-``, repeats numbered)."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading's text."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> set[str]:
    """The anchors of a Markdown page's headings (fenced code skipped)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        heading = None if fenced else re.match(r"#{1,6} (.*)", line)
        if heading:
            base = slug(heading.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def test_slug_follows_githubs_rule():
    assert slug("A wider decoder (`--decoder-dim 128`): the myocardium gains") == \
        "a-wider-decoder---decoder-dim-128-the-myocardium-gains"
    assert slug("Phase 1's prompts (1600 + 2400 steps)") == "phase-1s-prompts-1600--2400-steps"


def test_anchors_number_repeated_headings(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("# Top\n## Notes\n```\n# not a heading\n```\n## Notes\n")
    assert anchors(page) == {"top", "notes", "notes-1"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked here (no network)
            continue
        path, _, fragment = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target}: no heading with that anchor in {dest.name}")
    assert not broken, f"{page.name}: " + "; ".join(broken)
