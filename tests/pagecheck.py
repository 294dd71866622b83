"""Accessibility checks for browser tests: axe-core (npm ``axe-core``, installed by ``npm install``) in the page.

Screenshots for people to look at: :func:`screenshots.save_screenshot` (``build/screenshots/``).
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"


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
