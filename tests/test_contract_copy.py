"""docs/contract.md is the external contract as the project received it: kept identical to the shared copy."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "CONTRACT.md"


def test_docs_contract_is_the_shared_contract() -> None:
    """When ../shared/CONTRACT.md exists (the project's checkout beside it), docs/contract.md is byte for byte it."""
    if not SHARED.is_file():
        pytest.skip(f"{SHARED} is not here: nothing to compare with")
    assert (ROOT / "docs" / "contract.md").read_bytes() == SHARED.read_bytes(), (
        f"docs/contract.md differs from {SHARED}: cp {SHARED} docs/contract.md"
    )


def test_readme_links_the_copy_in_the_repository() -> None:
    """The README points at docs/contract.md, not at a file outside the repository."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "(docs/contract.md)" in readme
    assert "../shared/CONTRACT.md" not in readme
