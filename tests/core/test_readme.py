from __future__ import annotations

from core.config import PROJECT_ROOT, SETTINGS_DOC


def test_readme_documents_every_setting() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [name for name in SETTINGS_DOC if f"`{name}`" not in readme]
    assert missing == []


def test_readme_starts_with_the_two_commands() -> None:
    head = (PROJECT_ROOT / "README.md").read_text()[:1200]
    assert "make run" in head and "make test" in head
