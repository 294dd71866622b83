"""What the relaunch/stop pages say about an instance, and the links an instance gives back to them."""

from __future__ import annotations

from visa_hub.hubpages import action_url
from visa_hub.hubpages.settings import experiment_code, instance_label, settings_rows
from visa_hub.singleuser.session import hub_links

SUMMARY = {
    "experiment": {"code": "LOKI-2026-042", "title": "Lipid nanodiscs"},
    "instrument": "LoKI",
    "flavour": {"name": "large", "cpus": 16, "memory_gb": 64.0, "gpus": 1},
    "image": "ess-analysis-2026.10",
    "image_title": "ESS analysis (2026.10)",
    "lifetime_hours": 12,
}
OPTIONS = {"experiment": "LOKI-2026-042", "flavour": "large", "image": "ess-analysis-2026.10", "lifetime_hours": "12"}


def test_rows_use_titles_from_the_running_session() -> None:
    assert settings_rows(OPTIONS, SUMMARY) == [
        ("Experiment", "LOKI-2026-042: Lipid nanodiscs"),
        ("Instrument", "LoKI"),
        ("Flavour", "large (16 CPUs, 64 GB, 1 GPU)"),
        ("Image", "ESS analysis (2026.10)"),
        ("Lifetime", "12 hours from the new start"),
    ]


def test_rows_of_a_stopped_instance_come_from_its_options_alone() -> None:
    assert settings_rows(OPTIONS, None) == [
        ("Experiment", "LOKI-2026-042"),
        ("Flavour", "large"),
        ("Image", "ess-analysis-2026.10"),
        ("Lifetime", "12 hours from the new start"),
    ]
    # options win: a summary of other settings never lends its titles
    assert ("Image", "ess-analysis-2026.04") in settings_rows({**OPTIONS, "image": "ess-analysis-2026.04"}, SUMMARY)
    assert experiment_code({}, SUMMARY) == "LOKI-2026-042"


def test_labels_and_urls_for_default_and_named_servers() -> None:
    assert instance_label("") == "your instance"
    assert instance_label("gpu", "GPU box") == "instance “GPU box”"
    assert action_url("/hub/", "relaunch", "alice") == "/hub/visa/relaunch/alice/"
    assert action_url("/jh/hub/", "stop", "a b", "loki") == "/jh/hub/visa/stop/a%20b/loki"


def test_an_instance_links_to_the_hub_pages_of_its_own_server() -> None:
    env = {"JUPYTERHUB_BASE_URL": "/jh/", "JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": "loki"}
    links = hub_links(env)
    assert links["relaunch_url"] == action_url(links["hub_prefix"], "relaunch", "alice", "loki")
    assert links["stop_url"] == "/jh/hub/visa/stop/alice/loki"
    assert "relaunch_url" not in hub_links({})  # outside the hub: no links to pages that cannot exist
