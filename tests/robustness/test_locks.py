"""One writer per output folder: a second writer is refused with one line, nothing touched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner
from faults import TINY_RUN, tree

from maskgen.cli.options import EXIT_BUSY
from maskgen.common import locks
from maskgen.common.locks import LOCK_NAME, OutputLockedError, output_lock


def hold_lock(folder, proc, command="pretrain run"):
    """Write the lock of a live process ``proc`` into ``folder`` (as if it held the folder)."""
    folder.mkdir(parents=True, exist_ok=True)
    info = {"host": socket.gethostname(), "pid": proc.pid, "started": locks._start_time(proc.pid),
            "command": command, "since": "2026-01-01T00:00:00+00:00"}
    (folder / LOCK_NAME).write_text(json.dumps(info))


def test_lock_is_exclusive_and_released(tmp_path):
    out = tmp_path / "out"
    with output_lock(out, "test") as path:
        held = json.loads(path.read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        (out / "result.txt").write_text("x")
        with pytest.raises(OutputLockedError, match="in use by test"):
            locks.acquire(out, "second")
    assert not path.exists() and (out / "result.txt").exists()


def test_live_holder_refuses_and_touches_nothing(tmp_path, live_process):
    out = tmp_path / "out"
    hold_lock(out, live_process)
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    (out / ".checkpoint.pt.abcd1234.tmp").write_bytes(b"half")  # not even stale temps are tidied
    before = tree(out)
    with pytest.raises(OutputLockedError, match=f"pid {live_process.pid}"), output_lock(out, "pretrain run"):
        pass
    assert tree(out) == before


def test_stale_lock_of_a_dead_process_is_taken_over(tmp_path, caplog):
    out = tmp_path / "out"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    hold_lock(out, dead)
    with caplog.at_level("WARNING"), output_lock(out, "maskgen run") as path:
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert "stale lock" in caplog.text


def test_reused_pid_is_stale(tmp_path, live_process):
    """Same pid, other start time: the holder died and its pid went to another process."""
    out = tmp_path / "out"
    hold_lock(out, live_process)
    info = json.loads((out / LOCK_NAME).read_text())
    info["started"] = "1"
    (out / LOCK_NAME).write_text(json.dumps(info))
    with output_lock(out, "x"):
        pass


def test_lock_of_another_host_is_refused(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text(json.dumps({"host": "elsewhere", "pid": 1, "command": "evaluate sweep"}))
    with pytest.raises(OutputLockedError, match="on elsewhere.*delete"):
        locks.acquire(out, "x")


def test_torn_lock_file_is_stale(tmp_path):
    """A lock file that is not JSON cannot come from a live holder (locks are created complete)."""
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_NAME).write_text('{"host": "')
    with output_lock(out, "x"):
        pass


def test_stale_temp_files_are_removed_under_the_lock(tmp_path):
    out = tmp_path / "out"
    (out / "cells" / "t").mkdir(parents=True)
    stale = [out / ".checkpoint.pt.k2j4_x9a.tmp", out / "cells" / "t" / ".seed0-fold1.json.abcdefgh.tmp"]
    for p in stale:
        p.write_bytes(b"x" * 100)
    keep = [out / "notes.tmp", out / "cells" / "t" / "seed0-fold1.json"]
    for p in keep:
        p.write_text("keep")
    with output_lock(out, "x"):
        assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in keep)


def test_failed_command_leaves_no_new_empty_folder(tmp_path):
    out = tmp_path / "new"
    with pytest.raises(RuntimeError), output_lock(out, "maskgen adapt"):
        raise RuntimeError("model did not load")
    assert not out.exists()


COMMANDS = {
    "maskgen run": ("maskgen.cli.main", ["run", "--dataset", "butus", "--root", "{tmp}", "--checkpoint", "{tmp}",
                                    "--out", "{out}", "--no-progress"]),
    "maskgen adapt": ("maskgen.cli.main", ["adapt", "--out", "{out}", "--dataset", "tg3k", "--root", "{data}"]),
    "pretrain run": ("pretrain.cli", ["run", "--store", "{tmp}", "--out", "{out}"]),
    "evaluate sweep": ("evaluate.cli", ["sweep", "--root", "{tmp}", "--out", "{out}", "--tasks", "busi-seg"]),
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_writer_is_refused_on_a_held_folder(command, tmp_path, live_process, monkeypatch):
    """All four commands take the lock before they write (or read data): exit 75, one line."""
    import importlib

    module, args = COMMANDS[command]
    out = tmp_path / "out"
    hold_lock(out, live_process, command)
    (out / "precious.txt").write_text("first run's result")
    before = tree(out)
    if command == "maskgen adapt":  # adapt reads its frames first: give it some
        from maskgen.lpsam import data as lpsam_data

        monkeypatch.setattr(lpsam_data, "load_pairs", lambda *a, **k: _FakePairs())
    args = [a.format(tmp=tmp_path, out=out, data=tmp_path) for a in args]
    result = CliRunner().invoke(importlib.import_module(module).main, args)
    assert result.exit_code == EXIT_BUSY, result.output
    lines = [ln for ln in result.output.splitlines() if ln.strip() and not ln.startswith("LP-SAM")
             and "labelled frames" not in ln]
    assert len(lines) == 1 and f"pid {live_process.pid}" in lines[0], result.output
    assert tree(out) == before


class _FakePairs:
    problems: list = []
    classes: list = []

    def __len__(self):
        return 0


HELD_RUN = """
import pathlib, sys, time
import pretrain.train as train
step, go = train.train_step, pathlib.Path(sys.argv[1])
def held_step(*args, **kwargs):  # the real step, then wait until the test lets the run go on
    out = step(*args, **kwargs)
    while not go.exists():
        time.sleep(0.05)
    return out
train.train_step = held_step
from pretrain.cli import main
main(sys.argv[2:])
"""


def _tiny_pretrain(store, tmp_path):
    """RUN_DIR, the go-file of HELD_RUN, `pretrain run` arguments of a tiny run, its environment."""
    out, go = tmp_path / "run", tmp_path / "go"
    args = ["run", "--store", str(store), "--out", str(out), *TINY_RUN]
    return out, go, args, {**os.environ, "OMP_NUM_THREADS": "1"}


def test_two_concurrent_pretrain_runs_on_one_out(tiny_store, tmp_path):
    """Must show: seeds 0 and 1 started on one --out; the second is refused, the first intact.

    The first run is held after its first step until the second has been refused, so the two
    overlap on any machine, however loaded.
    """
    out, go, args, env = _tiny_pretrain(tiny_store, tmp_path)
    first = subprocess.Popen([sys.executable, "-c", HELD_RUN, str(go), *args, "--seed", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        deadline = time.monotonic() + 180
        # the first run holds the lock and has started (run.json, then config.toml: both before its step)
        while not ((out / "run.json").exists() and (out / "config.toml").exists()):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        held = tree(out)
        second = subprocess.run([sys.executable, "-m", "pretrain.cli", *args, "--seed", "1"],
                                capture_output=True, text=True, env=env, timeout=300)
        assert tree(out) == held  # the refused run touched nothing
    finally:
        go.write_text("go")
    _, err1 = first.communicate(timeout=300)
    assert second.returncode == EXIT_BUSY, second.stderr
    message = [ln for ln in second.stderr.splitlines() if ln.strip()]
    assert len(message) == 1 and "in use by pretrain run" in message[0] and "Traceback" not in second.stderr
    assert first.returncode == 0, err1.decode()[-2000:]
    assert json.loads((out / "run.json").read_text())["seed"] == 0
    steps = [json.loads(ln)["step"] for ln in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))  # one run's 3 epochs x 2 steps, nothing of the second
    assert (out / "backbone.safetensors").exists() and not (out / LOCK_NAME).exists()


def test_a_killed_run_leaves_a_stale_lock_that_the_rerun_takes_over(tiny_store, tmp_path):
    """SIGKILL leaves the lock file of a dead process; the next run takes it over and finishes."""
    import signal

    out, go, args, env = _tiny_pretrain(tiny_store, tmp_path)
    killed = subprocess.Popen([sys.executable, "-c", HELD_RUN, str(go), *args], stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 180
    while not (out / "run.json").exists():
        assert killed.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == killed.pid  # left behind
    rerun = subprocess.run([sys.executable, "-m", "pretrain.cli", *args], capture_output=True, text=True,
                           env=env, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert "taking over the stale lock" in rerun.stderr and not (out / LOCK_NAME).exists()
