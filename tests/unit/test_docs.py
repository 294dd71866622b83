"""The README's configuration reference is generated from the traitlets help and kept up to date."""

from pathlib import Path

from visa_hub.docs import END, START, reference

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_reference_matches_the_code():
    text = README.read_text()
    section = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert section == reference().strip(), "run `python -m visa_hub.docs --write` and commit README.md"


def test_every_configurable_trait_has_help():
    assert "(Unicode, default" in reference()
    for line in reference().splitlines():
        if line.startswith("- `c."):
            assert line.split("): ", 1)[1].strip(), f"no help text: {line}"
