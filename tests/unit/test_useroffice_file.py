"""Demo User Office: the demo people are what the README promises; bad files get precise errors."""

from __future__ import annotations

import datetime as dt

import pytest
import yaml

from visa_hub.catalog import load_catalog
from visa_hub.demo import DEMO_CATALOG, DEMO_USER_OFFICE
from visa_hub.people import LOCAL_CONTACT, PRINCIPAL_INVESTIGATOR, Person, hub_groups
from visa_hub.policy import may_use_service
from visa_hub.sitedata import SiteDataError
from visa_hub.useroffice.file import FileUserOffice

CATALOG = load_catalog(DEMO_CATALOG)


async def test_demo_people_cover_every_case():
    office = FileUserOffice()
    now = dt.datetime.now(dt.UTC)
    alice = await office.find_person(username="alice")
    bob = await office.find_person(email="BOB@example.org")
    carl = await office.find_person(username="carl")
    dora = await office.find_person(username="dora")
    erik = await office.find_person(username="erik")
    loki = alice.experiment("LOKI-2026-042")
    assert loki.role == PRINCIPAL_INVESTIGATOR and loki.starts_at <= now < loki.ends_at  # running now
    assert bob.experiment("LOKI-2026-042").role == "co-proposer"
    assert carl.is_staff and carl.experiment("LOKI-2026-042").role == LOCAL_CONTACT
    assert dora.experiments and not may_use_service(dora, CATALOG, now)  # ended long ago
    assert erik.experiments == () and not may_use_service(erik, CATALOG, now)
    assert await office.find_person(username="mallory") is None
    assert "proposal:LOKI-2026-042" in hub_groups(alice) and "instrument:LoKI" in hub_groups(alice)
    assert len(await office.site_experiments()) == 4


async def test_person_round_trips_through_auth_state():
    alice = await FileUserOffice().find_person(username="alice")
    assert Person.from_dict(yaml.safe_load(yaml.safe_dump(alice.to_dict()))) == alice


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["experiments"][0].update(starts="next tuesday"), "experiments[0].starts: must be a date"),
        (lambda d: d["experiments"][0].update(ends="today-10d"), "experiments[0].ends: ends"),
        (lambda d: d["experiments"][0]["members"].update({"co-proposer": ["zed"]}),
         "experiments[0].members.co-proposer[0]: unknown person 'zed'"),
        (lambda d: d["experiments"][0]["members"].update({"owner": ["alice"]}),
         "experiments[0].members.owner: unknown key"),
        (lambda d: d["people"][2].update(roles=["wizard"]), "people[2].roles[0]: must be one of"),
        (lambda d: d["people"].append({"username": "alice"}), "people[6].username: duplicate username"),
    ],
)
async def test_bad_user_office_file(tmp_path, mutate, message):
    document = yaml.safe_load(DEMO_USER_OFFICE.read_text())
    mutate(document)
    path = tmp_path / "uo.yaml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(SiteDataError) as caught:
        await FileUserOffice(path=str(path)).find_person(username="alice")
    assert str(caught.value).startswith(str(path)) and message in str(caught.value)


async def test_file_changes_are_picked_up(tmp_path):
    document = yaml.safe_load(DEMO_USER_OFFICE.read_text())
    path = tmp_path / "uo.yaml"
    path.write_text(yaml.safe_dump(document))
    office = FileUserOffice(path=str(path))
    assert (await office.find_person(username="bob")).experiment("LOKI-2026-042")
    document["experiments"][0]["members"]["co-proposer"] = []
    path.write_text(yaml.safe_dump(document))
    import os
    os.utime(path, (0, 12345))  # make sure the mtime differs even on coarse clocks
    assert (await office.find_person(username="bob")).experiment("LOKI-2026-042") is None
