"""Screenshots the browser tests keep for people to look at: ``build/screenshots/<name>.png`` (git-ignored)."""

from __future__ import annotations

from pathlib import Path

SCREENSHOTS = Path(__file__).resolve().parents[1] / "build" / "screenshots"


def save_screenshot(page, name: str) -> Path:
    """Save the page as ``build/screenshots/<name>.png`` (overwritten by the next run) and return the path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path
