"""The hub's look as configuration: colours are checked for contrast, with the setting's name in the error."""

from __future__ import annotations

import pytest
from traitlets import TraitError
from traitlets.config import Config

from visa_hub.look import ThemeVars
from visa_hub.look.theme import VisaTheme, contrast


def test_contrast_is_wcags():
    assert contrast("#000000", "#ffffff") == pytest.approx(21)
    assert contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)  # the lightest grey for text on white


def test_default_colours_are_readable():
    theme = VisaTheme()
    assert contrast(theme.primary_colour, "#ffffff") >= 4.5  # white text on buttons
    assert contrast(theme.primary_colour_dark, "#212529") >= 4.5  # links on the dark background


@pytest.mark.parametrize(
    ("setting", "value", "problem"),
    [
        ("primary_colour", "#ffcc00", "VisaTheme.primary_colour #ffcc00 has a contrast of 1.5:1 with #ffffff"),
        ("primary_colour_dark", "#333333",
         "VisaTheme.primary_colour_dark #333333 has a contrast of 1.2:1 with #212529"),
        ("primary_colour", "blue", "VisaTheme.primary_colour must be a colour like #0b5e8e, got 'blue'"),
    ],
)
def test_unreadable_or_malformed_colours_are_refused(setting, value, problem):
    with pytest.raises(TraitError) as refused:
        VisaTheme(**{setting: value})
    assert problem in str(refused.value)


def test_operators_set_the_theme_in_their_config_and_a_bad_value_keeps_the_default_look(caplog):
    config = Config()
    config.VisaTheme.product_name = "ESS analysis"
    config.VisaTheme.primary_colour = "#005a3c"
    assert ThemeVars(config)(None)["primary_colour"] == "#005a3c"
    assert ThemeVars(config)(None)["product_name"] == "ESS analysis"
    config.VisaTheme.primary_colour = "#eeeeee"
    with caplog.at_level("ERROR", logger="JupyterHub"):
        fallback = ThemeVars(config)(None)
    assert fallback["primary_colour"] == VisaTheme().primary_colour
    assert "VisaTheme.primary_colour #eeeeee" in caplog.text
