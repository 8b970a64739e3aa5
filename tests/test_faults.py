"""Faults (issue 11, item 5): processes compiling at once, compiles killed with SIGKILL, damaged
cache entries, checkpoint writes killed midway.

Every scenario runs real theta processes (this file is also the child's script: ``python
tests/test_faults.py MODE ...``) on the emu backend with THETA_CACHE_DIR in a temporary
directory, each under a hard timeout so that a hung lock fails the test instead of CI.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 240   # one child: import, compile (g++), run; far beyond what it needs


# -- the child's side ----------------------------------------------------------------------------

def _graph():
    """Two functions with a handful of kernels (GEMM with an epilogue, a row softmax, a reduction)."""
    import theta
    import theta.tensor as T
    x = T.matrix("x")
    W = theta.shared(np.arange(12, dtype="float32").reshape(3, 4) / 10, name="W")
    step = theta.function([x], T.tanh(T.dot(x, W)).sum(), updates=[(W, W * np.float32(0.5) + 1)], backend="emu")
    soft = theta.function([x], T.nnet.softmax(x * 2).max(axis=0), backend="emu")
    return step, soft, W


X = np.linspace(-1, 1, 6, dtype="float32").reshape(2, 3)


def _expected() -> list:
    W = np.arange(12, dtype="float32").reshape(3, 4) / 10
    e = np.exp(X * 2 - (X * 2).max(axis=1, keepdims=True))
    return [float(np.tanh(X @ W).sum()), (e / e.sum(axis=1, keepdims=True)).max(axis=0).tolist()]


def _compile_and_report() -> None:
    from theta.runtime.cache import default_cache
    step, soft, _ = _graph()
    out = [float(step(X)), soft(X).tolist()]
    c = default_cache()
    print(json.dumps({"out": out, "hits": c.hits, "misses": c.misses, "rebuilds": c.rebuilds}))


def _die_during_compile(point: str) -> None:
    """Compile, killing this process with SIGKILL inside the cache's publish step: after g++
    wrote the artifact in its private directory ("built"), or after the artifact was renamed
    into place but before its sidecar ("artifact-published")."""
    from theta.runtime import cache as cache_mod

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "built":
        cache_mod._digest = die
    elif point == "artifact-published":
        import types

        def dying_replace(a, b) -> None:
            os.replace(a, b)
            die()
        # the cache module's os only: its first rename publishes an artifact, the next its sidecar
        cache_mod.os = types.SimpleNamespace(**{**vars(os), "replace": dying_replace})
    else:
        raise SystemExit(f"unknown kill point {point}")
    _graph()[0](X)
    raise SystemExit("not killed")


def _die_during_save(path: str, how: str, what: str) -> None:
    """Load the checkpoint at ``path``, run a step (its state changes), then save it (``what``:
    "state" rewrites it in place, "function" writes a freshly compiled function over it), killing
    this process with SIGKILL at the point ``how`` names."""
    import theta
    from theta.compiler import savedir

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    if how.startswith("write:"):   # on the k-th file written: half of it written, then dead
        k, count, write = int(how.split(":")[1]), [0], savedir._write_file

        def dying_write(file, data) -> None:
            count[0] += 1
            if count[0] == k:
                with open(file, "wb") as fh:
                    fh.write(data[:len(data) // 2])
                    fh.flush()
                die()
            write(file, data)
        savedir._write_file = dying_write
    elif how == "before-swap":     # every file written, nothing renamed yet
        savedir._publish = lambda tmp, dst: die()
    elif how == "between-renames":  # the fallback swap (no RENAME_EXCHANGE): old moved away, new not in
        savedir._exchange = lambda a, b: False
        replace, count = os.replace, [0]

        def dying_replace(a, b) -> None:
            count[0] += 1
            replace(a, b)
            if count[0] == 1:
                die()
        savedir.os.replace = dying_replace
    else:
        raise SystemExit(f"unknown kill point {how}")
    if what == "state":
        job = theta.load(path)
        job(X)
        job.save_state()
    else:
        step, _, W = _graph()
        W.set_value(np.full((3, 4), 7, "float32"))
        step(X)
        step.save(path)
    raise SystemExit("not killed")


# -- the parent's side ---------------------------------------------------------------------------

def _env(cache: Path) -> dict:
    # emu's checking mode off: the plain build, as a user's compile
    return {**os.environ, "THETA_CACHE_DIR": str(cache), "THETA_FLAGS": "emu_check=False",
            "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def _child(args: list, cache: Path, **popen) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, __file__, *args], cwd=ROOT, env=_env(cache), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        if _own_group(proc):   # its g++ too
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"a child process hung for {TIMEOUT_S} s (a stuck cache lock?)\n{err[-3000:]}")
    return proc.returncode, out, err


def _own_group(proc: subprocess.Popen) -> bool:
    try:
        return os.getpgid(proc.pid) == proc.pid
    except ProcessLookupError:
        return False


def _compile(cache: Path) -> dict:
    rc, out, err = _finish(_child(["compile"], cache))
    assert rc == 0, err[-3000:]
    report = json.loads(out.strip().splitlines()[-1])
    expected = _expected()
    assert np.isclose(report["out"][0], expected[0], rtol=1e-5), report
    np.testing.assert_allclose(report["out"][1], expected[1], rtol=1e-5)
    return report


def _entries(cache: Path) -> list[Path]:
    """Every published artifact (not a sidecar, lock or build directory)."""
    return sorted(p for p in cache.glob("*/*") if p.is_file() and not p.name.startswith(".")
                  and not p.name.endswith((".meta.json", ".lock")))


def _assert_consistent(cache: Path) -> None:
    """Every artifact with its sidecar, matching it; no build directory left behind."""
    from theta.runtime import cache as cache_mod
    entries = _entries(cache)
    assert entries
    for p in entries:
        assert cache_mod._is_valid(p), f"{p} does not match its sidecar"
    metas = sorted(cache.glob("*/*.meta.json"))
    assert len(metas) == len(entries), (metas, entries)
    assert not list(cache.glob("*/.build-*"))


def test_four_processes_compile_the_same_functions_at_once(tmp_path):
    cache = tmp_path / "cache"
    procs = [_child(["compile"], cache) for _ in range(4)]
    reports = []
    for proc in procs:
        rc, out, err = _finish(proc)
        assert rc == 0, err[-3000:]
        reports.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["out"] == reports[0]["out"] for r in reports)
    assert sum(r["rebuilds"] for r in reports) == 0
    _assert_consistent(cache)
    # each entry was built by exactly one process: the others waited on its lock and found it
    assert sum(r["misses"] for r in reports) == len(_entries(cache)), reports
    later = _compile(cache)
    assert later["misses"] == 0 and later["rebuilds"] == 0 and later["hits"] >= 1


def test_a_compile_killed_with_sigkill_while_gxx_runs(tmp_path):
    """Kill the whole process group (python and its g++) once the build directory appears: the
    lock dies with it, and a later run builds the entry and runs correctly."""
    cache = tmp_path / "cache"
    proc = _child(["compile"], cache, start_new_session=True)
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while proc.poll() is None and not list(cache.glob("*/.build-*")):
            assert time.monotonic() < deadline, "the build never started"
            time.sleep(0.002)
        time.sleep(0.05)   # g++ under way
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the compile finished before it could be killed"
    assert all(_valid(p) for p in _entries(cache))   # what was published before the kill is complete
    later = _compile(cache)
    assert later["misses"] >= 1 and later["rebuilds"] == 0
    _assert_consistent(cache)   # the killed build's directory removed by the next builder


@pytest.mark.parametrize("point", ["built", "artifact-published"])
def test_a_compile_killed_while_publishing_leaves_nothing_trusted(tmp_path, point):
    cache = tmp_path / "cache"
    rc, _, err = _finish(_child(["die-compiling", point], cache))
    assert rc == -signal.SIGKILL, f"the child was not killed where planned (rc {rc}): {err[-3000:]}"
    left = _entries(cache)
    assert not any(_valid(p) for p in left)   # an artifact without its sidecar is not an entry
    later = _compile(cache)
    # the half-published entry is rebuilt, never loaded (hits: a kernel both functions share)
    assert later["rebuilds"] == len(left) and later["misses"] >= 1, later
    _assert_consistent(cache)


def _valid(p: Path) -> bool:
    from theta.runtime.cache import _is_valid
    return _is_valid(p)


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory) -> Path:
    """A cache holding the entries of _graph's functions (built once for this module's tests)."""
    cache = tmp_path_factory.mktemp("faults") / "cache"
    first = _compile(cache)
    assert first["misses"] == len(_entries(cache)) and first["rebuilds"] == 0
    return cache


@pytest.mark.parametrize("damages", [("truncate", "flip-byte"), ("no-sidecar", "garbage-sidecar")])
def test_a_damaged_cache_entry_is_detected_and_rebuilt(tmp_path, built_cache, damages):
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache)
    entries = _entries(cache)
    assert len(entries) >= len(damages)   # (one emu library per function, at least)
    for k, p in enumerate(entries):   # one kind of damage per entry, each kind at least once
        damage = damages[k % len(damages)]
        data = p.read_bytes()
        meta = p.with_name(p.name + ".meta.json")
        if damage == "truncate":
            p.write_bytes(data[:len(data) // 2])
        elif damage == "flip-byte":   # same size, one byte changed
            i = len(data) // 2
            p.write_bytes(data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:])
        elif damage == "no-sidecar":
            meta.unlink()
        else:
            meta.write_text("{not json")
    later = _compile(cache)
    assert later["rebuilds"] >= 1 and later["misses"] == 0, later
    _assert_consistent(cache)   # so every damaged entry was rebuilt, none of them loaded


# -- checkpoints ---------------------------------------------------------------------------------

@pytest.fixture
def checkpoint(tmp_path, built_cache):
    """A saved training step (emu) and the weights it holds."""
    import theta
    cache = built_cache
    saved = os.environ.get("THETA_CACHE_DIR")
    os.environ["THETA_CACHE_DIR"] = str(cache)
    try:
        from theta.runtime import cache as cache_mod
        previous, cache_mod._default = cache_mod._default, None   # this test's cache directory
        emu_check, theta.config.emu_check = theta.config.emu_check, False
        try:
            step, _, W = _graph()
            step(X)
            path = tmp_path / "ckpt"
            step.save(path)
        finally:
            cache_mod._default = previous
            theta.config.emu_check = emu_check
    finally:
        if saved is None:
            os.environ.pop("THETA_CACHE_DIR", None)
        else:
            os.environ["THETA_CACHE_DIR"] = saved
    return path, cache, W.get_value()


def _kill_points(what: str) -> list:
    points = ["write:1", "write:2", "before-swap", "between-renames"]
    return points + (["write:3"] if what == "function" else [])


@pytest.mark.parametrize("what, how", [(w, h) for w in ("state", "function") for h in _kill_points(w)])
def test_a_checkpoint_write_killed_midway_leaves_the_previous_one(checkpoint, what, how):
    import theta
    path, cache, weights = checkpoint
    rc, _, err = _finish(_child(["die-saving", str(path), how, what], cache))
    assert rc == -signal.SIGKILL, f"the child was not killed where planned (rc {rc}): {err[-3000:]}"
    job = theta.load(path, backend="emu")   # the previous checkpoint, complete and checked
    np.testing.assert_array_equal(job.get_value("W"), weights)
    job(X)
    np.testing.assert_array_equal(job.get_value("W"), weights * np.float32(0.5) + 1)
    job.save_state()                         # and the next save goes through
    np.testing.assert_array_equal(theta.load(path, backend="emu").get_value("W"), weights * np.float32(0.5) + 1)
    assert not [p for p in path.parent.glob(f".{path.name}.old.*")]


if __name__ == "__main__":
    mode, rest = sys.argv[1], sys.argv[2:]
    if mode == "compile":
        _compile_and_report()
    elif mode == "die-compiling":
        _die_during_compile(*rest)
    elif mode == "die-saving":
        _die_during_save(*rest)
    else:
        raise SystemExit(f"unknown mode {mode}")
