"""The load tests' stand-in instance answers as the person it was started for (scale)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request

import pytest

from hubtest import free_port, wait_until
from visa_hub.testing.standin_lab import listen_address


def _answers(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except OSError:
        return False
    return True


@pytest.fixture
def standin():
    port = free_port()
    env = dict(os.environ, JUPYTERHUB_USER='al"ice', JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}/user/alice/")
    process = subprocess.Popen([sys.executable, "-m", "visa_hub.testing.standin_lab"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(url + "/"), timeout=20, what="the stand-in to answer")
        yield url
    finally:
        process.terminate()
        process.wait(10)


def test_scale_standin_answers_every_get_naming_her_and_the_path(standin):
    with urllib.request.urlopen(standin + '/user/alice/api/status?q="x"', timeout=5) as response:
        assert response.status == 200
        assert response.headers["X-JupyterHub-Version"]
        assert json.loads(response.read()) == {"version": "stand-in", "user": 'al"ice',
                                                "path": '/user/alice/api/status?q="x"'}


def test_scale_standin_refuses_other_methods(standin):
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(standin + "/user/alice/api", data=b"{}", method="POST"),
                               timeout=5)
    assert refused.value.code == 405


def test_scale_standin_listens_where_it_is_told():
    assert listen_address([], {"JUPYTERHUB_SERVICE_URL": "http://127.0.0.1:41234/user/a/"}) == ("127.0.0.1", 41234)
    assert listen_address([], {"JUPYTERHUB_SERVICE_URL": "http://[::1]:5/user/a/"}) == ("::1", 5)
    assert listen_address(["--ip=0.0.0.0", "--port=9"], {}) == ("0.0.0.0", 9)


def test_scale_standin_stops_quietly_on_sigint_as_jupyterhub_stops_it():
    port = free_port()
    env = dict(os.environ, JUPYTERHUB_USER="alice", JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}/user/alice/")
    process = subprocess.Popen([sys.executable, "-m", "visa_hub.testing.standin_lab"], env=env,
                               stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: _answers(f"http://127.0.0.1:{port}/"), timeout=20, what="the stand-in to answer")
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
        assert process.stderr.read() == ""  # no traceback in the hub's log
    finally:
        process.kill()
