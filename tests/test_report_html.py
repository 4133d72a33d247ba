"""report.html: one self-contained page, opened in headless Chromium (Debian's package)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from optsweep.config import load_sweep
from optsweep.progress import QuietProgress
from optsweep.runner import run_sweep

# Debian's chromium, else Google Chrome (preinstalled on GitHub's Ubuntu runners, where
# chromium is a snap that cannot run headless from a test)
CHROMIUM = (
    shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
)

# Appended to a copy of the page: after load, write what rendered into the DOM, in which
# order the answer, the first picture and the full table come, and what sorting and
# filtering the full table do.
PROBE = """<script>
window.addEventListener("load", () => {
  const d = document.body.dataset;
  const images = [...document.images];
  d.images = images.length;
  d.decoded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  const trials = document.querySelector("table.trials");
  d.rows = trials.tBodies[0].rows.length;
  d.summary = document.querySelectorAll("table.summary tbody tr").length;
  d.answer = document.querySelectorAll("table.answer tbody tr").length;
  const before = (a, b) =>
    (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING) ? 1 : 0;
  d.answerfirst = before(document.querySelector("table.answer"), images[0]);
  d.picturefirst = before(images[0], trials);
  const column = [...trials.tHead.rows[0].cells].findIndex(c => c.textContent === "test acc");
  const values = () =>
    [...trials.tBodies[0].rows].map(r => parseFloat(r.cells[column].textContent));
  trials.tHead.rows[0].cells[column].click();
  const up = values();
  d.sortedup = up.every((v, i) => i === 0 || up[i - 1] <= v) ? 1 : 0;
  const filter = trials.parentElement.querySelector("input.filter");
  filter.value = "sgd";
  filter.dispatchEvent(new Event("input"));
  d.shown = [...trials.tBodies[0].rows].filter(r => !r.hidden).length;
});
</script></body>"""


def dump_dom(page_path, tmp_path) -> str:
    """The DOM headless Chromium renders from a local page (nothing fetched)."""
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page_path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="neither Debian's chromium nor Google Chrome is installed (make install adds chromium)",
)
def test_report_renders_in_headless_chromium(tiny_sweep, tmp_path):
    config = tiny_sweep(
        "  - name: adam\n    grid: {learning_rate: [0.01, 0.001], beta_1: [0.9, 0.5]}\n"
        "  - name: sgd\n    grid: {learning_rate: [0.3, 0.1, 0.03]}\n",
        train=256,
        test=128,
        epochs=2,
    )
    spec = load_sweep(config, ["train.seeds=[0, 1]"])
    result = run_sweep(spec, QuietProgress(), out=tmp_path / "res")
    page = (result.folder / "report.html").read_text()
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    probe = tmp_path / "probe.html"
    probe.write_text(page.replace("</body>", PROBE))
    dom = dump_dom(probe, tmp_path)
    found = dict(re.findall(r'data-(\w+)="(\d+)"', dom))
    assert int(found["rows"]) == 14  # 7 configurations × 2 seeds
    assert int(found["summary"]) == 7  # the over-seeds table
    assert int(found["answer"]) == 2  # best per optimizer: adam, sgd
    assert found["answerfirst"] == found["picturefirst"] == "1"  # answer, picture, then table
    pictures = {p.stem for p in (result.folder / "curves").glob("*.png")}
    assert {"tuning_cost", "lr_sensitivity", "best_per_optimizer"} <= pictures
    assert int(found["images"]) == len(pictures)  # every picture drawn is on the page
    assert found["decoded"] == found["images"]  # every embedded image decodes
    assert found["sortedup"] == "1"  # a click on "test acc" sorts the rows, lowest first
    assert found["shown"] == "6"  # typing "sgd" leaves sgd's 3 × 2 trials
    assert "learning_rate" in dom and "± " in dom
