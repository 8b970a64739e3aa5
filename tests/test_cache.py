"""KernelCache: content keys, hit/miss/rebuild counts, atomic publish, corruption, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any

import pytest

import theta.runtime.cache as cache_mod
from theta.runtime.cache import CacheError, KernelCache, default_cache

PAYLOAD = b"\x7fELF" + bytes(range(256)) * 40


def write_payload(path: Path) -> None:
    path.write_bytes(PAYLOAD)


@pytest.fixture
def cache(tmp_path: Path) -> KernelCache:
    return KernelCache(tmp_path / "cache")


def leftovers(cache: KernelCache) -> list[Path]:
    """Temporary build directories that should never outlive a build."""
    return list(cache.root.glob("*/.build-*"))


def test_key_is_order_independent_and_sensitive_to_every_part(cache: KernelCache) -> None:
    k = cache.key(source="a", flags="-O2", compiler="g++ 12")
    assert k == cache.key(compiler="g++ 12", flags="-O2", source="a")
    assert len(k) == 64 and int(k, 16) >= 0
    assert k != cache.key(source="a", flags="-O3", compiler="g++ 12")
    assert k != cache.key(source="a", flags="-O2", compiler="g++ 13")
    # Length prefixes: moving text between parts changes the key.
    assert cache.key(a="xy", b="z") != cache.key(a="x", b="yz")
    with pytest.raises(TypeError):
        cache.key(arch=90)  # type: ignore[arg-type]


def test_hits_and_misses(cache: KernelCache) -> None:
    calls = []

    def build(p: Path) -> None:
        calls.append(p)
        write_payload(p)

    key = cache.key(source="hits")
    first = cache.get_or_build(key, build, ".bin")
    second = cache.get_or_build(key, build, ".bin")
    assert first == second and first.read_bytes() == PAYLOAD and first.suffix == ".bin"
    assert len(calls) == 1 and calls[0].suffix == ".bin"
    assert (cache.hits, cache.misses, cache.rebuilds) == (1, 1, 0)
    # A new instance on the same directory finds the entry on disk.
    again = KernelCache(cache.root)
    assert again.get_or_build(key, build, ".bin") == first and again.hits == 1 and len(calls) == 1


def test_publish_is_atomic(cache: KernelCache) -> None:
    key = cache.key(source="atomic")
    final = cache.path(key, ".so")

    def build(p: Path) -> None:
        with open(p, "wb") as f:
            f.write(PAYLOAD[:100])
            f.flush()
            # Half written: nothing is visible at the final path yet.
            assert not final.exists()
            assert p.parent != final.parent or p.name != final.name
            f.write(PAYLOAD[100:])

    assert cache.get_or_build(key, build, ".so") == final
    assert final.read_bytes() == PAYLOAD
    meta = json.loads(final.with_name(final.name + ".meta.json").read_text())
    assert meta["size"] == len(PAYLOAD)
    assert leftovers(cache) == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop_sidecar", "empty"])
def test_corrupt_entry_is_detected_and_rebuilt(cache: KernelCache, damage: str) -> None:
    key = cache.key(source="corrupt", damage=damage)
    path = cache.get_or_build(key, write_payload)
    if damage == "truncate":
        with open(path, "r+b") as f:
            f.truncate(len(PAYLOAD) // 2)
    elif damage == "flip":
        data = bytearray(path.read_bytes())
        data[1234] ^= 0xFF
        path.write_bytes(bytes(data))
    elif damage == "drop_sidecar":
        path.with_name(path.name + ".meta.json").unlink()
    else:
        path.write_bytes(b"")
    rebuilt = cache.get_or_build(key, write_payload)
    assert rebuilt == path and path.read_bytes() == PAYLOAD
    assert (cache.misses, cache.rebuilds, cache.hits) == (1, 1, 0)
    cache.get_or_build(key, write_payload)
    assert cache.hits == 1


def test_failed_build_leaves_nothing_behind(cache: KernelCache) -> None:
    key = cache.key(source="fails")

    def broken(p: Path) -> None:
        p.write_bytes(b"partial")
        raise RuntimeError("compiler exploded")

    with pytest.raises(RuntimeError, match="compiler exploded"):
        cache.get_or_build(key, broken, ".so")
    assert not cache.path(key, ".so").exists()
    assert leftovers(cache) == []
    assert (cache.hits, cache.misses, cache.rebuilds) == (0, 0, 0)
    # A failed rebuild removes the corrupt entry it replaced, too.
    good = cache.get_or_build(key, write_payload, ".so")
    good.write_bytes(b"garbage")
    with pytest.raises(RuntimeError):
        cache.get_or_build(key, broken, ".so")
    assert not good.exists()
    assert cache.get_or_build(key, write_payload, ".so").read_bytes() == PAYLOAD


def test_build_that_writes_nothing_is_an_error(cache: KernelCache) -> None:
    with pytest.raises(CacheError, match="wrote nothing"):
        cache.get_or_build(cache.key(source="nothing"), lambda p: None)
    assert leftovers(cache) == []


def test_bad_keys_and_suffixes(cache: KernelCache) -> None:
    for key in ("../../etc/passwd", "short", "a/b/c/d/e/f/g"):
        with pytest.raises(CacheError):
            cache.get_or_build(key, write_payload)
    with pytest.raises(CacheError):
        cache.get_or_build(cache.key(x="y"), write_payload, suffix="/x")


def _build_slowly(root: str, key: str, log: str, start: Any, results: Any) -> None:
    def build(p: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(0.3)  # a slow compiler: the others must wait, not build too
        write_payload(p)

    cache = KernelCache(root)
    start.wait()
    path = cache.get_or_build(key, build, ".so")
    results.put((str(path), path.read_bytes() == PAYLOAD, cache.hits, cache.misses))


def test_concurrent_processes_build_once(cache: KernelCache, tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    key = cache.key(source="concurrent")
    log = tmp_path / "builds.log"
    start, results = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_build_slowly, args=(str(cache.root), key, str(log), start, results))
             for _ in range(4)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert len(log.read_text().splitlines()) == 1
    assert {o[0] for o in outcomes} == {str(cache.path(key, ".so"))}
    assert all(o[1] for o in outcomes)
    assert sorted((o[2], o[3]) for o in outcomes) == [(0, 1), (1, 0), (1, 0), (1, 0)]


def test_clear(cache: KernelCache) -> None:
    path = cache.get_or_build(cache.key(source="clear"), write_payload)
    cache.clear()
    assert not path.exists() and cache.root.is_dir() and list(cache.root.iterdir()) == []


def test_default_cache_uses_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache_mod, "_default", None)
    monkeypatch.setenv("THETA_CACHE_DIR", str(tmp_path / "from-env"))
    c = default_cache()
    assert c.root == tmp_path / "from-env" and c.root.is_dir()
    assert default_cache() is c
