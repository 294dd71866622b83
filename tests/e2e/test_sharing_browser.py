"""In two real browsers: a collaborator in the owner's Lab and desktop, real-time editing, lock, revocation, a guest.

alice and bob each have their own browser context (their own cookies). Shares are granted as visa-hub's
sessions service grants them (through the hub's REST API); what a person notices is checked in the browser.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import pytest
from screenshots import save_screenshot

from hubtest import wait_until
from sharing_support import sharing_hub

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

NOTEBOOK = "shared.ipynb"
DESKTOP = ".visa-desktop"


@dataclass
class Urls:
    """Where the browser finds the hub and alice's instance (her own origin when subdomains are on)."""

    hub: str
    alice: str  # ends with /user/alice

    @classmethod
    def of(cls, hub, subdomains: bool) -> Urls:
        if not subdomains:
            return cls(hub.url, f"{hub.url}/user/alice")
        return cls(f"http://localhost:{hub.port}", f"http://alice.localhost:{hub.port}/user/alice")


def login(browser, urls: Urls, name: str):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{urls.hub}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", "visa-demo")
    page.click("#login_submit")
    # her home page asks the sessions service in the background (its first call logs her in there): let it
    page.wait_for_load_state("networkidle")
    return page


def start_instance(page, urls: Urls) -> None:
    page.goto(f"{urls.hub}/hub/spawn")
    page.wait_for_selector("#visa-spawn-form")
    page.click("#spawn_form button[type=submit], #spawn_form input[type=submit]")
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=90_000)
    assert page.url.startswith(urls.alice), page.url  # her own origin when subdomains are on
    page.wait_for_selector(".jp-Launcher", timeout=60_000)


def authorize_if_asked(page) -> None:
    """JupyterHub asks once before another user's server may identify you."""
    page.wait_for_load_state()
    if "/oauth2/authorize" in page.url:
        page.click("form button[type=submit]")


def server_request(page, urls: Urls, method: str, path: str, body: dict | None = None) -> int:
    """The status of a request to alice's server made by the page itself (on her server's origin), with the
    server's XSRF token, as Lab makes them."""
    assert page.url.startswith(urls.alice), page.url
    return page.evaluate("""async ([url, method, body]) => {
        const xsrf = (document.cookie.match(/(?:^|; )_xsrf=([^;]*)/) || [])[1] || '';
        const response = await fetch(url, {method, body, credentials: 'same-origin',
                                           headers: {'X-XSRFToken': decodeURIComponent(xsrf)}});
        return response.status;
    }""", [f"{urls.alice}/{path}", method, json.dumps(body) if body is not None else None])


def type_in_first_cell(page, text: str) -> None:
    editor = page.locator(".jp-NotebookPanel .jp-Cell .cm-content").first
    editor.click()
    page.keyboard.press("End")
    page.keyboard.type(text)


def open_session_panel(page, urls: Urls) -> None:
    page.goto(f"{urls.alice}/lab?visa-open=session")
    page.wait_for_selector(".visa-sharing .visa-sharing-share", timeout=60_000)


def share_from_panel(page, user: str, role: str) -> str:
    """Alice shares in the Session panel as a person would; the panel's message afterwards."""
    form = page.locator(".visa-sharing-share")
    form.locator("input[name=user]").fill(user)
    form.locator("select[name=role]").select_option(role)
    form.locator("button[type=submit]").click()
    message = page.locator(".visa-sharing-message")
    message.wait_for()
    page.wait_for_function("() => document.querySelector('.visa-sharing-message').textContent.trim() !== ''")
    text = message.inner_text()
    page.evaluate("() => { document.querySelector('.visa-sharing-message').textContent = ''; }")
    return text


@pytest.mark.parametrize("subdomains", [False, True], ids=["one-origin", "subdomains"])
def test_sharing_collaborator_edits_with_owner_in_real_time_then_loses_access(browser, tmp_path, subdomains):
    with sharing_hub(tmp_path / "data", subdomains=subdomains) as (hub, _sharer):
        urls = Urls.of(hub, subdomains)
        olga = login(browser, urls, "olga")  # has an account, is not in the experiment
        olga.context.close()
        alice = login(browser, urls, "alice")
        start_instance(alice, urls)
        notebook = {"type": "notebook", "content": {
            "cells": [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [],
                       "execution_count": None}],
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
            "nbformat": 4, "nbformat_minor": 5}}
        assert server_request(alice, urls, "PUT", f"api/contents/{NOTEBOOK}", notebook) == 201
        bob = login(browser, urls, "bob")

        # alice shares from the Session panel: someone outside the experiment is refused, and told why
        open_session_panel(alice, urls)
        refused = share_from_panel(alice, "olga", "collaborator")
        assert "not a member of experiment LOKI-2026-042" in refused, refused
        shared_at = time.monotonic()
        assert share_from_panel(alice, "bob", "collaborator") == "Shared with bob as collaborator."
        alice.wait_for_selector(".visa-sharing-members li[data-user=bob][data-role=collaborator]")
        save_screenshot(alice, "sharing-session-panel")
        # her dashboard's card names the members
        alice.goto(f"{urls.hub}/hub/home")
        alice.wait_for_selector(".visa-card .visa-members:has-text('bob (collaborator)')", timeout=20_000)

        # bob finds it on his home page and opens alice's Lab from there
        bob.goto(f"{urls.hub}/hub/home")
        bob.wait_for_selector("#visa-shared-with-me .visa-shared[data-owner=alice] .visa-shared-open",
                              timeout=20_000)
        assert "you are collaborator" in bob.locator("#visa-shared-with-me").inner_text()
        save_screenshot(bob, "sharing-shared-with-me")
        bob.click("#visa-shared-with-me .visa-shared[data-owner=alice] .visa-shared-open")
        authorize_if_asked(bob)
        bob.wait_for_selector("#visa-sharing-banner", timeout=60_000)
        lab_loaded = time.monotonic() - shared_at
        assert "alice's session (LOKI-2026-042) as collaborator" in bob.locator("#visa-sharing-banner").inner_text()
        print(f"share → collaborator's Lab loaded: {lab_loaded:.1f} s")

        # both open the notebook; each sees the other's edit within 2 s (jupyter-collaboration)
        alice.goto(f"{urls.alice}/lab/tree/{NOTEBOOK}")
        alice.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-content", timeout=60_000)
        bob.goto(f"{urls.alice}/lab/tree/{NOTEBOOK}")
        bob.wait_for_selector(".jp-NotebookPanel .jp-Cell .cm-content", timeout=60_000)
        type_in_first_cell(alice, "  # alice was here")
        started = time.monotonic()
        bob.wait_for_function("() => document.querySelector('.jp-NotebookPanel .jp-Cell .cm-content')"
                              ".innerText.includes('alice was here')", timeout=2_000)
        alice_to_bob = time.monotonic() - started
        type_in_first_cell(bob, "  # bob too")
        started = time.monotonic()
        alice.wait_for_function("() => document.querySelector('.jp-NotebookPanel .jp-Cell .cm-content')"
                                ".innerText.includes('bob too')", timeout=2_000)
        bob_to_alice = time.monotonic() - started
        print(f"edit seen by the other: alice → bob {alice_to_bob:.2f} s, bob → alice {bob_to_alice:.2f} s")
        save_screenshot(bob, "sharing-collaborator-notebook")

        # bob also has alice's desktop, with keyboard and mouse (she is here)
        bob.goto(f"{urls.alice}/lab?visa-open=desktop")
        bob.wait_for_selector(f"{DESKTOP}[data-state=connected]", timeout=60_000)
        assert bob.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Desktop (view only)").count() == 0
        save_screenshot(bob, "sharing-collaborator-desktop")
        # alice's Desktop tab says who else is on her desktop
        alice.goto(f"{urls.alice}/lab?visa-open=desktop")
        alice.wait_for_selector(f"{DESKTOP}[data-state=connected]", timeout=60_000)
        alice.wait_for_selector(".visa-desktop-watchers:has-text('Also on the desktop: bob (control)')",
                                timeout=15_000)

        # the Session panel shows who is connected now; alice revokes there
        open_session_panel(alice, urls)
        alice.wait_for_selector(".visa-sharing-connected li[data-user=bob][data-role=collaborator]",
                                timeout=20_000)
        assert "since" in alice.locator(".visa-sharing-connected li[data-user=bob]").inner_text()
        revoked = time.monotonic()
        alice.click(".visa-sharing-members li[data-user=bob] .visa-sharing-revoke")
        bob.wait_for_selector(f"{DESKTOP}:not([data-state=connected])", timeout=10_000)
        desktop_gone = time.monotonic() - revoked
        wait_until(lambda: server_request(bob, urls, "GET", "api/contents") == 403,
                   10 - (time.monotonic() - revoked), "bob's next request to be refused")
        requests_gone = time.monotonic() - revoked
        print(f"revoke → access gone: desktop {desktop_gone:.1f} s, next request 403 after {requests_gone:.1f} s")
        assert requests_gone < 10
        assert server_request(alice, urls, "GET", "api/contents") == 200
        alice.context.close()
        bob.context.close()


@pytest.mark.parametrize("subdomains", [False, True], ids=["one-origin", "subdomains"])
def test_sharing_owner_away_locks_the_collaborators_desktop_until_she_returns(browser, tmp_path, subdomains):
    with sharing_hub(tmp_path / "data", subdomains=subdomains) as (hub, sharer):
        urls = Urls.of(hub, subdomains)
        alice = login(browser, urls, "alice")
        start_instance(alice, urls)
        bob = login(browser, urls, "bob")
        sharer.grant("alice", "bob", "collaborator")
        bob.goto(f"{urls.alice}/lab?visa-open=desktop")
        authorize_if_asked(bob)
        bob.wait_for_selector(f"{DESKTOP}[data-state=connected]", timeout=60_000)
        assert bob.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="Desktop (view only)").count() == 0

        alice.close()  # her last tab
        left = time.monotonic()
        bob.wait_for_selector("#jp-main-dock-panel .lm-TabBar-tab:has-text('Desktop (view only)')", timeout=5_000)
        print(f"owner left → collaborator's desktop view only: {time.monotonic() - left:.1f} s")
        save_screenshot(bob, "sharing-locked-desktop")

        alice = alice.context.new_page()
        alice.goto(f"{urls.alice}/lab")
        alice.wait_for_selector("#jp-main-dock-panel", timeout=60_000)
        bob.locator("#jp-main-dock-panel .lm-TabBar-tabLabel", has_text=re.compile(r"^Desktop$")).wait_for(
            timeout=20_000)
        bob.wait_for_selector(f"{DESKTOP}[data-state=connected]", timeout=20_000)
        alice.context.close()
        bob.context.close()


@pytest.mark.parametrize("subdomains", [False, True], ids=["one-origin", "subdomains"])
def test_sharing_guest_watches_the_desktop_page_and_nothing_else(browser, tmp_path, subdomains):
    with sharing_hub(tmp_path / "data", subdomains=subdomains) as (hub, sharer):
        urls = Urls.of(hub, subdomains)
        alice = login(browser, urls, "alice")
        start_instance(alice, urls)
        alice.goto(f"{urls.alice}/lab?visa-open=desktop")
        alice.wait_for_selector(f"{DESKTOP}[data-state=connected]", timeout=60_000)
        carl = login(browser, urls, "carl")
        sharer.grant("alice", "carl", "guest")
        carl.goto(f"{urls.alice}/visa/desktop-view")
        authorize_if_asked(carl)
        carl.wait_for_selector("body[data-state=connected]", timeout=60_000)
        assert "View only" in carl.locator("header").inner_text()
        assert "alice" in carl.locator("h1").inner_text() and "LOKI-2026-042" in carl.locator("h1").inner_text()
        save_screenshot(carl, "sharing-guest-desktop")
        lab = carl.goto(f"{urls.alice}/lab")
        assert lab.status == 403 and "Guests watch the desktop only" in carl.content()
        carl.goto(f"{urls.alice}/visa/desktop-view")
        carl.wait_for_selector("body[data-state=connected]", timeout=60_000)
        # alice copies something on her desktop: the guest's page receives no clipboard
        alice.evaluate("""() => {
            document.querySelector('.visa-desktop-clipboard textarea').value = 'secret of alice';
            document.querySelector('.visa-desktop-clipboard-send').click();
        }""")
        time.sleep(2)
        assert carl.evaluate("() => document.body.dataset.clipboardEvents || '0'") == "0"
        alice.context.close()
        carl.context.close()


def test_sharing_support_staff_ask_owner_accepts_in_her_panel(browser, tmp_path):
    with sharing_hub(tmp_path / "data", VISA_TEST_SHARING=json.dumps({"interval": 1})) as (hub, _sharer):
        urls = Urls.of(hub, subdomains=False)
        alice = login(browser, urls, "alice")
        start_instance(alice, urls)
        carl = login(browser, urls, "carl")  # staff, local contact of LOKI-2026-042

        carl.goto(f"{urls.hub}/services/visa-sessions/support")
        authorize_if_asked(carl)
        row = carl.locator("#supportable tr[data-owner=alice]")
        row.wait_for(timeout=30_000)
        carl.once("dialog", lambda dialog: dialog.accept("Your reduction of run 4242 fails: let me look"))
        row.locator(".visa-support-request").click()
        carl.wait_for_selector("#supportable tr[data-owner=alice][data-state=pending]", timeout=10_000)
        assert "waiting for the owner" in row.inner_text()
        lab = carl.goto(f"{urls.alice}/lab")
        assert lab.status == 403 or "/oauth2/authorize" in carl.url  # nothing before her answer
        save_screenshot(alice, "sharing-support-request-before")

        open_session_panel(alice, urls)
        request = alice.locator(".visa-sharing-requests li[data-requester=carl]")
        request.wait_for(timeout=20_000)
        assert "run 4242" in request.inner_text()
        save_screenshot(alice, "sharing-support-request")
        request.locator("button[data-decision=support]").click()
        alice.wait_for_selector(".visa-sharing-members li[data-user=carl][data-role=support]", timeout=10_000)
        assert "until" in alice.locator(".visa-sharing-members li[data-user=carl]").inner_text()

        carl.goto(f"{urls.hub}/services/visa-sessions/support")
        open_link = carl.locator("#supportable tr[data-owner=alice][data-state=accepted-as-support] .visa-support-open")
        open_link.wait_for(timeout=20_000)
        open_link.click()
        authorize_if_asked(carl)
        carl.wait_for_selector("#visa-sharing-banner", timeout=60_000)
        assert "as support" in carl.locator("#visa-sharing-banner").inner_text()
        alice.context.close()
        carl.context.close()
