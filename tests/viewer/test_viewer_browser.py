"""The slice viewer in a real browser: Voila serves tests/viewer_app.ipynb, Chromium drives it.

Voila runs on 127.0.0.1 on a free port in a subprocess (stopped in every case); Playwright for
Python drives Debian's Chromium (``/usr/bin/chromium``, or ``PEDGM_CHROMIUM``; Playwright's own
browser downloads are not used). The notebook shows SCT's t2s sample with its manual GM mask and
the challenge model's mask, computed here and passed to the notebook through environment
variables (Voila cannot pass papermill parameters). The test moves the slice slider with the
keyboard and checks that the Dice readout becomes the value :func:`pedgm_kit.metrics.dice` gives
for the new slice, and that the picture is not blank.

Skipped only when no Chromium executable is found; a missing ``voila`` or ``playwright`` Python
package is a failure (``pip install voila playwright``).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from pedgm_kit.geometry import Canonical
from pedgm_kit.metrics import dice
from pedgm_kit.segment import segment_image

pytestmark = pytest.mark.slow

NOTEBOOK = Path(__file__).resolve().parents[1] / "viewer_app.ipynb"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
START_SLICE = 3
SERVER_START_S = 40.0
PAGE_LOAD_MS = 90_000
UPDATE_MS = 20_000


def _chromium() -> str:
    """Path of a Chromium executable, or skip with what is missing."""
    candidates = [os.environ.get("PEDGM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                  shutil.which("chromium-browser")]
    for path in candidates:
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    message = ("no Chromium executable: /usr/bin/chromium missing and none on PATH or in PEDGM_CHROMIUM "
               "(install with `apt-get install -y chromium`)")
    if os.environ.get("CI") == "true" or os.environ.get("PEDGM_REQUIRE_SHARED") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _require(module: str) -> None:
    try:
        __import__(module)
    except ImportError:
        pytest.fail(f"Python package '{module}' is not installed; the browser test needs `pip install voila playwright`")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path, n: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM (Voila then shuts its kernel down), then SIGKILL of the process group if it hangs."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def chromium() -> str:
    """Checked before anything costly starts: the browser, then the Python packages."""
    path = _chromium()
    _require("playwright")
    _require("voila")
    return path


@pytest.fixture
def predicted_mask(chromium, t2s_dir, tmp_path) -> Path:
    """The challenge model's GM mask of t2s (the model is cached per process by pedgm_kit.segment)."""
    seg = segment_image(t2s_dir / "t2s.nii.gz", model="challenge")
    path = tmp_path / "t2s_challenge_gmseg.nii.gz"
    seg.to_filename(path)
    return path


@pytest.fixture
def voila_url(chromium, tmp_path, t2s_dir, predicted_mask):
    """Voila serving a copy of viewer_app.ipynb from tmp_path; yields the URL, always stops it."""
    work = tmp_path / "voila"
    (work / "tmp").mkdir(parents=True)
    shutil.copy(NOTEBOOK, work / NOTEBOOK.name)
    env = dict(
        os.environ,
        PEDGM_VIEWER_IMAGE=str(t2s_dir / "t2s.nii.gz"),
        PEDGM_VIEWER_MANUAL=str(t2s_dir / "t2s_gmseg_manual.nii.gz"),
        PEDGM_VIEWER_PREDICTED=str(predicted_mask),
        PEDGM_VIEWER_SLICE=str(START_SLICE),
        JUPYTER_RUNTIME_DIR=str(work / "runtime"),
        IPYTHONDIR=str(work / "ipython"),
        MPLCONFIGDIR=str(work / "mpl"),
        TMPDIR=str(work / "tmp"),  # Voila's kernel connection files
    )
    log_path = work / "voila.log"
    proc = None
    for _attempt in range(3):  # a port taken between _free_port() and Voila's bind: try another
        port = _free_port()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "voila", NOTEBOOK.name, "--no-browser", f"--port={port}",
                 "--Voila.ip=127.0.0.1", "--Voila.port_retries=0", "--VoilaConfiguration.show_tracebacks=True"],
                cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_START_S
        up = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/voila/static/favicon.ico", timeout=2)
                up = True
            except urllib.error.HTTPError:
                up = True  # any HTTP answer means the server listens
            except OSError:
                time.sleep(0.2)
            if up:
                break
        if up:
            break
        _stop(proc)
        if "address already in use" not in _log_tail(log_path).lower():
            pytest.fail(f"Voila did not answer on 127.0.0.1:{port} within {SERVER_START_S:.0f} s; log:\n{_log_tail(log_path)}")
    else:
        pytest.fail(f"Voila could not bind a free port in 3 attempts; log:\n{_log_tail(log_path)}")
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        _stop(proc)


def test_slider_moves_dice_readout_in_chromium(chromium, voila_url, t2s_dir, predicted_mask, tmp_path, monkeypatch):
    from PIL import Image
    from playwright.sync_api import sync_playwright

    # Chromium's profile (and its SingletonSocket) go under TMPDIR; a unix socket path must stay
    # under 108 bytes, so a deep tmp_path would make Chromium abort: then leave the system temp
    # folder, from which Playwright removes the profile on close.
    browser_tmp = tmp_path / "b"
    if len(str(browser_tmp)) <= 60:
        browser_tmp.mkdir()
        monkeypatch.setenv("TMPDIR", str(browser_tmp))

    truth = Canonical(nib.load(t2s_dir / "t2s_gmseg_manual.nii.gz")).data == 1
    pred = Canonical(nib.load(predicted_mask)).data == 1
    expected = {z: f"{dice(pred[..., z], truth[..., z]):.4f}" for z in (START_SLICE, START_SLICE + 1)}
    assert truth[..., START_SLICE].any() and truth[..., START_SLICE + 1].any()
    assert expected[START_SLICE] != expected[START_SLICE + 1], "pick slices whose Dice differs"

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS, timeout=60_000)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(UPDATE_MS)
            page.goto(voila_url, wait_until="domcontentloaded", timeout=PAGE_LOAD_MS)
            try:
                page.wait_for_selector(".pedgm-dice", timeout=PAGE_LOAD_MS)
            except Exception:
                page.screenshot(path=str(tmp_path / "page_at_timeout.png"))
                raise
            before_dice = page.inner_text(".pedgm-dice")
            assert page.inner_text(".pedgm-slice") == str(START_SLICE)
            assert before_dice == expected[START_SLICE]
            before_png = page.locator(".pedgm-image").screenshot()

            handle = page.locator(".widget-slider.pedgm-slice-slider .noUi-handle")
            assert handle.count() == 1
            handle.focus()
            page.keyboard.press("ArrowRight")
            page.wait_for_function(
                "old => { const d = document.querySelector('.pedgm-dice');"
                " return d !== null && d.textContent !== old; }",
                arg=before_dice, timeout=UPDATE_MS,
            )
            after_dice = page.inner_text(".pedgm-dice")
            assert page.inner_text(".pedgm-slice") == str(START_SLICE + 1)
            assert after_dice == expected[START_SLICE + 1]
            assert "top A" in page.inner_text(".pedgm-orientation")

            page.wait_for_timeout(300)  # let the new PNG decode before the screenshot
            after_png = page.locator(".pedgm-image").screenshot()
            page.locator(".pedgm-viewer").screenshot(path=str(tmp_path / "viewer.png"))
        finally:
            browser.close()

    shot = np.asarray(Image.open(io.BytesIO(after_png)).convert("RGB")).astype(float)
    non_white = float(np.mean(shot.min(axis=2) < 240))
    r, g, b = shot[..., 0], shot[..., 1], shot[..., 2]
    overlay = float(np.mean((r - g > 80) & (b - g > 60)))  # the model's magenta fill, blended at opacity 0.5
    assert shot.shape[0] > 100 and shot.shape[1] > 100
    assert shot.std() > 20.0 and non_white > 0.5, f"blank picture: std {shot.std():.1f}, non-white {non_white:.2f}"
    assert overlay > 0.001, f"no model overlay in the picture (magenta fraction {overlay:.4f})"
    assert before_png != after_png, "the picture did not change with the slice"
    print(f"slice {START_SLICE} -> {START_SLICE + 1}: Dice {before_dice} -> {after_dice}; picture {shot.shape[1]}x"
          f"{shot.shape[0]} px, std {shot.std():.1f}, non-white {non_white:.2f}, overlay {overlay:.3f}")
