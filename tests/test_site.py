"""The report site: built from a tiny executed notebook and ledger, then loaded in a real headless Chromium.

The browser test skips only when Chromium or its driver is missing (Debian/Ubuntu:
``apt-get install chromium chromium-driver``; ``.ci/run`` installs them).
"""
import json
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import matplotlib

matplotlib.use("Agg")  # this test process draws the figure it embeds; no display here
import matplotlib.pyplot as plt  # noqa: E402
import nbformat  # noqa: E402
import pytest  # noqa: E402
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output  # noqa: E402

from nnlens import report  # noqa: E402
from nnlens.workbook import site  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _png_b64(tmp_path) -> str:
    import base64

    fig, ax = plt.subplots(figsize=(2, 1.5))
    ax.plot([0, 1, 2], [0, 1, 4])
    png, _ = report.savefig(fig, "09_demo", tmp_path / "fig", close=True)
    return base64.b64encode(png.read_bytes()).decode("ascii"), png


def _reports(tmp_path) -> Path:
    """A reports folder as the runner leaves it: one executed notebook (with papermill's injected cell), its
    rows of several kinds, its figure and table, its manifest and timings."""
    root = tmp_path / "reports"
    b64, png = _png_b64(tmp_path)
    (root / "figures").mkdir(parents=True)
    shutil.copy(png, root / "figures" / "09_demo.png")
    shutil.copy(png.with_suffix(".pdf"), root / "figures" / "09_demo.pdf")
    (root / "tables").mkdir()
    (root / "tables" / "09_demo.csv").write_text("x\n1\n")
    injected = new_code_cell('# Parameters\nprofile = "smoke"\n', execution_count=1)
    injected.metadata["tags"] = ["injected-parameters"]
    nb = new_notebook(cells=[
        new_markdown_cell("# 09 · A demo study\n\nThe paper (arXiv 2205.12372, issue 10) says $\\tau \\ge 0.5$. "
                          "See [the ledger](#Claims) below."),
        injected,
        new_code_cell('fig = plot()\nout.savefig(fig, "09_demo");\nout.save_table(df, "09_demo")', execution_count=2,
                      outputs=[new_output("display_data", data={"image/png": b64, "text/plain": "<Figure>"})]),
        new_markdown_cell("Accuracy against k for the demo network. Whiskers: ±1 sd over 3 seeds."),
        new_markdown_cell("## Claims"),
        new_code_cell("ledger", execution_count=3, outputs=[
            new_output("execute_result", data={"text/plain": "ledger"}, execution_count=3)]),
    ])
    nb.metadata["kernelspec"] = {"display_name": "Python (nnlens)", "language": "python", "name": "nnlens"}
    (root / "notebooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "09_demo.ipynb")
    ledger = report.Ledger("09", "smoke", report.Outputs(root))
    t = report.Threshold("ACC_MIN", "accuracy", ">=", 0.9, "the spread of 3 reruns")
    ledger.extend([
        report.Row.judge("09.1", "the demo claim holds", 0.93, t),
        report.Row("09.2", "the other one <does not>", "0.1", t, False),
        report.Row("09.3", "the kernel takes under a second", "0.5 s", "< 1 s", True, kind="engineering target"),
        report.Row("09.4", "a paper's number", "0.71", "paper: 0.70", "inconclusive", kind="paper number",
                   note="minimum detectable difference 0.05 at 3 seeds"),
    ])
    ledger.save()
    (root / "manifests").mkdir()
    (root / "manifests" / "09.json").write_text(json.dumps({
        "commit": "abc1234", "profile": "smoke", "python": "3.11.7", "packages": {"torch": "2.14.1"},
        "machine": {"cpu": "Demo CPU", "cores": 2, "ram_gib": 8, "gpu": None}}))
    (root / "timings.json").write_text(json.dumps({"studies": {"09": {"threads": 2, "wall_s": 1.0}}}))
    return root


def test_site_pages_and_verdicts(tmp_path):
    root = _reports(tmp_path)
    index = site.build(root)
    out = root / "site"
    assert index == out / "index.html"
    assert sorted(p.name for p in out.iterdir()) == ["09_demo.html", "claims.html", "index.html"]
    front = index.read_text()
    # counts by kind, never one mixed total; findings in words; paper vs here; glossary
    assert "<td>paper claim</td><td>1</td><td>1</td><td>0</td><td>0</td><td>2</td>" in front
    assert "<td>engineering target</td><td>1</td>" in front and "<td>paper number</td>" in front
    assert "Of its 4 rows: 1 of 2 paper claims hold" in front
    assert "Does not hold: the other one &lt;does not&gt;" in front
    assert 'id="paper-vs-here"' in front and "paper: 0.70" in front and 'id="glossary"' in front
    assert '<img src="../figures/09_demo.png" alt="09_demo: Accuracy against k' in front          # the key figure
    assert "abc1234" in front and "different commits" not in front
    ledger = (out / "claims.html").read_text()
    assert "Study 09 · A demo study" in ledger and "accuracy ≥ 0.9" in ledger and "ACC_MIN" not in ledger
    assert "minimum detectable difference 0.05" in ledger and "the spread of 3 reruns" in ledger
    page = (out / "09_demo.html").read_text()
    assert page.count("<img ") == 1 and 'href="index.html"' in page
    assert 'profile = "smoke"' not in page and "out.savefig" not in page        # parameters and code hidden
    assert 'alt="Figure 1 (09_demo): Accuracy against k for the demo network.' in page
    assert 'href="../figures/09_demo.pdf"' in page and 'href="../tables/09_demo.csv"' in page
    assert 'href="https://arxiv.org/abs/2205.12372"' in page and "issue 10" not in page
    assert "<i>τ ≥ 0.5</i>" in page and "$" not in re.sub(r"<style.*?</style>", "", page, flags=re.S)
    assert "<script" not in page and "<script" not in front                     # nothing to fetch, nothing to run


def test_site_warns_when_studies_come_from_different_commits(tmp_path):
    root = _reports(tmp_path)
    (root / "manifests" / "08.json").write_text(json.dumps({"commit": "def5678", "profile": "smoke"}))
    site.build(root)
    for page in ("index.html", "claims.html", "09_demo.html"):
        text = (root / "site" / page).read_text()
        assert "the studies come from 2 different commits (abc1234, def5678)" in text, page
        assert "not the commit the results were made with" in text, page         # the checkout is elsewhere


def test_site_is_byte_stable(tmp_path):
    root = _reports(tmp_path)
    site.build(root, root / "a")
    site.build(root, root / "b")
    for p in sorted((root / "a").iterdir()):
        assert p.read_bytes() == (root / "b" / p.name).read_bytes(), p.name


def test_site_without_executed_notebooks_fails_in_one_line(tmp_path):
    (tmp_path / "reports").mkdir()
    assert site.main(["--reports", str(tmp_path / "reports")]) == 1
    assert not (tmp_path / "reports" / "site").exists()


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Chromium and chromedriver (apt-get install chromium chromium-driver)")
def test_site_in_headless_chromium(tmp_path):
    pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    root = _reports(tmp_path)
    site.build(root)
    assert check_in_browser(root / "site", tmp_path / "chrome-profile") >= 6


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Chromium and chromedriver (apt-get install chromium chromium-driver)")
def test_the_browser_check_catches_a_cdn_script(tmp_path):
    pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    root = _reports(tmp_path)
    site.build(root)
    page = root / "site" / "claims.html"
    page.write_text(page.read_text().replace("</head>", '<script src="https://cdn.example.org/require.js"></script></head>'))
    with pytest.raises(AssertionError, match="requests from the network: .*cdn.example.org"):
        check_in_browser(root / "site", tmp_path / "chrome-profile")


LOCAL = ("file", "data", "about", "chrome", "blob")


def _browser(profile_dir: Path):
    from selenium import webdriver

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--host-resolver-rules=MAP * ~NOTFOUND", "--window-size=1366,900", f"--user-data-dir={profile_dir}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})     # every request the page makes
    return webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))


def _requests(driver) -> list[str]:
    """The URLs of every request since the last call (Chromium's performance log)."""
    urls = []
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _check_page(driver, page: Path) -> None:
    """Offline, every image with alt text and a caption, provenance shown."""
    from selenium.webdriver.common.by import By

    remote = [u for u in _requests(driver) + driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)") if urlparse(u).scheme not in LOCAL]
    assert not remote, f"{page.name} requests from the network: {remote}"
    assert driver.title, f"{page.name} has no title"
    imgs = driver.find_elements(By.TAG_NAME, "img")
    assert imgs or page.name == "claims.html", f"{page.name} shows no image"  # the ledger is tables only
    for img in imgs:   # decoded and laid out: a broken data URI has naturalWidth 0
        assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
        alt = img.get_attribute("alt") or ""
        assert len(alt) > 10 and "No description" not in alt, f"{page.name}: an image without alt text"
        caption = driver.execute_script(
            "const f = arguments[0].closest('figure'); const c = f && f.querySelector('figcaption');"
            " return c ? c.innerText : ''", img)
        assert len(caption.strip()) > 10, f"{page.name}: an image without a caption"
    prov = driver.find_elements(By.CSS_SELECTOR, "aside.provenance")
    assert prov and "commit" in prov[0].text and "profile" in prov[0].text, f"{page.name} shows no provenance"
    if page.name == "index.html":                 # counts by kind, never one mixed total
        kinds = [r.text for r in driver.find_elements(By.CSS_SELECTOR, "table.counts tr td:first-child")]
        assert kinds and set(kinds) <= {"paper claim", "paper number", "beyond the paper", "control",
                                        "engineering target"}, kinds


def _check_links(driver, page: Path) -> int:
    from selenium.webdriver.common.by import By

    checked = 0
    hrefs = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")]
    assert hrefs, f"{page.name} has no links"
    for href in hrefs:                   # absolute, as the browser resolved them
        url = urlparse(href)
        if url.scheme in ("http", "https"):
            continue                     # the site links out (arXiv); no network here
        assert url.scheme == "file", href
        target = Path(unquote(url.path))
        assert target.is_file(), f"{page.name}: broken link {href}"
        if url.fragment and target.suffix == ".html":
            driver.get(href)
            # as the HTML spec finds a fragment: the raw string as an id, else its decoded form
            found = driver.execute_script(
                "return document.getElementById(arguments[0]) !== null"
                " || document.getElementById(arguments[1]) !== null",
                url.fragment, unquote(url.fragment))
            assert found, f"{page.name}: no element with id {url.fragment!r} for {href}"
        checked += 1
    return checked


def check_in_browser(out: Path, profile_dir: Path, shots: Path | None = None) -> int:
    """Load every page of the site in headless Chromium with every host name unresolvable: no request
    leaves the machine (the performance log and the page's resource list), every image decodes and has
    alt text and a caption, every page shows its provenance, the front page counts rows by kind, and
    every link resolves. Returns the number of links checked; ``shots``: a 1366x900 screenshot per page.
    Also usable on a real site: ``python tests/test_site.py reports/site [/tmp/site-shots]``."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    driver = _browser(profile_dir)
    checked = 0
    try:
        driver.set_page_load_timeout(60)
        for page in sorted(out.glob("*.html")):
            driver.get(page.as_uri())
            try:
                WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
            except TimeoutException:
                raise AssertionError(f"{page.name} did not finish loading") from None
            _check_page(driver, page)
            if shots is not None:
                shots.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(shots / f"{page.stem}.png"))
            checked += _check_links(driver, page)
    finally:
        driver.quit()
    return checked


if __name__ == "__main__":
    if len(sys.argv) > 1:   # check a built site: python tests/test_site.py reports/site [/tmp/site-shots]
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            shots = Path(sys.argv[2]) if len(sys.argv) > 2 else None
            print(f"{check_in_browser(Path(sys.argv[1]).resolve(), Path(d), shots)} links checked; every page "
                  "loads offline, every image renders with alt text and a caption, provenance on every page")
    else:
        sys.exit(pytest.main([__file__, "-q"]))


def test_site_warns_only_when_the_code_moved_since_the_run(tmp_path, monkeypatch):
    """Committing the reports moves HEAD but not the code: the warning compares the code's commit."""
    from nnlens.workbook import sitetext
    root = _reports(tmp_path)
    monkeypatch.setattr(sitetext._provenance, "code_commit", lambda: "abc1234")
    site.build(root)
    assert "not the commit the results were made with" not in (root / "site" / "index.html").read_text()
    monkeypatch.setattr(sitetext._provenance, "code_commit", lambda: "fed9876")
    site.build(root)
    assert "the code is at fed9876, not the commit the results were made with" in \
        (root / "site" / "index.html").read_text()
