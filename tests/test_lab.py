"""Opening a committed notebook in a real JupyterLab (headless Chromium) starts the nnlens kernel and
does not mark the notebook modified; the same notebook without normalized metadata is marked modified.

Skips only when Chromium, chromedriver, selenium or the nnlens kernel is missing (``make setup``
registers the kernel; ``.ci/run`` installs Chromium).
"""
import os
import shutil
import socket
import subprocess
import time
import urllib.request

import pytest

from nnlens import paths
from nnlens.workbook import nbfiles

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
JUPYTER = paths.ROOT / ".venv" / "bin" / "jupyter"


def _has_nnlens_kernel() -> bool:
    from jupyter_client.kernelspec import KernelSpecManager

    return "nnlens" in KernelSpecManager().find_kernel_specs()


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="needs Chromium and chromedriver (apt-get install chromium chromium-driver)"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_opening_a_committed_notebook_does_not_modify_it(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    from selenium.webdriver.common.by import By

    if not _has_nnlens_kernel():
        pytest.skip("the nnlens kernel is not registered (make setup)")
    root = tmp_path / "lab"
    root.mkdir()
    source = nbfiles.committed()[-1]
    shutil.copy(source, root / "clean.ipynb")
    stale = source.read_text().replace('"pygments_lexer": "ipython3",\n', "")   # what JupyterLab would add back
    assert stale != source.read_text()
    (root / "stale.ipynb").write_text(stale)
    before = {p.name: p.read_bytes() for p in root.iterdir()}

    port = _free_port()
    lab = subprocess.Popen(
        [str(JUPYTER) if JUPYTER.exists() else "jupyter", "lab", "--no-browser", f"--port={port}",
         "--ServerApp.ip=127.0.0.1", "--ServerApp.token=", "--ServerApp.password=",
         f"--ServerApp.root_dir={root}", f"--LabApp.workspaces_dir={tmp_path / 'ws'}",
         f"--LabApp.user_settings_dir={tmp_path / 'settings'}", "--LabApp.news_url=",
         *(["--allow-root"] if os.getuid() == 0 else [])],
        stdout=(tmp_path / "lab.log").open("w"), stderr=subprocess.STDOUT,
        env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,1000", f"--user-data-dir={tmp_path / 'chrome-profile'}"):
        opts.add_argument(arg)
    driver = None
    try:
        for _ in range(120):                      # the server is up when its API answers
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=2)
                break
            except OSError:
                time.sleep(1)
        driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
        dirty = {}
        for name in ("clean.ipynb", "stale.ipynb"):
            driver.get(f"http://127.0.0.1:{port}/lab/tree/{name}")
            status, kernel = "", ""
            for _ in range(180):                  # wait for the kernel to start and report its language
                ind = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook-ExecutionIndicator")
                status = ind[0].get_attribute("data-status") if ind else ""
                names = [k.text for k in driver.find_elements(By.CSS_SELECTOR, ".jp-Toolbar-kernelName") if k.text]
                kernel = names[0] if names else ""
                if status == "idle" and kernel == "Python (nnlens)":   # "No Kernel" until the session starts
                    break
                time.sleep(1)
            assert status == "idle" and kernel == "Python (nnlens)", (name, status, kernel)
            time.sleep(3)                         # language_info is written when the kernel info arrives
            tab = [t for t in driver.find_elements(By.CSS_SELECTOR, "li.lm-TabBar-tab") if name in t.text]
            assert tab, name
            dirty[name] = "jp-mod-dirty" in (tab[0].get_attribute("class") or "")
        assert dirty == {"clean.ipynb": False, "stale.ipynb": True}
    finally:
        if driver is not None:
            driver.quit()
        lab.terminate()
        lab.wait(timeout=30)
    assert {p.name: p.read_bytes() for p in root.glob("*.ipynb")} == before   # and nothing was saved
