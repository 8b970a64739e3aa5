"""Ahead-of-time training jobs (models/jobs.py): `theta compile` writes a job directory,
`theta run` trains from it in a fresh process without the compiler (no sympy, no jinja2),
printing what `theta train` prints for the same seed and backend; a job killed by SIGKILL and
resumed ends bitwise where the uninterrupted one does; broken jobs are clear errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

THETA = [sys.executable, "-m", "theta"]
OPTIONS = ["--epochs", "4", "--optimizer", "adam", "--lr", "0.002", "--seed", "7"]


def _theta(*args, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(THETA + list(args), capture_output=True, text=True, timeout=timeout)


def _rows(stdout: str) -> list:
    """The summary table without the time column."""
    return [" ".join(line.split()[:5]) for line in stdout.splitlines() if line.startswith(("model", "relu"))]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    path = tmp_path_factory.mktemp("jobs") / "job"
    out = _theta("compile", "relu-dropout", "-o", str(path), *OPTIONS)
    assert out.returncode == 0, out.stderr
    return path


def _copy(job, to):
    import shutil
    shutil.copytree(job, to)
    return to


def test_a_job_runs_without_the_compiler_and_prints_what_train_prints(job, tmp_path):
    run = _copy(job, tmp_path / "run")
    code = ("import sys, json; from theta.models.jobs import run_job; r = run_job(sys.argv[1], progress=False); "
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('sympy', 'jinja2'))))")
    out = subprocess.run([sys.executable, "-c", code, str(run)], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == []
    ran = _theta("run", str(_copy(job, tmp_path / "again")), "--quiet")
    trained = _theta("train", "relu-dropout", *OPTIONS, "--backend", "emu", "--quiet", "--no-plots")
    assert ran.returncode == 0 and trained.returncode == 0, ran.stderr + trained.stderr
    assert _rows(ran.stdout) == _rows(trained.stdout) and len(_rows(ran.stdout)) == 2


def _checkpoint(path) -> dict:
    with np.load(path / "checkpoint.npz") as z:
        return {k: z[k] for k in z.files if k != "meta"}


def _epoch(path) -> int:
    with np.load(path / "checkpoint.npz") as z:
        return json.loads(z["meta"].tobytes().decode())["trainer"]["epoch"]


def test_a_killed_job_resumes_to_bitwise_the_same_end(job, tmp_path, killed_after_first_checkpoint):
    whole, cut = _copy(job, tmp_path / "whole"), _copy(job, tmp_path / "cut")
    assert _theta("run", str(whole), "--quiet").returncode == 0
    assert _epoch(whole) == 4
    killed = killed_after_first_checkpoint(["run", str(cut), "--quiet"], cut)   # SIGKILLed after epoch 1 of 4
    assert killed["epoch"] == 1 and len(killed["history"]) == 1
    again = _theta("run", str(cut), "--quiet")
    assert again.returncode == 2 and "--resume" in again.stderr
    resumed = _theta("run", str(cut), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert _epoch(cut) == 4
    a, b = _checkpoint(whole), _checkpoint(cut)
    assert a.keys() == b.keys() and all(a[k].tobytes() == b[k].tobytes() for k in a)


def test_broken_jobs_are_clear_errors(job, tmp_path):
    missing = _theta("run", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and "not a theta job" in missing.stderr
    edited = _copy(job, tmp_path / "edited")
    (edited / "job.json").write_text((edited / "job.json").read_text().replace('"epochs": 4', '"epochs": 9'))
    out = _theta("run", str(edited))
    assert out.returncode == 2 and "checksum" in out.stderr and "Traceback" not in out.stderr
    other = _copy(job, tmp_path / "other")
    from theta.compiler import savedir
    manifest = json.loads((other / "job.json").read_text())
    manifest["theta_version"] = "0.0.1"
    savedir.write(tmp_path / "resigned", {"job.json": json.dumps(manifest).encode(),
                                          "data.npz": (other / "data.npz").read_bytes()})
    for name in os.listdir(other):
        if (other / name).is_dir():
            os.rename(other / name, tmp_path / "resigned" / name)
    out = _theta("run", str(tmp_path / "resigned"))
    assert out.returncode == 2 and "theta 0.0.1" in out.stderr
    truncated = _copy(job, tmp_path / "truncated")
    data = (truncated / "step" / "state.npz").read_bytes()
    (truncated / "step" / "state.npz").write_bytes(data[: len(data) // 2])
    out = _theta("run", str(truncated))
    assert out.returncode == 2 and "state.npz" in out.stderr
    exists = _theta("compile", "logreg", "-o", str(job))
    assert exists.returncode == 2 and "--overwrite" in exists.stderr
    assert _theta("compile", "sda", "-o", str(tmp_path / "sda")).returncode == 2
