"""The README and docs/ link only to files inside the repository, and every file they link exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


def _links(document: Path) -> list[str]:
    return [a or b for a, b in LINK.findall(document.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_stay_in_the_repository(document: Path) -> None:
    broken = []
    for link in _links(document):
        if re.match(r"^[a-z]+:", link) or link.startswith("#"):
            continue  # a web address or an anchor of the same page
        target = (document.parent / link.split("#", 1)[0]).resolve()
        if not target.is_relative_to(ROOT) or not target.exists():
            broken.append(link)
    assert not broken, f"{document.relative_to(ROOT)} links outside the repository or to missing files: {broken}"


def test_the_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[0] for line in first_block.splitlines()] == ["./scripts/run.sh", "./scripts/test.sh"]
