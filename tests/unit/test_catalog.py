"""Site catalog: the demo catalog loads; every mistake is reported with file, key path and problem."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml

from visa_hub.catalog import SiteDataError, load_catalog
from visa_hub.demo import DEMO_CATALOG


def test_demo_catalog_loads_with_ess_instruments():
    catalog = load_catalog(DEMO_CATALOG)
    assert {"LoKI", "DREAM", "ODIN", "BIFROST"} <= {i.name for i in catalog.instruments}
    odin = catalog.instrument("odin")  # User Office spellings vary
    assert odin is not None and odin.default_flavour == "large" and "gpu-large" in odin.flavours
    assert catalog.flavour("gpu-large").gpus == 1
    assert catalog.image(catalog.default_image) is not None


def write(tmp_path: Path, document: dict | str) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return path


def good() -> dict:
    return yaml.safe_load(DEMO_CATALOG.read_text())


def broken(mutate) -> dict:
    document = good()
    mutate(document)
    return document


@pytest.mark.parametrize(
    ("mutate", "path", "problem"),
    [
        (lambda d: d["flavours"][1].update(cpus="four"), "flavours[1].cpus", "must be an integer"),
        (lambda d: d["flavours"][0].update(cpus=0), "flavours[0].cpus", "≥ 1"),
        (lambda d: d["flavours"][0].update(memory_gb=-2), "flavours[0].memory_gb", "> 0"),
        (lambda d: d["flavours"][2].pop("name"), "flavours[2].name", "is required"),
        (lambda d: d["flavours"][1].update(name="small"), "flavours[1].name", "duplicate flavour name 'small'"),
        (lambda d: d["flavours"][0].update(cpu=2), "flavours[0].cpu", "unknown key"),
        (lambda d: d["instruments"][2]["flavours"].append("huge"), "instruments[2].flavours[3]",
         "unknown flavour 'huge'"),
        (lambda d: d["instruments"][0].update(default_flavour="gpu-large"), "instruments[0].default_flavour",
         "not one of this instrument's flavours"),
        (lambda d: d["instruments"][1].update(max_lifetime_hours="a week"), "instruments[1].max_lifetime_hours",
         "must be a number"),
        (lambda d: d["instruments"][0].update(default_lifetime_hours=500), "instruments[0].default_lifetime_hours",
         "must not exceed max_lifetime_hours (168)"),
        (lambda d: d["instruments"][3].update(images=["windows-11"]), "instruments[3].images[0]",
         "unknown image 'windows-11'"),
        (lambda d: d["instruments"][4].update(name="loki"), "instruments[4].name", "duplicate instrument"),
        (lambda d: d.update(default_image="nope"), "default_image", "unknown image 'nope'"),
        (lambda d: d["access"].update(days_after_end=-1), "access.days_after_end", "≥ 0"),
        (lambda d: d.update(instruments={}), "instruments", "must be a list"),
        (lambda d: d.update(flavours=[]), "flavours", "at least one flavour"),
        (lambda d: d.update(flavor=[]), "flavor", "unknown key"),
    ],
)
def test_bad_catalog_names_file_key_and_problem(tmp_path, mutate, path, problem):
    file = write(tmp_path, broken(mutate))
    with pytest.raises(SiteDataError) as caught:
        load_catalog(file)
    message = str(caught.value)
    assert message.startswith(f"{file}: {path}: "), message
    assert problem in message


def test_yaml_syntax_error_names_line(tmp_path):
    file = write(tmp_path, textwrap.dedent("""\
        site: test
        flavours:
          - name: small
            cpus: [2
    """))
    with pytest.raises(SiteDataError, match=rf"^{file}: line \d+, column \d+: invalid YAML"):
        load_catalog(file)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(SiteDataError, match="cannot read file"):
        load_catalog(tmp_path / "absent.yaml")
    with pytest.raises(SiteDataError, match="file is empty"):
        load_catalog(write(tmp_path, ""))


def test_defaults_are_filled_in(tmp_path):
    catalog = load_catalog(write(tmp_path, {
        "flavours": [{"name": "s", "cpus": 1, "memory_gb": 2}],
        "images": [{"name": "img"}],
        "instruments": [{"name": "DREAM", "flavours": ["s"], "max_lifetime_hours": 8}],
    }))
    dream = catalog.instrument("DREAM")
    assert dream.default_flavour == "s"
    assert dream.default_lifetime_hours == 8  # min(24, max)
    assert dream.images == ("img",)
    assert catalog.access.days_before_start == 30 and catalog.access.days_after_end == 365
