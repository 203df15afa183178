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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


@contextmanager
def tensorboard(logdir: Path, ready: Callable[[str], bool]) -> Iterator[str]:
    """`tensorboard --logdir <logdir>` on loopback, once `ready(url)` says it has read it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir)]
        + ["--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if ready(url):
                    break
            except OSError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "no tensorboard"
            time.sleep(0.5)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def get(url: str, body: dict[str, Any] | None = None) -> Any:
    """TensorBoard's JSON answer to a GET (or, with a body, a POST) of `url`."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def tensorboard_url(sweep_dir: Path) -> Iterator[str]:
    # ready once it serves the scalar tags of both runs
    with tensorboard(
        sweep_dir, lambda url: len(get(f"{url}/data/plugin/scalars/tags")) == 2
    ) as url:
        yield url


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
    groups = [
        f'class="group-title" title="{g}"' for g in (*DYNAMICS_STATS, "train", "val", "final")
    ]
    page = dom(f"{tensorboard_url}/#timeseries", "1400,900", groups)
    for group in groups:
        assert group in page, group
    # ...and, filtered, a card per layer (a tall window, so that every card is drawn).
    filtered = f"{tensorboard_url}/?tagFilter=act_saturated_pct#timeseries"
    cards = [f'title="act_saturated_pct/{layer}"' for layer in TANH_LAYERS]
    page = dom(filtered, "1400,4000", cards)
    for card in cards:
        assert card in page, card


def dom(url: str, window: str, wanted: list[str], tries: int = 3) -> str:
    """The page's DOM once it holds everything `wanted`, or after `tries` loads: a loaded
    machine can use up Chromium's virtual time before the dashboard has drawn every card."""
    for _ in range(tries):
        page = chromium(f"--window-size={window}", "--dump-dom", url).stdout
        if all(w in page for w in wanted):
            break
    return page


def test_a_screenshot_of_the_dashboard(tensorboard_url: str, tmp_path: Path) -> None:
    # Chart names follow depth, so each of the five tanh layers' saturation chart overlays
    # the runs with and without BatchNorm.
    view = f"{tensorboard_url}/#scalars&tagFilter=act_saturated_pct"
    screenshot(view, tmp_path / "tensorboard.png", "MAKEMORE_LAB_SCREENSHOT")


def screenshot(view: str, shot: Path, keep_in: str, width: int = 1280) -> None:
    """A `width`x860 screenshot of `view`, with drawn content; kept where $`keep_in` says."""
    from PIL import Image

    chromium(f"--window-size={width},860", f"--screenshot={shot}", view)
    image = Image.open(shot).convert("RGB")
    assert image.size == (width, 860)
    # Drawn charts or tables, not an empty page: a fair number of colours.
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 500
    keep = os.environ.get(keep_in)
    if keep:  # a small PNG for the docs: 64 colours are plenty for charts and text
        target = ROOT / keep
        target.parent.mkdir(parents=True, exist_ok=True)
        image.quantize(colors=64).save(target, optimize=True)


HPARAMS = "/data/plugin/hparams"
ALL_STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


@pytest.fixture(scope="module")
def seeded_sweep(names_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The headline sweep with 3 seeds (12 jobs, two stacked groups)."""
    out = tmp_path_factory.mktemp("hparams") / "sweep"
    data = REAL_NAMES if REAL_NAMES.is_file() else names_file
    headline = ["model.batchnorm=true,false", "init.gain=1,5/3", "seed=range(1,4)"]
    result = run_cli(
        "train.py", "-m", *on_file(data), *FAST, *headline, "trainer.max_steps=300",
        "trainer.val_check_interval=100", "callbacks.model_checkpoint.every_n_train_steps=100",
        "hydra/launcher=stacked", f"hydra.sweep.dir={out}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def hparams_url(seeded_sweep: Path) -> Iterator[str]:
    def ready(url: str) -> bool:  # once it has read the sweep's experiment
        return bool(get(f"{url}{HPARAMS}/experiment", {"experimentName": ""}).get("hparamInfos"))

    with tensorboard(seeded_sweep, ready) as url:
        yield url


def test_tensorboards_hparams_view_shows_one_row_per_config_averaging_its_seeds(
    seeded_sweep: Path, hparams_url: str
) -> None:
    experiment = get(f"{hparams_url}{HPARAMS}/experiment", {"experimentName": ""})
    names = [info["name"] for info in experiment["hparamInfos"]]
    assert {"model.batchnorm", "init.gain", "seed", "optim.lr"} <= set(names)
    assert "trainer.val_check_interval" not in names  # constant in the sweep: not a column
    metrics = [m["name"]["tag"] for m in experiment["metricInfos"]]
    assert metrics == ["final/train_loss", "final/val_loss", "final/test_loss"]
    request = {"experimentName": "", "allowedStatuses": ALL_STATUSES, "colParams": []}
    request |= {"startIndex": 0, "sliceSize": 100, "aggregationType": "AGGREGATION_AVG"}
    groups = get(f"{hparams_url}{HPARAMS}/session_groups", request)["sessionGroups"]
    assert len(groups) == 4 and all(len(g["sessions"]) == 3 for g in groups)
    for group in groups:  # the row's val loss: the mean of its three seeds'
        jobs = [seeded_sweep / Path(s["name"]).parent.name for s in group["sessions"]]
        assert {job.name.split(",seed=")[1] for job in jobs} == {"1", "2", "3"}
        vals = [json.loads((job / "metrics.json").read_text())["val_loss"] for job in jobs]
        shown = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}["final/val_loss"]
        assert abs(shown - sum(vals) / 3) < 1e-5


def test_a_screenshot_of_the_hparams_view(hparams_url: str, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("Chromium is absent: `apt-get install chromium` (Debian) to run this test")
    hparams = tmp_path / "hparams.png"
    # wide enough for the metric columns beside the hyperparameters TensorBoard shows first
    screenshot(f"{hparams_url}/#hparams", hparams, "MAKEMORE_LAB_HPARAMS_SCREENSHOT", width=1900)
