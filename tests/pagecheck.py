"""Browser-test helpers anyone can reuse: screenshots into build/screenshots/, and axe-core accessibility checks.

- :func:`save_screenshot` keeps a page's picture under ``build/screenshots/<name>.png`` (git-ignored), so that
  whoever runs the suite can look at what a user saw.
- :func:`axe_violations` runs axe-core (npm ``axe-core``, installed by ``npm install``) inside the page and
  returns the violations at the given impact levels, described for an assertion message.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "build" / "screenshots"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


def save_screenshot(page, name: str, full_page: bool = True) -> Path:
    """Save what the page shows as ``build/screenshots/<name>.png``; its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    return path


def axe_violations(page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations on the page at these impact levels, one line each (rule, impact, where, help)."""
    if not AXE.exists():
        from conftest import missing_peer

        missing_peer(f"axe-core not installed ({AXE}; run `npm install`)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await window.axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in result["violations"]:
        if violation["impact"] in impacts:
            targets = ", ".join(" ".join(node["target"]) for node in violation["nodes"][:5])
            found.append(f"{violation['id']} ({violation['impact']}) at {targets}: {violation['help']}")
    return found
