"""The hub's look as configuration: product name, words on the login page, colours (light and dark).

The logo is JupyterHub's own ``c.JupyterHub.logo_file`` (visa-hub's by default). Colours are checked on
load for contrast (WCAG AA, 4.5:1 for text): a colour nobody could read is refused with the setting's name.
"""

from __future__ import annotations

import re
from typing import Any

from traitlets import TraitError, Unicode, validate
from traitlets.config import Configurable

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
WHITE, DARK_BACKGROUND = "#ffffff", "#212529"  # text on light-mode buttons; Bootstrap's dark body background
MIN_CONTRAST = 4.5


def _luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


class VisaTheme(Configurable):
    """How the hub's pages look: visa-hub's name, words and colours (the logo: c.JupyterHub.logo_file)."""

    product_name = Unicode("visa-hub", config=True, help="Name of the service in page titles and on the login page.")

    tagline = Unicode(
        "Analysis instances for your ESS experiments: JupyterLab, a remote desktop and Dask on the cluster.",
        config=True,
        help="One sentence under the name on the login page: what people get here.",
    )

    login_help = Unicode(
        "Log in with your facility account. You will see the instances of your experiments and can start new ones.",
        config=True,
        help="Text next to the login form (plain text).",
    )

    primary_colour = Unicode(
        "#0b5e8e",
        config=True,
        help="Main colour (#rrggbb) of buttons, links and progress bars in light mode; white text goes on it, "
             "so it needs a contrast of at least 4.5:1 with white.",
    )

    primary_colour_dark = Unicode(
        "#6cb6e4",
        config=True,
        help="Main colour (#rrggbb) in dark mode; it is used for text and links on the dark background, so it "
             "needs a contrast of at least 4.5:1 with #212529.",
    )

    @validate("primary_colour", "primary_colour_dark")
    def _check_colour(self, proposal: dict[str, Any]) -> str:
        name, value = proposal["trait"].name, proposal["value"]
        if not _HEX.match(value):
            raise TraitError(f"VisaTheme.{name} must be a colour like #0b5e8e, got {value!r}")
        against = WHITE if name == "primary_colour" else DARK_BACKGROUND
        ratio = contrast(value, against)
        if ratio < MIN_CONTRAST:
            raise TraitError(
                f"VisaTheme.{name} {value} has a contrast of {ratio:.1f}:1 with {against}; "
                f"at least {MIN_CONTRAST}:1 is needed so that people can read it"
            )
        return value.lower()

    def template_vars(self) -> dict[str, str]:
        """What the templates read as ``visa``."""
        return {
            "product_name": self.product_name,
            "tagline": self.tagline,
            "login_help": self.login_help,
            "primary_colour": self.primary_colour,
            "primary_colour_dark": self.primary_colour_dark,
        }
