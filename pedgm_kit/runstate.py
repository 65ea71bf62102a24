"""The state of a ``pedgm run``: which steps are done, with what parameters, and how long they took.

``<run>/state.json`` (written atomically after every change) holds one record per step, in the
order the steps run (notebook 01, 02, 03, every training run of the plan, 05, the report):

- ``status``: ``pending``, ``running``, ``done``, ``failed`` or ``interrupted`` (stopped by SIGTERM
  or Ctrl-C: a training run keeps its last completed epoch);
- ``hash``: SHA-256 of the step's parameters (run-folder paths written as ``<run>``) and of the
  hashes of the steps it reads from, so a changed parameter changes the hash of its step and of
  every step downstream; ``parameters`` keeps the values, to name what changed;
- ``outputs``: SHA-256 of the files a finished step leaves (a step whose files are gone or edited
  is not complete);
- ``start``, ``end`` (ISO 8601, UTC) and ``seconds``; ``reused``: skipped by the last ``--resume``.

:func:`resume_actions` decides, for ``pedgm run --resume``, which steps are reused, continued or
rerun; :func:`status_table` is what ``pedgm status`` prints, with the time left estimated from
the measured durations.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from .exceptions import InputFileError, ParameterError, PedgmError
from .layout import STATE_FILE

__all__ = ["PREEMPTED_EXIT", "STATE_FILE", "STOP_ENV", "Preempted", "RunState", "Step", "load_state",
           "resume_actions", "reused_steps", "status_table"]

#: exit status of ``pedgm run`` / ``pedgm train`` stopped by SIGTERM (128 + 15, as a shell reports it)
PREEMPTED_EXIT = 143
#: environment variable naming the file whose existence asks a training kernel to stop (see train.preempt)
STOP_ENV = "PEDGM_STOP_FILE"
STOP_FILE = ".stop-requested"
_VERSION = 1


class Preempted(PedgmError):
    """Stopped by SIGTERM (e.g. SLURM before preemption); what finished is kept: resume to go on."""

    exit_status = PREEMPTED_EXIT


@dataclass(frozen=True)
class Step:
    """One step of a run: a notebook execution (``notebook``) or the report (``notebook`` None)."""

    name: str
    notebook: str | None
    folder: Path
    parameters: dict = field(compare=False, hash=False)
    section: str = ""  # the parameter-file section its keys come from (names changed keys: train.epochs)
    upstream: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()  # files (relative to the run folder) a finished step leaves
    training: bool = False


def _relative(value, run: str):
    """Run-folder paths as ``<run>/...``: the hash does not depend on where the run folder is."""
    if isinstance(value, dict):
        return {str(k): _relative(v, run) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_relative(v, run) for v in value]
    if isinstance(value, os.PathLike):
        value = str(value)
    if isinstance(value, str) and (value == run or value.startswith(run + os.sep)):
        return "<run>" + value[len(run):]
    return value


def step_hash(parameters: dict, upstream_hashes: list[str]) -> str:
    text = json.dumps({"parameters": parameters, "upstream": upstream_hashes}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def changed_keys(old: dict, new: dict) -> list[str]:
    """Keys whose values differ (added or removed keys too), sorted."""
    return sorted(k for k in set(old) | set(new) if old.get(k, "<unset>") != new.get(k, "<unset>"))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load_state(run: str | os.PathLike) -> dict | None:
    """``<run>/state.json`` as a dict; None when there is none; a one-line error when it is unreadable."""
    path = Path(run) / STATE_FILE
    if not path.is_file():
        return None
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise InputFileError(f"{path}: not a readable run state ({str(err).splitlines()[0]})") from None
    if not isinstance(state, dict) or not isinstance(state.get("steps"), dict):
        raise InputFileError(f"{path}: not a run state (no 'steps' mapping)")
    return state


class RunState:
    """The state record of one run folder, saved atomically after every change."""

    def __init__(self, run: str | os.PathLike, steps: list[Step], previous: dict | None = None):
        self.run = Path(run)
        self._root = str(self.run)
        old = (previous or {}).get("steps", {})
        self.steps = {s.name: s for s in steps}
        self.hashes: dict[str, str] = {}
        self.records: dict[str, dict] = {}
        for step in steps:
            params = _relative(step.parameters, self._root)
            self.hashes[step.name] = step_hash(params, [self.hashes[u] for u in step.upstream])
            record = dict(old.get(step.name) or {})
            self.records[step.name] = {
                "status": record.get("status", "pending"), "hash": record.get("hash"),
                "parameters": record.get("parameters"), "section": step.section,
                "training": step.training, "outputs": record.get("outputs", {}),
                "start": record.get("start"), "end": record.get("end"), "seconds": record.get("seconds"),
                "seconds_before": record.get("seconds_before"), "reused": False,
            }
        self.created = (previous or {}).get("created", _now())

    # ------------------------------------------------------------------ decisions
    def complete(self, name: str) -> bool:
        """Done with the same outputs as recorded (every file there, unchanged)."""
        record = self.records[name]
        if record["status"] != "done" or not record["outputs"]:
            return False
        for rel, digest in record["outputs"].items():
            path = self.run / rel
            if not path.is_file() or _sha256(path) != digest:
                return False
        return True

    def changes(self, name: str) -> list[str]:
        """Parameter keys of the step that differ from the recorded ones, as ``section.key``."""
        record, step = self.records[name], self.steps[name]
        if record["parameters"] is None:
            return []
        new = _relative(step.parameters, self._root)
        prefix = f"{step.section}." if step.section else ""
        return [prefix + k for k in changed_keys(record["parameters"], new)]

    # ------------------------------------------------------------------ updates
    def start(self, name: str) -> None:
        step = self.steps[name]
        self.records[name].update(status="running", hash=self.hashes[name], start=_now(), end=None, seconds=None,
                                  parameters=_relative(step.parameters, self._root), outputs={}, reused=False)
        self._t0 = time.perf_counter()
        self.save()

    def finish(self, name: str, status: str) -> None:
        record, step = self.records[name], self.steps[name]
        seconds = time.perf_counter() - getattr(self, "_t0", time.perf_counter())
        outputs = {}
        if status == "done":
            outputs = {rel: _sha256(self.run / rel) for rel in step.outputs if (self.run / rel).is_file()}
        # a continued training run adds its earlier seconds (the time of the epochs already done)
        before = record.get("seconds_before") or 0.0
        record.update(status=status, end=_now(), seconds=round(before + seconds, 2), outputs=outputs)
        record["seconds_before"] = round(before + seconds, 2) if status != "done" else None
        self.save()

    def reuse(self, name: str) -> None:
        self.records[name]["reused"] = True
        self.save()

    def save(self) -> Path:
        from .io import write_json

        state = {"version": _VERSION, "run": self.run.name, "created": self.created, "updated": _now(),
                 "order": list(self.steps), "steps": self.records}
        return write_json(state, self.run / STATE_FILE)


def _sha256(path: Path) -> str:
    from .registry import sha256sum

    return sha256sum(path)


def resume_actions(state: RunState, *, overwrite: bool) -> dict[str, str]:
    """What ``--resume`` does with each step: ``reuse``, ``continue`` (same parameters, not finished:
    a training run goes on from its last completed epoch), ``rerun`` (parameters changed, with
    ``overwrite``, or a step it reads from runs again) or ``run`` (never started).

    Raises
    ------
    ParameterError
        A step would run with parameters other than the recorded ones and ``overwrite`` is false:
        one line naming the first such step, the changed keys and how many other steps changed.
    """
    actions, changed = {}, []
    for name, record in state.records.items():
        if record["hash"] is None:
            actions[name] = "run"
        elif record["hash"] != state.hashes[name]:
            actions[name] = "rerun"
            keys = state.changes(name)
            if keys:
                changed.append((name, keys))
        elif not state.complete(name):
            actions[name] = "continue"
        elif any(actions[u] != "reuse" for u in state.steps[name].upstream):
            actions[name] = "rerun"  # what it read is being made again
        else:
            actions[name] = "reuse"
    if changed and not overwrite:
        name, keys = changed[0]
        record = state.records[name]
        new = _relative(state.steps[name].parameters, state._root)
        values = ", ".join(f"{k} ({_short(record['parameters'].get(k.split('.', 1)[-1]))} -> "
                           f"{_short(new.get(k.split('.', 1)[-1]))})" for k in keys[:4])
        more = f" (and {len(changed) - 1} more step(s))" if len(changed) > 1 else ""
        raise ParameterError(f"{state.run}: step '{name}'{more} would run with changed parameters: {values}; "
                             "pass --overwrite to rerun the changed steps and those after them, or use a new --run-id")
    return actions


def _short(value) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def status_table(run: str | os.PathLike) -> str:
    """``pedgm status``: one row per step (status, seconds, start, end), then the estimated time left.

    A step not done is estimated by its own measured duration when it ran before, a training run by
    the mean of the finished training runs, another step by nothing (shown as unknown).
    """
    state = load_state(run)
    if state is None:
        raise InputFileError(f"No run state '{Path(run) / STATE_FILE}' (not a folder written by pedgm run)")
    records = [(name, state["steps"][name]) for name in state.get("order", state["steps"])]
    trained = [r["seconds"] for _, r in records if r.get("training") and r.get("status") == "done" and r.get("seconds")]
    mean_train = sum(trained) / len(trained) if trained else None
    left, unknown = 0.0, 0
    rows = [("step", "status", "seconds", "start", "end", "")]
    for name, r in records:
        note = "reused" if r.get("reused") else ""
        if r.get("status") != "done":
            guess = mean_train if r.get("training") else r.get("seconds")
            if r.get("training") and r.get("seconds_before"):  # a cut run: what its finished epochs took is spent
                guess = max(0.0, (mean_train or 0.0) - r["seconds_before"]) if mean_train else None
            if guess is None:
                unknown += 1
            else:
                left += guess
        seconds = f"{r['seconds']:.1f}" if isinstance(r.get("seconds"), (int, float)) else "-"
        rows.append((name, r.get("status", "?"), seconds, r.get("start") or "-", r.get("end") or "-", note))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in rows]
    done = sum(1 for _, r in records if r.get("status") == "done")
    eta = f"about {_duration(left)}" + (f" plus {unknown} step(s) never timed" if unknown else "")
    if unknown and not left:
        eta = f"unknown ({unknown} step(s) never timed)"
    if done == len(records):
        eta = "nothing (every step is done)"
    mean = f"; mean training run {_duration(mean_train)}" if mean_train else ""
    lines.append(f"{done} of {len(records)} steps done; time left: {eta}{mean}")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 90:
        return f"{seconds} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def reused_steps(run: str | os.PathLike) -> list[dict]:
    """The steps the last ``--resume`` of ``run`` took over from before (for the report): name, end, seconds."""
    try:
        state = load_state(run)
    except InputFileError:
        return []
    steps = (state or {}).get("steps", {})
    return [{"step": name, "finished": r.get("end"), "seconds": r.get("seconds")}
            for name, r in steps.items() if r.get("reused")]
