"""TensorBoard in a real browser: the dynamics callback's tags are listed, and a screenshot.

Trains the headline comparison (BatchNorm on/off, gain 3) through the real CLI, serves it
with `tensorboard` on loopback and opens it in headless Chromium (Debian's `chromium`
package). Set MAKEMORE_LAB_SCREENSHOT=docs/tensorboard.png to keep the screenshot (that is
how the README's was made: `make screenshot`).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import DYNAMICS_STATS, FAST, REAL_NAMES, ROOT, on_file, run_cli

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TANH_LAYERS = tuple(f"block{k}_Tanh" for k in range(1, 6))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sweep_dir(names_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if CHROMIUM is None:
        pytest.skip("Chromium is absent: `apt-get install chromium` (Debian) to run this test")
    out = tmp_path_factory.mktemp("tensorboard") / "sweep"
    data = REAL_NAMES if REAL_NAMES.is_file() else names_file
    result = run_cli(
        "train.py",
        "-m",
        *on_file(data),
        *FAST,
        "model.batchnorm=true,false",
        "init.gain=3",
        "trainer.max_steps=1500",
        "data.chunk_size=50",
        "trainer.val_check_interval=500",
        "callbacks.model_checkpoint.every_n_train_steps=500",
        "callbacks.dynamics.every_n_steps=50",
        "trainer.log_every_n_steps=10",
        f"hydra.sweep.dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def tensorboard_url(sweep_dir: Path) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(sweep_dir)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:  # ready once it serves the scalar tags of both runs
            try:
                with urllib.request.urlopen(f"{url}/data/plugin/scalars/tags", timeout=5) as r:
                    if len(json.load(r)) == 2:
                        break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "no tensorboard"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def chromium(*args: str) -> subprocess.CompletedProcess:
    """Headless Chromium; virtual time lets the page's scripts fetch and render first."""
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        + ["--hide-scrollbars", "--virtual-time-budget=30000", *args],
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_browser_lists_every_statistic_and_each_tanh_layers_saturation(
    tensorboard_url: str,
) -> None:
    # The Time Series dashboard renders in the page's DOM: one group per statistic...
    page = chromium("--window-size=1400,900", "--dump-dom", f"{tensorboard_url}/#timeseries")
    for group in (*DYNAMICS_STATS, "train", "val", "final"):
        assert f'class="group-title" title="{group}"' in page.stdout, group
    # ...and, filtered, a card per layer (a tall window, so that every card is drawn).
    filtered = f"{tensorboard_url}/?tagFilter=act_saturated_pct#timeseries"
    page = chromium("--window-size=1400,4000", "--dump-dom", filtered)
    for layer in TANH_LAYERS:
        assert f'title="act_saturated_pct/{layer}"' in page.stdout, layer


def test_a_screenshot_of_the_dashboard(tensorboard_url: str, tmp_path: Path) -> None:
    from PIL import Image

    shot = tmp_path / "tensorboard.png"
    # Chart names follow depth, so each of the five tanh layers' saturation chart overlays
    # the runs with and without BatchNorm.
    view = f"{tensorboard_url}/#scalars&tagFilter=act_saturated_pct"
    chromium("--window-size=1280,860", f"--screenshot={shot}", view)
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 860)
    # Drawn charts, not an empty page: the runs' line colours cover a fair number of pixels.
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 500
    keep = os.environ.get("MAKEMORE_LAB_SCREENSHOT")
    if keep:  # a small PNG for the README: 64 colours are plenty for charts and text
        target = ROOT / keep
        target.parent.mkdir(parents=True, exist_ok=True)
        image.quantize(colors=64).save(target, optimize=True)
