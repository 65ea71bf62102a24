"""`make lab` starts JupyterLab, also when the user is root (containers, cloud machines)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_lab_passes_allow_root_only_for_root():
    out = subprocess.run(["make", "-n", "lab"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert ("--allow-root" in out) == (os.getuid() == 0)


@pytest.mark.slow
def test_make_lab_starts_and_serves(tmp_path):
    """The real `make lab` command line comes up and answers the server API (as root here in CI)."""
    port, token = _free_port(), "pedgm-test-token"
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"), "JUPYTER_CONFIG_DIR": str(tmp_path / "cfg"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "ws")}
    args = f"--no-browser --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    proc = subprocess.Popen(["make", "lab", f"LAB_PORT={port}", f"LAB_ARGS={args}"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline, status = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2) as r:
                    status = json.load(r)
                    break
            except OSError:
                time.sleep(1)
        if status is None:
            _stop(proc)
            raise AssertionError("make lab did not serve:\n" + proc.communicate(timeout=30)[0][-3000:])
        assert "started" in status
    finally:
        _stop(proc)


def _stop(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=30)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue
