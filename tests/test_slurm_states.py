"""The SLURM launcher's reading of the cluster, and the claim a requeued task takes over.

No SLURM is needed here (tests/test_slurm.py runs the real one): `scontrol show job -o` lines
as SLURM 22.05 prints them, the decision when an element without a result has ended, a
requeued attempt taking over its own claim from another node, and SLURM's two signals to a
group counted as one request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from makemore_lab.errors import UserError
from makemore_lab.launcher import slurm_states
from makemore_lab.launcher.slurm_states import GRACE_SECONDS, Watch, parse_states
from makemore_lab.runs import claim
from makemore_lab.training.interrupts import Signals

SCONTROL = """\
JobId=12 ArrayJobId=12 ArrayTaskId=2-3%64 JobName=makemore-lab JobState=PENDING Reason=Resources
JobId=14 ArrayJobId=12 ArrayTaskId=1 JobName=makemore-lab JobState=RUNNING Reason=None
JobId=13 ArrayJobId=12 ArrayTaskId=0 JobName=makemore-lab JobState=CANCELLED Reason=None
JobId=20 JobName=makemore-lab JobState=TIMEOUT Reason=TimeLimit
"""


def test_scontrol_lines_give_each_array_elements_state() -> None:
    assert parse_states(SCONTROL) == {
        "12_0": "CANCELLED",
        "12_1": "RUNNING",
        "12_2": "PENDING",
        "12_3": "PENDING",
        "20": "TIMEOUT",
    }
    assert parse_states("slurm_load_jobs error: Invalid job id specified\n") == {}


def test_an_element_without_a_result_is_lost_when_slurm_says_it_ended_for_good() -> None:
    watch = Watch()
    for live in ("PENDING", "RUNNING", "COMPLETING", "REQUEUED", "PREEMPTED"):
        assert not watch.lost("12_1", live, now=0.0)
    for final in ("CANCELLED", "TIMEOUT", "OUT_OF_MEMORY"):
        assert Watch().lost("12_1", final, now=0.0)  # at once: SLURM never requeues these


@pytest.mark.parametrize("state", ["COMPLETED", "FAILED", "NODE_FAIL", None])
def test_other_ends_wait_a_grace_period_and_a_requeue_resets_it(state: str | None) -> None:
    """COMPLETED: its result file may show late; FAILED / NODE_FAIL may be requeued; None:
    scontrol has forgotten the element (no accounting to ask)."""
    watch = Watch()
    assert not watch.lost("12_1", state, now=0.0)
    assert not watch.lost("12_1", "PENDING", now=GRACE_SECONDS - 1)  # requeued: waiting again
    assert not watch.lost("12_1", state, now=GRACE_SECONDS)
    assert not watch.lost("12_1", state, now=2 * GRACE_SECONDS - 1)
    assert watch.lost("12_1", state, now=2 * GRACE_SECONDS)
    assert watch.states["12_1"] == (state or "UNKNOWN")


def claimed_on_another_node(run: Path, slurm_job: str) -> None:
    """`run` as the first attempt of SLURM task `slurm_job` left it on node-07."""
    run.mkdir()
    (run / "config.yaml").write_text("seed: 1\n")
    holder = {"pid": 4242, "host": "node-07", "start": "1"}
    holder |= {"slurm_job": slurm_job, "slurm_attempt": 0}
    (run / claim.LOCK).write_text(json.dumps(holder))


def in_slurm(monkeypatch: pytest.MonkeyPatch, array: str, index: str, attempt: int = 1) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "99")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", array)
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", index)
    monkeypatch.setenv("SLURM_RESTART_COUNT", str(attempt))


def test_a_requeued_task_takes_over_its_own_claim_from_another_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    claimed_on_another_node(run, "12_1")
    in_slurm(monkeypatch, "12", "1")  # the same element, run again (on this node)
    claim.claim(run, resume=True)
    holder = json.loads((run / claim.LOCK).read_text())
    assert holder["pid"] == os.getpid() and holder["slurm_job"] == "12_1"
    assert holder["slurm_attempt"] == 1


def test_another_tasks_claim_and_a_fresh_command_are_still_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    claimed_on_another_node(run, "12_1")
    in_slurm(monkeypatch, "12", "0")  # a sibling element
    with pytest.raises(UserError, match="which this machine cannot check"):
        claim.claim(run, resume=True)
    in_slurm(monkeypatch, "12", "1", attempt=0)  # the same attempt: another live process
    with pytest.raises(UserError, match="which this machine cannot check"):
        claim.claim(run, resume=True)
    for name in ("JOB_ID", "ARRAY_JOB_ID", "ARRAY_TASK_ID", "RESTART_COUNT"):
        monkeypatch.delenv(f"SLURM_{name}")  # a user's command, outside SLURM
    with pytest.raises(UserError, match="which this machine cannot check"):
        claim.claim(run, resume=True)


def test_slurms_warning_and_its_sigterm_are_one_request() -> None:
    said: list[int] = []
    signals = Signals(said.append)
    signals.open()
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGTERM)  # no KeyboardInterrupt: not "asked again"
    finally:
        signals.close()
    assert said == [signal.SIGUSR2] and signals.signum == signal.SIGUSR2


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        ("slurm_load_jobs error: Invalid job id specified", {}),  # forgotten: UNKNOWN later
        ("slurm_load_jobs error: Unable to contact slurm controller", None),  # ask again
    ],
)
def test_a_forgotten_job_is_unknown_but_an_unreachable_controller_is_no_answer(
    stderr: str, expected: dict | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    def scontrol(args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        assert args[:4] == ["scontrol", "show", "job", "-o"]
        return subprocess.CompletedProcess(args, 1, stdout="", stderr=stderr)

    monkeypatch.setattr(slurm_states.subprocess, "run", scontrol)
    assert slurm_states.job_states({"12_0", "12_1"}) == expected
