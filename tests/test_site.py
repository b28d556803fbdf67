"""The report site: built from a tiny executed notebook and ledger, then loaded in a real headless Chromium.

The browser test skips only when Chromium or its driver is missing (Debian/Ubuntu:
``apt-get install chromium chromium-driver``; ``.ci/run`` installs them).
"""
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

from nnlens import _io, report  # noqa: E402
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
    """A reports folder as the runner leaves it: one executed notebook, its claims, its figure."""
    root = tmp_path / "reports"
    b64, png = _png_b64(tmp_path)
    (root / "figures").mkdir(parents=True)
    shutil.copy(png, root / "figures" / "09_demo.png")
    nb = new_notebook(cells=[
        new_markdown_cell("# 09 · A demo study\n\nSee [the ledger](#Claims) below."),
        new_code_cell("fig = plot()", execution_count=1, outputs=[
            new_output("display_data", data={"image/png": b64, "text/plain": "<Figure>"})]),
        new_markdown_cell("## Claims"),
        new_code_cell("ledger", execution_count=2, outputs=[
            new_output("execute_result", data={"text/plain": "ledger"}, execution_count=2)]),
    ])
    nb.metadata["kernelspec"] = {"display_name": "Python (nnlens)", "language": "python", "name": "nnlens"}
    (root / "notebooks").mkdir()
    nbformat.write(nb, root / "notebooks" / "09_demo.ipynb")
    ledger = report.Ledger("09", "smoke", report.Outputs(root))
    ledger.claim("09.1", "the demo claim holds", value=0.93, threshold=">= 0.9", holds=True)
    ledger.claim("09.2", "the other one <does not>", value=0.1, threshold=">= 0.5", holds=False)
    (root / "claims").mkdir()
    _io.write_text(root / "claims" / "09.csv", ledger.frame().to_csv(index=False, lineterminator="\n"))
    return root


def test_site_pages_and_verdicts(tmp_path):
    root = _reports(tmp_path)
    index = site.build(root)
    out = root / "site"
    assert index == out / "index.html"
    assert sorted(p.name for p in out.iterdir()) == ["09_demo.html", "claims.html", "index.html"]
    front = index.read_text()
    assert "1 of 2 claims hold; 1 do not." in front
    assert "the other one &lt;does not&gt;" in front and '<td class="fails">does not hold</td>' in front
    assert 'href="09_demo.html"' in front and 'src="data:image/png;base64,' in front  # the key figure
    page = (out / "09_demo.html").read_text()
    assert page.count("data:image/png;base64,") >= 1 and 'href="index.html"' in page


def test_site_is_byte_stable(tmp_path):
    root = _reports(tmp_path)
    site.build(root, tmp_path / "a")
    site.build(root, tmp_path / "b")
    for p in sorted((tmp_path / "a").iterdir()):
        assert p.read_bytes() == (tmp_path / "b" / p.name).read_bytes(), p.name


def test_site_without_executed_notebooks_fails_in_one_line(tmp_path):
    (tmp_path / "reports").mkdir()
    assert site.main(["--reports", str(tmp_path / "reports")]) == 1


@pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                    reason="needs Chromium and chromedriver (apt-get install chromium chromium-driver)")
def test_site_in_headless_chromium(tmp_path):
    pytest.importorskip("selenium.webdriver", reason="needs selenium (pip install -e '.[dev]')")
    root = _reports(tmp_path)
    site.build(root)
    assert check_in_browser(root / "site", tmp_path / "chrome-profile") >= 4


def check_in_browser(out: Path, profile_dir: Path) -> int:
    """Load every page of the site in headless Chromium: it loads, its images decode, its links resolve.

    Returns the number of links checked. Also usable on a real site:
    ``python tests/test_site.py reports/site``."""
    from selenium import webdriver
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--user-data-dir={profile_dir}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    checked_links = 0
    try:
        driver.set_page_load_timeout(60)
        for page in sorted(out.glob("*.html")):
            driver.get(page.as_uri())
            try:    # loaded: the CDN scripts nbconvert's pages reference fail fast offline, but may lag under load
                WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.readyState") == "complete")
            except TimeoutException:
                raise AssertionError(f"{page.name} did not finish loading") from None
            assert driver.title, f"{page.name} has no title"
            imgs = driver.find_elements(By.TAG_NAME, "img")
            assert imgs or page.name == "claims.html", f"{page.name} shows no image"  # the ledger is tables only
            for img in imgs:   # decoded and laid out: a broken data URI has naturalWidth 0
                assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
            hrefs = [a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "a[href]")]
            assert hrefs, f"{page.name} has no links"
            for href in hrefs:                   # absolute, as the browser resolved them
                url = urlparse(href)
                if url.scheme in ("http", "https"):
                    continue                     # the site links out (arXiv); no network here
                assert url.scheme == "file", href
                target = Path(unquote(url.path))
                assert target.is_file(), f"{page.name}: broken link {href}"
                if url.fragment:
                    driver.get(href)
                    # as the HTML spec finds a fragment: the raw string as an id, else its decoded form
                    found = driver.execute_script(
                        "return document.getElementById(arguments[0]) !== null"
                        " || document.getElementById(arguments[1]) !== null",
                        url.fragment, unquote(url.fragment))
                    assert found, f"{page.name}: no element with id {url.fragment!r} for {href}"
                checked_links += 1
    finally:
        driver.quit()
    return checked_links


if __name__ == "__main__":
    if len(sys.argv) > 1:   # check a built site: python tests/test_site.py reports/site
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            print(f"{check_in_browser(Path(sys.argv[1]).resolve(), Path(d))} links checked, all pages load, "
                  "all images render")
    else:
        sys.exit(pytest.main([__file__, "-q"]))
