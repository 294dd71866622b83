"""Sharing roles: scopes ↔ roles, what each role may do with the owner present or away, and the route gate."""

from __future__ import annotations

import pytest

from visa_hub.sharing.roles import (
    COLLABORATOR,
    DISCONNECT,
    GUEST,
    LOCK,
    OPEN,
    OWNER,
    SHARE_ROLES,
    SUPPORT,
    access_for,
    role_from_scopes,
    role_from_share,
    share_scopes,
)
from visa_hub.singleuser.sharing.gate import DESKTOP, DESKTOP_VIEW_KIND, LAB, connection_kind, may_reach, relative_path


@pytest.mark.parametrize("role", SHARE_ROLES)
def test_sharing_a_shares_scopes_give_back_its_role_on_that_server_only(role):
    scopes = share_scopes(role, "alice", "loki")
    assert scopes[0] == "access:servers!server=alice/loki"
    assert all(s.endswith("!server=alice/loki") for s in scopes)
    assert role_from_scopes(scopes, "alice", "loki") == role
    assert role_from_share(scopes) == role
    # the same share says nothing about another server of hers or of someone else
    assert role_from_scopes(scopes, "alice", "odin") is None
    assert role_from_scopes(scopes, "bob", "loki") is None


def test_sharing_unknown_role_is_refused():
    with pytest.raises(ValueError, match="not a role"):
        share_scopes("owner", "alice", "")


def test_sharing_access_alone_gives_no_role():
    """Hub admins reach every server with access:servers: that alone is not a share."""
    assert role_from_scopes(["access:servers", "admin:users"], "alice", "") is None
    assert not access_for(None, owner_present=True).anything


@pytest.mark.parametrize("present", [True, False])
def test_sharing_owner_may_do_everything_present_or_not(present):
    access = access_for(OWNER, owner_present=present, owner_away=DISCONNECT)
    assert (access.lab, access.lab_write, access.desktop) == (True, True, "control")


@pytest.mark.parametrize("role", [COLLABORATOR, SUPPORT])
def test_sharing_members_while_owner_is_here_have_lab_and_control(role):
    access = access_for(role, owner_present=True, owner_away=LOCK)
    assert (access.lab, access.lab_write, access.desktop, access.reason) == (True, True, "control", "")


@pytest.mark.parametrize("role", [COLLABORATOR, SUPPORT])
def test_sharing_lock_makes_members_view_only_while_owner_is_away(role):
    access = access_for(role, owner_present=False, owner_away=LOCK, owner="alice")
    assert (access.lab, access.lab_write, access.desktop) == (True, False, "view")
    assert "alice is not connected" in access.reason


@pytest.mark.parametrize("role", [COLLABORATOR, SUPPORT, GUEST])
def test_sharing_disconnect_keeps_everyone_out_while_owner_is_away(role):
    access = access_for(role, owner_present=False, owner_away=DISCONNECT, owner="alice")
    assert not access.anything
    assert "alice is not connected" in access.reason


@pytest.mark.parametrize("policy", [LOCK, DISCONNECT])
def test_sharing_unrestricted_access_or_open_policy_changes_nothing_while_away(policy):
    for access in (access_for(COLLABORATOR, owner_present=False, owner_away=policy, unrestricted=True),
                   access_for(COLLABORATOR, owner_present=False, owner_away=OPEN)):
        assert (access.lab_write, access.desktop) == (True, "control")


@pytest.mark.parametrize("present", [True, False])
def test_sharing_guest_only_watches_the_desktop(present):
    access = access_for(GUEST, owner_present=present, owner_away=LOCK)
    assert (access.lab, access.lab_write, access.desktop) == (False, False, "view")


def test_sharing_bad_owner_away_setting_is_refused():
    with pytest.raises(ValueError, match="owner_away must be one of"):
        access_for(COLLABORATOR, owner_present=True, owner_away="sometimes")


def test_sharing_relative_path_and_connection_kinds():
    assert relative_path("/user/alice/lab/tree", "/user/alice/") == "lab/tree"
    assert relative_path("/user/alice", "/user/alice/") == ""
    assert connection_kind("visa-desktop/") == DESKTOP
    assert connection_kind("visa-desktop-view/") == DESKTOP_VIEW_KIND
    assert connection_kind("api/kernels/1/channels") == LAB


GUEST_ROUTES_REFUSED = ["lab", "lab/tree/a.ipynb", "api/contents", "api/kernels", "api/sessions", "api/terminals",
                        "api/me", "files/a.txt", "proxy/8787/status", "visa/api/session", "visa/api/sharing/presence",
                        "", "tree", "api/collaboration/room/json:notebook:1"]


@pytest.mark.parametrize("rel", GUEST_ROUTES_REFUSED)
def test_sharing_gate_keeps_guest_out_of_everything_but_the_desktop(rel):
    guest = access_for(GUEST, owner_present=True)
    assert not may_reach(guest, rel, websocket=False)
    assert not may_reach(guest, rel, websocket=True)


def test_sharing_gate_lets_guest_watch_and_nothing_more():
    guest = access_for(GUEST, owner_present=True)
    for rel in ("visa/desktop-view", "visa/api/desktop", "visa/api/sharing/me", "logout", "oauth_callback"):
        assert may_reach(guest, rel, websocket=False), rel
    assert may_reach(guest, "visa-desktop-view/", websocket=True)
    assert not may_reach(guest, "visa-desktop/", websocket=True)


def test_sharing_gate_locked_member_reads_but_opens_no_lab_websocket():
    locked = access_for(COLLABORATOR, owner_present=False, owner_away=LOCK)
    assert may_reach(locked, "api/contents/a.ipynb", websocket=False)
    assert not may_reach(locked, "api/contents/a.ipynb", websocket=False, method="PUT")
    assert may_reach(access_for(COLLABORATOR, owner_present=True), "api/contents/a", websocket=False, method="PUT")
    assert not may_reach(locked, "api/kernels/1/channels", websocket=True)
    assert not may_reach(locked, "visa-desktop/", websocket=True)
    assert may_reach(locked, "visa-desktop-view/", websocket=True)
