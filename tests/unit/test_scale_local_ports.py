"""Two local instances started at the same moment never get the same port (scale)."""

from __future__ import annotations

import itertools

import pytest

from spawners.ports import PortClaims


def test_scale_a_port_handed_to_one_instance_is_not_handed_to_another_until_it_stops():
    # what the kernel's "bind port 0" can answer to two spawns in the same moment: the same free port twice
    answers = itertools.chain([41000, 41000, 41000, 41001], itertools.repeat(41002))
    claims = PortClaims(pick=lambda: next(answers))
    assert claims.claim("alice/") == 41000
    assert claims.claim("bob/LOKI-2026-042") == 41001  # not alice's port
    assert claims.holder(41000) == "alice/"
    claims.release("bob/LOKI-2026-042", 41000)  # not bob's to give back
    assert claims.holder(41000) == "alice/"
    claims.release("alice/", 41000)  # alice's instance stopped
    assert claims.holder(41000) is None


def test_scale_the_same_instance_may_claim_the_port_it_holds_again():
    claims = PortClaims(pick=lambda: 41000)
    assert claims.claim("alice/") == 41000
    assert claims.claim("alice/") == 41000


def test_scale_no_free_port_is_a_clear_error():
    claims = PortClaims(pick=lambda: 41000, attempts=3)
    claims.claim("alice/")
    with pytest.raises(RuntimeError, match="no free port for bob/ after 3 attempts"):
        claims.claim("bob/")
