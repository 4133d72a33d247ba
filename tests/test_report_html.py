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

# Appended to a copy of the page: after load, write what rendered into the DOM.
PROBE = """<script>
window.addEventListener("load", () => {
  const images = [...document.images];
  document.body.dataset.images = images.length;
  document.body.dataset.decoded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.rows = document.querySelectorAll("table.trials tbody tr").length;
  document.body.dataset.summary = document.querySelectorAll("table.summary tbody tr").length;
});
</script></body>"""


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="neither Debian's chromium nor Google Chrome is installed (make install adds chromium)",
)
def test_report_renders_in_headless_chromium(tiny_sweep, tmp_path):
    config = tiny_sweep(
        "  - name: adam\n    grid: {learning_rate: [0.01, 0.001], beta_1: [0.9, 0.5]}\n",
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
    dom = subprocess.run(
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
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    found = dict(re.findall(r'data-(\w+)="(\d+)"', dom))
    assert int(found["rows"]) == 8  # 4 configurations × 2 seeds
    assert int(found["summary"]) == 4  # the over-seeds table
    # train loss, test accuracy, mean curves, heatmap, sensitivity: every picture drawn
    assert int(found["images"]) == len(list((result.folder / "curves").glob("*.png"))) == 5
    assert found["decoded"] == found["images"]  # every embedded image decodes
    assert "learning_rate" in dom and "± " in dom
