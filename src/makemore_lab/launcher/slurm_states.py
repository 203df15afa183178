"""Where the elements of a SLURM job array stand, read from `scontrol`: no accounting needed.

`scontrol show job` knows a job while it is queued or running and for `MinJobAge` (300 s by
default) after it ended, with its final state (COMPLETED, CANCELLED, TIMEOUT, OUT_OF_MEMORY,
...). The launcher waits for each element's result file; `Watch` says when an element has ended
without one: at once for a state SLURM never requeues from (CANCELLED, TIMEOUT, ...), after a
grace period for the others (a shared filesystem may show a COMPLETED one's file late; FAILED
or NODE_FAIL may be requeued) and for one SLURM no longer knows at all.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field

# States in which an element may still write its result (REQUEUED and PREEMPTED pass on to
# PENDING when the job is requeued).
LIVE = {
    "PENDING",
    "CONFIGURING",
    "RUNNING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "PREEMPTED",
}
# States SLURM never requeues from: the element has ended for good.
FINAL = {"CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "DEADLINE", "BOOT_FAIL"}
GRACE_SECONDS = 30.0  # for the others (COMPLETED: the file may come late; FAILED, NODE_FAIL: a
# requeue may follow; an element SLURM forgot)
UNKNOWN = "UNKNOWN"  # scontrol no longer lists it (and this launcher has no accounting)


def _indices(spec: str) -> list[str]:
    """Array indices from scontrol's `ArrayTaskId` (`3`, `0-7%64`, `1,4-5`)."""
    indices: list[str] = []
    for part in spec.split("%")[0].strip("[]").split(","):
        first, _, last = part.partition("-")
        if first.isdigit():
            indices += [str(i) for i in range(int(first), int(last or first) + 1)]
    return indices


def parse_states(text: str) -> dict[str, str]:
    """`{"<array>_<index>": state}` from `scontrol show job -o` (one line per job record; a
    job outside an array is keyed by its job id)."""
    states: dict[str, str] = {}
    for line in text.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        state = fields.get("JobState")
        if state is None:
            continue
        array = fields.get("ArrayJobId")
        if array and fields.get("ArrayTaskId"):
            states |= {f"{array}_{i}": state for i in _indices(fields["ArrayTaskId"])}
        elif "JobId" in fields:
            states[fields["JobId"]] = state
    return states


def job_states(job_ids: set[str]) -> dict[str, str] | None:
    """The state of each job scontrol knows among `job_ids` (`<array>_<index>` or `<job>`);
    None when SLURM could not be asked (a controller restarting: ask again later)."""
    arrays = sorted({job.split("_")[0] for job in job_ids})
    try:
        run = subprocess.run(
            ["scontrol", "show", "job", "-o", *arrays], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if run.returncode != 0 and "Invalid job id" not in run.stderr:
        return None
    states = parse_states(run.stdout)  # a forgotten id: an error line, the others still listed
    return {job: states[job] for job in job_ids if job in states}


@dataclass
class Watch:
    """Each element's last known state and since when it has looked ended without a result."""

    ended_since: dict[str, float] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)

    def lost(self, job: str, state: str | None, now: float | None = None) -> bool:
        """Whether `job`, whose result file is not there, has ended without one."""
        now = time.monotonic() if now is None else now
        state = state or UNKNOWN
        self.states[job] = state
        if state in LIVE:
            self.ended_since.pop(job, None)
            return False
        since = self.ended_since.setdefault(job, now)
        return state in FINAL or now - since >= GRACE_SECONDS
