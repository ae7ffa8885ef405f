"""The tour notebook in a real browser: headless Chromium driven by Playwright.

1. JupyterLab 4 and Notebook 7 (from this venv) open notebooks/00-tour.ipynb on the 'lakebook'
   kernel and run every cell; the kernel's HTML tables render, and so does its Plotly chart
   (plotly's renderer extension draws `application/vnd.plotly.v1+json` as an SVG plot), with
   no error in the browser console.
2. `jupyter nbconvert --to html --execute` exports the tour; the file opened with the network
   cut still draws the chart, because the kernel's text/html fallback embeds plotly.js.
(VS Code renders the same plotly mime bundle natively: test_notebooks checks the bundle.)

The browser is Debian's chromium at /usr/bin/chromium (install/setup.sh installs it); Playwright
never downloads one. Screenshots (and, on failure, the server log) go to tests/artifacts/browser/.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kernel_harness import KERNEL_NAME, LOOPBACK, NOTEBOOKS, REPO
from playwright.sync_api import Browser, ConsoleMessage, JSHandle, Page, Request, Route, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
JUPYTER = Path(sys.prefix) / "bin" / "jupyter"  # the venv running the tests (setup.sh's)
ARTIFACTS = REPO / "tests" / "artifacts" / "browser"
TOUR = "00-tour.ipynb"
TABLE_CELL = "ls"  # `%lake ls` answers with an HTML table
LISTED = "clicks/dt=2026-01-01/hour=01/"  # a key in that listing
CHART_CELL = "sql-chart"  # `%sql … --chart bar`
PLOTLY_MIME = "application/vnd.plotly.v1+json"
# A drawn chart: a plotly.js plot whose root SVG has at least one trace with a shape (a bar, a
# line, a marker or a pie slice is a path in a `g.trace`).
PLOT = ".js-plotly-plot"
DRAWN = "svg.main-svg .trace path"

# Each test takes ~10-20 s; this bound (and the waits below) leave room for a loaded 2-core CI.
pytestmark = pytest.mark.timeout(300)

# JupyterLab user settings for the test server (a fresh settings dir, so nothing of the
# user's applies): render every cell (no windowing, so off-screen outputs are in the DOM
# and the screenshot shows the whole notebook), and no news/update check (no network, no toast).
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": '{"windowingMode": "none"}',
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": (
        '{"fetchNews": "false", "checkForUpdates": false}'
    ),
}


# --- the browser -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():  # fail, never skip: the browser test is part of the suite
        raise RuntimeError(f"{CHROMIUM} not found: run install/setup.sh (it installs Debian's chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        yield browser
        browser.close()


@dataclass
class Console:
    """Errors the page reported: console.error messages and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)

    def attach(self, page: Page) -> None:
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))

    def _on_console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            where = msg.location.get("url", "")
            self.errors.append(f"console.error: {msg.text} ({where})")


@contextmanager
def failure_artifacts(page: Page, name: str, logs: Callable[[], dict[str, str]]) -> Iterator[None]:
    """On any failure (timeouts included) keep `<name>-failure.png` and `<name>-failure-<log>`
    for each log, then re-raise. A passing run removes those of an earlier failure."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for stale in ARTIFACTS.glob(f"{name}-failure*"):
        stale.unlink()
    try:
        yield
    except BaseException:
        try:
            page.screenshot(path=ARTIFACTS / f"{name}-failure.png", full_page=True)
        except Exception as e:  # the page may be gone; the logs still matter
            print(f"no failure screenshot: {e}")
        for log_name, text in logs().items():
            (ARTIFACTS / f"{name}-failure-{log_name}").write_text(text)
            print(f"--- {log_name} (tail) ---\n{text[-6000:]}")
        raise


# --- a JupyterLab server -------------------------------------------------------------------------


@dataclass
class LabServer:
    url: str
    token: str
    root: Path
    proc: subprocess.Popen
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, path: str, method: str = "GET", timeout: float = 5) -> bytes:
        req = urllib.request.Request(
            f"{self.url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path: Path, kernelspec: dict) -> Iterator[LabServer]:
    yield from jupyter_server(tmp_path, "lab")


@pytest.fixture
def notebook7(tmp_path: Path, kernelspec: dict) -> Iterator[LabServer]:
    yield from jupyter_server(tmp_path, "notebook")


def jupyter_server(tmp_path: Path, app: str) -> Iterator[LabServer]:
    """`jupyter lab` or `jupyter notebook` (7) on a copy of notebooks/, loopback only, fresh
    token, settings, workspace."""
    root = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, root, ignore=shutil.ignore_patterns("out", "lakebook-data", ".ipynb_checkpoints"))
    settings = tmp_path / "lab-settings"
    for rel, text in LAB_SETTINGS.items():
        (settings / rel).parent.mkdir(parents=True, exist_ok=True)
        (settings / rel).write_text(text)
    env = {
        **os.environ,  # JUPYTER_PATH already starts with the venv's share/jupyter (conftest)
        "LAKEBOOK_HOME": str(tmp_path / "workspace"),
        # nothing from the user's ~/.jupyter: config, runtime files, lab settings, workspaces
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "lab-workspaces"),
    }
    port, token = free_port(), secrets.token_hex(24)
    log_path = tmp_path / "lab-server.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [
                str(JUPYTER), app, "--no-browser", "--allow-root",  # CI containers run as root
                f"--ServerApp.ip={LOOPBACK}", f"--ServerApp.port={port}",
                "--ServerApp.port_retries=0",  # our port or fail, never a surprise one
                f"--IdentityProvider.token={token}",
                f"--ServerApp.root_dir={root}",
                # window.jupyterapp: run cells, read the model
                f"--{'LabApp' if app == 'lab' else 'JupyterNotebookApp'}.expose_app_in_browser=True",
            ],
            cwd=root, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown can reach the kernels too
        )  # fmt: skip
    server = LabServer(f"http://{LOOPBACK}:{port}", token, root, proc, log_path)
    try:
        wait_until_up(server, timeout=60)
        yield server
    finally:
        stop_server(server)


def wait_until_up(server: LabServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if server.proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited ({server.proc.returncode}):\n{server.log_text()}")
        try:
            server.api("/api/status", timeout=2)
            return
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                raise RuntimeError(f"jupyter lab not answering after {timeout} s:\n{server.log_text()}")
            time.sleep(0.25)


def stop_server(server: LabServer) -> None:
    """Ask the server to shut down (it stops its kernels), then escalate on its process group."""
    proc = server.proc
    if proc.poll() is None:
        try:
            server.api("/api/shutdown", method="POST")
        except (urllib.error.URLError, OSError):
            pass
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
    for sig in (signal.SIGTERM, signal.SIGKILL):  # the group: the server and any kernel left over
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            continue
    proc.wait(5)


# --- test 1: the tour in JupyterLab --------------------------------------------------------------

FIND_PANEL = "path => Array.from(window.jupyterapp?.shell.widgets('main') ?? []).find(w => w.context?.path === path)"
KERNEL_READY = "p => p.sessionContext.isReady && p.sessionContext.session?.kernel?.status === 'idle'"
# Done: the kernel is idle and every code cell has an execution count (outputs arrive before
# the reply that sets the count, and idle comes after the reply).
ALL_EXECUTED = """p => p.sessionContext.session?.kernel?.status === 'idle'
    && p.content.model && Array.from(p.content.model.cells)
        .filter(c => c.type === 'code').every(c => c.executionCount !== null)"""
# Per code cell: nbformat id, tags, execution count and the output types / mime types.
CELL_SUMMARY = """p => Array.from(p.content.model.cells).filter(c => c.type === 'code').map(c => ({
    id: c.id, tags: c.getMetadata('tags') ?? [], count: c.executionCount,
    outputs: c.outputs.toJSON().map(o => ({type: o.output_type, mimes: Object.keys(o.data ?? {})})),
}))"""


def test_tour_in_jupyterlab(browser: Browser, lab: LabServer, kernelspec: dict) -> None:
    run_tour_in(browser, lab, kernelspec, f"/lab/tree/{TOUR}", "tour-lab")


# Notebook 7.6.5's shortcut settings (the `pluginChanged` handler in notebook_core) throw this
# on every page load, its file tree with no notebook and no kernel included; nothing of ours.
NOTEBOOK7_OWN_ERROR = "uncaught: Cannot read properties of undefined (reading 'schema')"


def test_tour_in_notebook7(browser: Browser, notebook7: LabServer, kernelspec: dict) -> None:
    run_tour_in(browser, notebook7, kernelspec, f"/notebooks/{TOUR}", "tour-notebook7", known_errors={NOTEBOOK7_OWN_ERROR})


def run_tour_in(browser: Browser, lab: LabServer, kernelspec: dict, url_path: str, name: str, known_errors: frozenset = frozenset()) -> None:
    """Open the tour at `url_path`, run every cell, and check tables, the chart and the console;
    the screenshot `<name>.png` is kept."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console = Console()
    console.attach(page)
    logs = lambda: {"server.log": lab.log_text(), "console.log": "\n".join(console.errors)}  # noqa: E731
    try:
        with failure_artifacts(page, name, logs):
            page.goto(f"{lab.url}{url_path}?token={lab.token}", timeout=60_000)
            panel = page.wait_for_function(FIND_PANEL, arg=TOUR, timeout=60_000)
            # The notebook's metadata names the kernel; a missing kernelspec would leave
            # JupyterLab asking for one instead, and this wait would time out on that dialog.
            page.wait_for_function(KERNEL_READY, arg=panel, timeout=60_000)
            kernel = panel.evaluate("p => [p.sessionContext.session.kernel.name, p.sessionContext.kernelDisplayName]")
            assert kernel == [KERNEL_NAME, kernelspec["display_name"]], kernel

            run_all(page, panel)
            check_cells(panel.evaluate(CELL_SUMMARY))

            # The kernel's HTML tables render as tables (`%lake ls` lists the object put earlier).
            html_outputs = page.locator('.jp-OutputArea-output[data-mime-type="text/html"]')
            assert html_outputs.locator("table").count() >= 1, "no HTML table in any output"
            listing = cell_node(page, TABLE_CELL).locator('[data-mime-type="text/html"] table')
            assert LISTED in listing.inner_text()

            # The chart is drawn by plotly's JupyterLab renderer (`jp-RenderedPlotly`) from the
            # plotly JSON, not by the HTML fallback's scripts, down to an SVG trace.
            chart = cell_node(page, CHART_CELL).locator(f".jp-RenderedPlotly{PLOT}")
            chart.locator(DRAWN).first.wait_for(state="visible", timeout=30_000)

            screenshot_whole_notebook(page, panel, ARTIFACTS / f"{name}.png")
            errors = [e for e in console.errors if e not in known_errors]
            assert not errors, "errors in the browser console:\n" + "\n".join(errors)
    finally:
        context.close()


def run_all(page: Page, panel: JSHandle) -> None:
    """Run all cells through JupyterLab's own command (what Run ▸ Run All Cells does)."""
    panel.evaluate(
        """p => { window.jupyterapp.shell.activateById(p.id);
                  void window.jupyterapp.commands.execute('notebook:run-all-cells'); }"""
    )
    page.wait_for_function(ALL_EXECUTED, arg=panel, timeout=120_000, polling=250)
    # Tag each cell's DOM node with its nbformat id so locators can find cells by id.
    panel.evaluate("p => p.content.widgets.forEach(c => { c.node.dataset.nbCellId = c.model.id; })")


def cell_node(page: Page, cell_id: str):
    return page.locator(f'.jp-Cell[data-nb-cell-id="{cell_id}"]')


def check_cells(cells: list[dict]) -> None:
    """Every code cell ran, in order; only cells tagged raises-exception have an error."""
    counts = [c["count"] for c in cells]
    assert counts == list(range(1, len(cells) + 1)), counts
    for c in cells:
        errors = [o for o in c["outputs"] if o["type"] == "error"]
        expected = "raises-exception" in c["tags"]
        assert bool(errors) == expected, f"cell {c['id']}: outputs {c['outputs']}"
    chart = next((c for c in cells if c["id"] == CHART_CELL), None)
    assert chart is not None, f"the tour has no cell with id {CHART_CELL!r}"
    mimes = {m for o in chart["outputs"] for m in o["mimes"]}
    assert {PLOTLY_MIME, "text/html", "text/plain"} <= mimes, chart


def screenshot_whole_notebook(page: Page, panel: JSHandle, path: Path) -> None:
    """JupyterLab scrolls inside the notebook, not the page: hide the side bars, grow the
    viewport to the notebook's height and scroll it to the top, so one screenshot shows every
    cell (the last cell's bottom, measured in the tall viewport, trims the scroll-past-end gap)."""
    panel.evaluate("p => { window.jupyterapp.shell.collapseLeft?.(); window.jupyterapp.shell.collapseRight?.(); }")
    scroller = "p.node.querySelector('.jp-WindowedPanel-outer')"
    height = panel.evaluate(f"p => {{ const s = {scroller}; return s.getBoundingClientRect().top + s.scrollHeight; }}")
    page.set_viewport_size({"width": 1280, "height": max(900, min(int(height), 12_000))})
    bottom = panel.evaluate(
        f"""p => {{ {scroller}.scrollTop = 0;
                   const cells = p.content.widgets;
                   return cells[cells.length - 1].node.getBoundingClientRect().bottom; }}"""
    )
    page.set_viewport_size({"width": 1280, "height": max(900, min(int(bottom) + 80, 12_000))})
    page.wait_for_timeout(500)  # let JupyterLab re-layout and plotly resize to the new size
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=True)


# --- test 2: the nbconvert HTML export, offline -------------------------------------------------


def template_urls() -> set[str]:
    """nbconvert's own HTML template loads require.js and MathJax from a CDN. Neither draws the
    chart (the export must work without them, as it does offline); any other request fails."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    return {exporter.require_js_url, exporter.mathjax_url}


def test_tour_nbconvert_export_offline(browser: Browser, tmp_path: Path, kernelspec: dict) -> None:
    notebook = tmp_path / TOUR
    shutil.copy(NOTEBOOKS / TOUR, notebook)
    env = {**os.environ, "LAKEBOOK_HOME": str(tmp_path / "workspace")}  # JUPYTER_PATH: conftest
    done = subprocess.run(
        [
            str(JUPYTER), "nbconvert", "--to", "html", "--execute", str(notebook),
            "--output-dir", str(tmp_path / "out"),
            "--ExecutePreprocessor.timeout=120", "--ExecutePreprocessor.startup_timeout=60",
        ],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, f"nbconvert failed:\n{done.stdout}\n{done.stderr}"
    html = tmp_path / "out" / "00-tour.html"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(html, ARTIFACTS / "tour-nbconvert.html")

    # No network: the context is offline, and every request that is not a local file is
    # aborted and recorded (offline mode alone would not tell us what was attempted).
    context = browser.new_context(offline=True, viewport={"width": 1280, "height": 900})
    attempted: list[str] = []

    def cut(route: Route, request: Request) -> None:
        if request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            attempted.append(request.url)
            route.abort("internetdisconnected")

    context.route("**/*", cut)
    page = context.new_page()
    console = Console()
    console.attach(page)
    logs = lambda: {"console.log": "\n".join(console.errors + [f"blocked: {u}" for u in attempted])}  # noqa: E731
    allowed = template_urls()

    def check_offline() -> None:
        unexpected = [u for u in attempted if u not in allowed]
        assert not unexpected, f"the export fetched from the network: {unexpected}"
        # Offline, the template's CDN scripts fail to load (a console error each); anything
        # else in the console (e.g. a plotly.js exception) is a failure.
        errors = [e for e in console.errors if not any(url in e for url in allowed)]
        assert not errors, "errors in the browser console:\n" + "\n".join(errors)

    try:
        with failure_artifacts(page, "tour-nbconvert", logs):
            page.goto(html.as_uri(), wait_until="load", timeout=60_000)
            check_offline()  # first here: a chart that waits on a CDN fails with that URL
            assert page.locator("table", has_text=LISTED).count() >= 1
            page.locator(PLOT).locator(DRAWN).first.wait_for(state="visible", timeout=30_000)
            page.screenshot(path=ARTIFACTS / "tour-nbconvert.png", full_page=True)
            check_offline()
    finally:
        context.close()
