r"""Reusable JupyterLab + Playwright harness for tests that drive a notebook in a real browser.

Use it from a test module by loading it as a plugin; the helpers are also methods of ``lab``, so
the module need not import it (importing a module that pytest then loads as a plugin makes pytest
warn that it cannot rewrite its asserts)::

    pytest_plugins = ["lab_harness"]

    def test_viewer(lab, lab_page):
        nb = lab.add_notebook(NOTEBOOK, "case1")        # copied into the server's root
        (nb.parent / "params.json").write_text("{...}")  # parameters beside it, if any
        lab.open_notebook(lab_page, nb)
        assert lab.run_all(lab_page) is True
        lab_page.locator(".jp-OutputArea .widget-slider .noUi-handle").focus()
        lab_page.keyboard.press("ArrowRight")
        lab.wait_for_text(lab_page, ".my-readout", r"^Dice 0\.9")
        assert lab.error_outputs(lab_page) == []

Fixtures
--------
lab : LabServer (session scope)
    ``jupyter lab`` started from this interpreter's environment (``sys.executable -m jupyter lab``)
    on 127.0.0.1, a free port and a random token, with every user-level folder isolated in a
    temporary state folder: ``JUPYTER_CONFIG_DIR``, ``JUPYTER_DATA_DIR``, ``JUPYTER_RUNTIME_DIR``,
    ``JUPYTERLAB_SETTINGS_DIR``, ``JUPYTERLAB_WORKSPACES_DIR``, and ``JUPYTER_PATH``, which holds
    kernel specs named ``pedgm`` and ``python3`` whose argv is ``sys.executable -m
    ipykernel_launcher`` (nothing is written to ``~/.local`` or ``~/.jupyter``); notebooks with an
    unknown kernel name fall back to ``pedgm``. Kernels get the test process's environment
    (``PYTHONPATH`` included, so they import ``pedgm_kit`` from this checkout). Lab settings: news
    and update checks off, no autosave, ``autoStartDefaultKernel`` (no "Select Kernel" dialog),
    ``windowingMode: none`` (every cell output is in the DOM), ``expose_app_in_browser``
    (``window.jupyterapp``), ``--ServerApp.allow_root=True``. Its root folder (``lab.root_dir``) is a temporary folder:
    copy notebooks there with :meth:`LabServer.add_notebook`. The server is stopped at the end of
    the session even when a test fails (SIGTERM, which shuts its kernels down; then SIGKILL of the
    server and of every process that carries this server's marker in its environment).
browser : playwright.sync_api.Browser (module scope)
    Debian's Chromium (``/usr/bin/chromium``, or ``$PEDGM_CHROMIUM``), headless, with the flags
    that work on this machine (WebGL2 through SwiftShader included); Playwright's own browser
    downloads are never used.
lab_page : playwright.sync_api.Page (function scope)
    A fresh browser context and page (1280x1000, default timeout :data:`TIMEOUT_MS`). Uncaught
    JavaScript errors are collected in ``lab_page.pedgm_page_errors`` and fail the test at teardown;
    console messages are kept in ``lab_page.pedgm_console``. After the test the context is closed
    and every kernel session of the server is deleted (kernels outlive pages).

Helpers (module functions, and methods of ``lab``): :func:`open_notebook` (``?reset`` so no tab
of an earlier test is restored, then wait for an idle kernel), :func:`wait_kernel_idle`,
:func:`run_all` (``notebook:run-all-cells`` through ``window.jupyterapp.commands.execute``,
awaited in the page), :func:`error_outputs` (error outputs from the notebook model: in the DOM a
traceback looks like any stderr text), :func:`output_button` (a widget button inside the output
area, never the toolbar's) and :func:`wait_for_text` (a DOM element whose text matches, awaited).

When Chromium, Playwright or JupyterLab is missing the fixtures skip, except where ``CI=true`` or
``PEDGM_REQUIRE_SHARED=1``: there they fail with what is missing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

__all__ = [
    "CHROMIUM_ARGS",
    "KERNEL_NAME",
    "KERNEL_SPECS",
    "TIMEOUT_MS",
    "LabServer",
    "browser",
    "error_outputs",
    "lab",
    "lab_page",
    "open_notebook",
    "output_button",
    "require",
    "run_all",
    "wait_for_text",
    "wait_kernel_idle",
]

KERNEL_NAME = "pedgm"
# kernel specs installed into the isolated JUPYTER_PATH, all running this interpreter: "pedgm", and
# "python3" too, so a notebook saved with the default kernel also runs here (and not on whatever
# `python` is first on PATH)
KERNEL_SPECS = {"pedgm": "pedgm (test)", "python3": "Python 3 (pedgm test)"}
TIMEOUT_MS = 90_000  # generous: 2 shared cores, SwiftShader WebGL
SERVER_START_S = 90.0
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",  # WebGL2 still works (SwiftShader)
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

# User settings written into the isolated JUPYTERLAB_SETTINGS_DIR (<package>/<plugin>.jupyterlab-settings).
USER_SETTINGS = {
    # the "get notified about official Jupyter news?" toast is removed by fetchNews, not by flags
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    # start the kernel without a "Select Kernel" dialog; keep every cell in the DOM
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"autoStartDefaultKernel": True, "windowingMode": "none"},
    # never write outputs back into the notebook under test
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

_MARKER_VAR = "PEDGM_LAB_HARNESS"


# --------------------------------------------------------------------------------------------- prerequisites


def require(condition: bool, message: str) -> None:
    """Skip (locally) or fail (``CI=true`` / ``PEDGM_REQUIRE_SHARED=1``) unless ``condition``."""
    if condition:
        return
    if os.environ.get("CI") == "true" or os.environ.get("PEDGM_REQUIRE_SHARED") == "1":
        pytest.fail(message + " (required in CI: CI=true / PEDGM_REQUIRE_SHARED=1)")
    pytest.skip(message)


def chromium_path() -> str:
    """Debian's Chromium: ``$PEDGM_CHROMIUM``, ``/usr/bin/chromium`` or ``chromium`` on PATH."""
    for path in (os.environ.get("PEDGM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if path and Path(path).is_file() and os.access(path, os.X_OK):
            return path
    require(False, "no Chromium executable (/usr/bin/chromium, chromium on PATH or $PEDGM_CHROMIUM); "
                   "install it with `apt-get install -y chromium`")
    return ""  # not reached


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# --------------------------------------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Run as `python -c _DIE_WITH_PARENT <argv...>`: on Linux, ask for SIGTERM when the test process dies
# (PR_SET_PDEATHSIG survives exec), then become <argv>. So a killed pytest never leaves a server behind.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "try:\n"
    "    ctypes.CDLL(None).prctl(1, signal.SIGTERM)\n"
    "except Exception:\n"
    "    pass\n"
    "os.execv(sys.argv[1], sys.argv[1:])\n"
)


class LabServer:
    """An isolated ``jupyter lab`` serving ``root_dir`` (see the module docstring).

    Parameters
    ----------
    root_dir : path-like
        The server's root folder (Lab writes ``.ipynb_checkpoints`` there: use a temporary one).
    state_dir : path-like
        Where the isolated Jupyter folders, the kernel spec and ``lab.log`` go.
    extra_env : dict, optional
        More environment variables for the server and its kernels.
    """

    def __init__(self, root_dir, state_dir, *, extra_env: dict | None = None):
        self.root_dir = Path(root_dir)
        self.state_dir = Path(state_dir)
        self.token = secrets.token_hex(16)
        self.marker = secrets.token_hex(8)
        self.port = 0
        self.extra_env = dict(extra_env or {})
        self.proc: subprocess.Popen | None = None
        self.log_path = self.state_dir / "lab.log"
        self.start_s = float("nan")
        self.returncode: int | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict:
        """The environment of the server and its kernels."""
        sd = self.state_dir
        env = dict(os.environ)
        env.update(
            JUPYTER_CONFIG_DIR=str(sd / "config"),
            JUPYTER_DATA_DIR=str(sd / "data"),
            JUPYTER_RUNTIME_DIR=str(sd / "runtime"),
            JUPYTER_PATH=str(sd / "jupyter_path"),  # searched first: our "pedgm" kernel spec
            JUPYTERLAB_SETTINGS_DIR=str(sd / "user-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(sd / "workspaces"),
            IPYTHONDIR=str(sd / "ipython"),
            JUPYTER_PLATFORM_DIRS="1",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
            MPLBACKEND="Agg",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env[_MARKER_VAR] = self.marker
        return env

    def _write_state(self) -> None:
        for sub in ("config", "data", "runtime", "user-settings", "workspaces", "ipython"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        for rel, data in USER_SETTINGS.items():
            path = self.state_dir / "user-settings" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data, indent=2))
        for name, display_name in KERNEL_SPECS.items():
            spec_dir = self.state_dir / "jupyter_path" / "kernels" / name
            spec_dir.mkdir(parents=True, exist_ok=True)
            spec = {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": display_name,
                "language": "python",
                "metadata": {"debugger": False},
            }
            (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1))

    def start(self, timeout_s: float = SERVER_START_S) -> float:
        """Start the server; returns the seconds until ``/api/status`` answered."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_state()
        for _attempt in range(3):  # a port taken between _free_port() and the bind: try another
            self.port = _free_port()
            cmd = [
                sys.executable, "-m", "jupyter", "lab",
                "--no-browser", "--ip=127.0.0.1", f"--port={self.port}", "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root_dir}",
                "--ServerApp.allow_root=True",
                "--ServerApp.open_browser=False",
                "--ServerApp.terminals_enabled=False",
                "--LanguageServerManager.autodetect=False",
                "--LabApp.extension_manager=readonly",
                "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
                "--LabApp.expose_app_in_browser=True",
                f"--MappingKernelManager.default_kernel_name={KERNEL_NAME}",
            ]
            if sys.platform == "linux":
                cmd = [sys.executable, "-c", _DIE_WITH_PARENT, *cmd]
            t0 = time.monotonic()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(cmd, env=self.env(), cwd=str(self.root_dir), stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            url = f"{self.base}/api/status?token={self.token}"
            while time.monotonic() - t0 < timeout_s and self.proc.poll() is None:
                try:
                    with urllib.request.urlopen(url, timeout=2) as reply:
                        if reply.status == 200:
                            self.start_s = time.monotonic() - t0
                            return self.start_s
                except (OSError, urllib.error.HTTPError):
                    time.sleep(0.2)
            self.stop()
            if "address already in use" not in self.log_tail().lower():
                raise RuntimeError(f"jupyter lab did not answer on {self.base} within {timeout_s:.0f} s "
                                   f"(exit code {self.returncode}); log:\n{self.log_tail()}")
        raise RuntimeError(f"jupyter lab could not bind a free port in 3 attempts; log:\n{self.log_tail()}")

    def log_tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"

    def api(self, path: str, method: str = "GET"):
        """Call the server's REST API (``path`` like ``/api/sessions``); returns the decoded JSON."""
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=15) as reply:
            body = reply.read()
        return json.loads(body) if body else None

    def url(self, rel: str | os.PathLike, *, reset: bool = True) -> str:
        """``/lab/tree/<rel>`` with the token; ``reset`` starts from an empty workspace (no old tabs)."""
        rel = Path(rel)
        if rel.is_absolute():
            rel = rel.relative_to(self.root_dir)
        query = "reset&" if reset else ""
        return f"{self.base}/lab/tree/{rel.as_posix()}?{query}token={self.token}"

    def add_notebook(self, notebook: str | os.PathLike, subdir: str = "") -> Path:
        """Copy ``notebook`` into ``root_dir/subdir`` (created); returns the copy's path."""
        folder = self.root_dir / subdir
        folder.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy(notebook, folder / Path(notebook).name))

    # page helpers, as methods so that test modules need not import this one (see the docstring)

    def open_notebook(self, page, notebook: str | os.PathLike, timeout_ms: int | None = None) -> float:
        """:func:`open_notebook` on this server."""
        return open_notebook(page, self, notebook, timeout_ms or TIMEOUT_MS)

    @staticmethod
    def run_all(page, timeout_ms: int | None = None) -> bool:
        """:func:`run_all`."""
        return run_all(page, timeout_ms or TIMEOUT_MS)

    @staticmethod
    def wait_kernel_idle(page, timeout_ms: int | None = None) -> None:
        """:func:`wait_kernel_idle`."""
        wait_kernel_idle(page, timeout_ms or TIMEOUT_MS)

    @staticmethod
    def error_outputs(page) -> list[dict]:
        """:func:`error_outputs`."""
        return error_outputs(page)

    @staticmethod
    def output_button(page, text: str):
        """:func:`output_button`."""
        return output_button(page, text)

    @staticmethod
    def wait_for_text(page, selector: str, pattern: str, timeout_ms: int | None = None) -> str:
        """:func:`wait_for_text`."""
        return wait_for_text(page, selector, pattern, timeout_ms or TIMEOUT_MS)

    def shutdown_sessions(self) -> int:
        """Delete every session and its kernel; returns how many there were."""
        sessions = self.api("/api/sessions") or []
        for session in sessions:
            with contextlib.suppress(OSError):
                self.api(f"/api/sessions/{session['id']}", method="DELETE")
        return len(sessions)

    def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM (clean: kernels are shut down), SIGKILL if it hangs, then kill marked leftovers."""
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if proc is not None:
            self.returncode = proc.returncode
        self._kill_marked()

    def _kill_marked(self) -> None:
        """SIGKILL any process still carrying this server's marker (orphaned kernels)."""
        needle = f"{_MARKER_VAR}={self.marker}".encode()
        for entry in Path("/proc").glob("[0-9]*"):
            pid = int(entry.name)
            if pid == os.getpid():
                continue
            try:
                environ = (entry / "environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """An isolated JupyterLab server for the whole session (see the module docstring)."""
    require(_has_module("jupyterlab"), "Python package 'jupyterlab' is not installed (pip install jupyterlab)")
    require(_has_module("ipykernel"), "Python package 'ipykernel' is not installed (pip install ipykernel)")
    base = tmp_path_factory.mktemp("lab")
    root = base / "root"
    root.mkdir()
    server = LabServer(root, base / "state")
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    """Headless Debian Chromium through Playwright, for one test module.

    Module scope, not session: Playwright's sync API keeps an event loop open while it runs, and
    any later module that starts its own ``sync_playwright()`` would fail inside that loop.
    """
    path = chromium_path()
    require(_has_module("playwright"), "Python package 'playwright' is not installed (pip install playwright)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS, timeout=TIMEOUT_MS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def lab_page(browser, lab):
    """A fresh page; fails the test on uncaught JavaScript errors; deletes kernels afterwards."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.pedgm_page_errors = []
    page.pedgm_console = []
    page.on("pageerror", lambda err: page.pedgm_page_errors.append(str(err)))
    page.on("console", lambda msg: page.pedgm_console.append(f"{msg.type}: {msg.text[:300]}"))
    try:
        yield page
    finally:
        context.close()
        with contextlib.suppress(OSError):
            lab.shutdown_sessions()
    assert not page.pedgm_page_errors, f"uncaught JavaScript errors: {page.pedgm_page_errors}"


# --------------------------------------------------------------------------------------------- helpers

_JS_NOTEBOOK_READY = """() => {
  const app = window.jupyterapp;
  if (!app || !app.commands.hasCommand('notebook:run-all-cells')) return false;
  if (!app.commands.isEnabled('notebook:run-all-cells')) return false;
  const w = app.shell.currentWidget;
  const ctx = w && w.sessionContext;
  const k = ctx && ctx.isReady && ctx.session && ctx.session.kernel;
  return !!(k && k.status === 'idle' && k.connectionStatus === 'connected');
}"""

_JS_RUN_ALL = """() => {
  const state = {done: false, ok: null, error: null};
  window.__pedgmRunAll = state;
  window.jupyterapp.commands.execute('notebook:run-all-cells').then(
    ok => { state.ok = ok; state.done = true; },
    err => { state.error = String(err); state.done = true; });
}"""

_JS_ERRORS = """() => {
  const nb = window.jupyterapp.shell.currentWidget.content;
  const cells = nb.model.cells, found = [];
  for (let i = 0; i < cells.length; i++) {
    const cell = cells.get(i);
    if (cell.type !== 'code') continue;
    for (const out of cell.outputs.toJSON()) {
      if (out.output_type === 'error') found.push({cell: i, ename: out.ename, evalue: out.evalue});
    }
  }
  return found;
}"""


def wait_kernel_idle(page, timeout_ms: int = TIMEOUT_MS) -> None:
    """Wait until the current notebook's kernel is idle and connected, and run-all is enabled."""
    page.wait_for_function(_JS_NOTEBOOK_READY, timeout=timeout_ms)


def open_notebook(page, lab: LabServer, notebook: str | os.PathLike, timeout_ms: int = TIMEOUT_MS) -> float:
    """Open a notebook of ``lab.root_dir`` alone (``?reset``) and wait for its idle kernel.

    Returns the seconds it took. Fails on a modal dialog (kernel choice ...) or a wrong kernel.
    """
    t0 = time.monotonic()
    page.goto(lab.url(notebook), timeout=timeout_ms)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=timeout_ms)
    wait_kernel_idle(page, timeout_ms)
    dialogs = page.locator(".jp-Dialog")
    assert dialogs.count() == 0, f"unexpected dialog: {dialogs.all_inner_texts()}"
    kernel = page.locator(".jp-KernelName").first.inner_text()
    assert kernel.strip() in KERNEL_SPECS.values(), f"kernel is {kernel!r}, not one of {list(KERNEL_SPECS.values())}"
    return time.monotonic() - t0


def run_all(page, timeout_ms: int = TIMEOUT_MS) -> bool:
    """Run every cell (``notebook:run-all-cells``) and wait until they have all finished.

    Returns True when every cell ran without error, False when one raised (JupyterLab stops there).
    """
    page.evaluate(_JS_RUN_ALL)  # started here, awaited below: evaluate never hangs on the promise
    page.wait_for_function("() => window.__pedgmRunAll && window.__pedgmRunAll.done", timeout=timeout_ms)
    state = page.evaluate("() => window.__pedgmRunAll")
    if state.get("error"):
        raise AssertionError(f"notebook:run-all-cells failed: {state['error']}")
    return bool(state.get("ok"))


def error_outputs(page) -> list[dict]:
    """Error outputs of the current notebook, from its model: ``[{cell, ename, evalue}]``."""
    return page.evaluate(_JS_ERRORS)


def output_button(page, text: str):
    """A widget button in the notebook's output area whose label is exactly ``text``."""
    return page.locator(".jp-OutputArea .widget-button", has_text=re.compile(rf"^\s*{re.escape(text)}\s*$"))


def wait_for_text(page, selector: str, pattern: str, timeout_ms: int = TIMEOUT_MS) -> str:
    """Wait until an element matching ``selector`` has text matching the regex ``pattern``; returns it."""
    page.wait_for_function(
        """([sel, pat]) => { const re = new RegExp(pat);
            return [...document.querySelectorAll(sel)].some(e => re.test(e.textContent)); }""",
        arg=[selector, pattern], timeout=timeout_ms,
    )
    return page.evaluate(
        """([sel, pat]) => { const re = new RegExp(pat);
            return [...document.querySelectorAll(sel)].map(e => e.textContent).find(t => re.test(t)); }""",
        [selector, pattern],
    )
