"""Regressions of the command line and its artifacts (issues 19 and 29).

- `theta run JOB` prints what `theta train` prints for the same options, also on a run whose
  validation error ties between epochs (both loops count errors exactly and keep the earliest
  of tied epochs).
- Paths and sizes are checked before any work; an edited job.json or a damaged checkpoint is
  an ArtifactError naming the file and the field, exit code 2, one line, no traceback.

The CLI is called in-process (theta.cli.main) to stay fast.
"""
from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from theta.cli import main
from theta.compiler import savedir
from theta.errors import ArtifactError
from theta.models.jobs import read_job

# logreg, seed 8, 4 epochs on emu: the validation errors are 31, 30, 21, 21 wrong of 300, a tie
# between epochs 3 and 4 (the earliest wins)
TIED = ["logreg", "--epochs", "4", "--seed", "8", "--backend", "emu"]


def _table(stdout: str) -> list:
    """The summary table without the time column."""
    lines = [line for line in stdout.splitlines() if line.startswith(("model", "logreg", "mlp", "backend"))]
    return [" ".join(line.split()[:5]) if not line.startswith("backend") else line for line in lines]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    path = tmp_path_factory.mktemp("jobs") / "job"
    assert main(["compile", *TIED, "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def ran(job, tmp_path_factory):
    """A copy of ``job`` run to its end: it holds a checkpoint."""
    path = shutil.copytree(job, tmp_path_factory.mktemp("ran") / "job")
    assert main(["run", str(path), "--quiet"]) == 0
    return path


def test_run_and_train_print_the_same_table_on_a_tie(job, tmp_path, capsys):
    capsys.readouterr()
    assert main(["run", str(shutil.copytree(job, tmp_path / "job")), "--quiet"]) == 0
    ran = capsys.readouterr().out
    assert main(["train", *TIED, "--quiet", "--no-plots"]) == 0
    trained = capsys.readouterr().out
    assert len(_table(trained)) == 3 and _table(ran) == _table(trained)
    assert _table(trained)[1].split()[:3] == ["logreg", "4", "3"]      # epochs run, best epoch: the earliest tie


def test_error_rates_are_counts_not_rates():
    from theta.errors import ThetaError
    from theta.models.record import error_rate
    assert error_rate([np.int64(1), 1, np.array(0)], 41) == 2 / 41      # a short last minibatch weighs its rows
    with pytest.raises(ThetaError, match="integer"):
        error_rate([np.float32(0.05)], 20)


# ------------------------------------------------------------------------------ paths and sizes

@pytest.mark.parametrize("argv", [
    ["compile", "logreg", "-o", "{file}"],
    ["compile", "logreg", "-o", "{file}/job"],
    ["train", "logreg", "--epochs", "1", "--quiet", "--out", "{file}"],
    ["train", "logreg", "--epochs", "1", "--quiet", "--out", "{file}/run"],
    ["train", "logreg", "--epochs", "1", "--quiet", "--plots", "{file}"],
    ["train", "logreg", "--epochs", "1", "--quiet", "--no-plots", "--out", "{file}"],
])
def test_output_paths_are_checked_before_any_work(argv, tmp_path, capsys, monkeypatch):
    """A file where a directory belongs is refused at once (the zoo's models are never run)."""
    import theta.models.data
    import theta.models.train

    def load_digits(*args, **kwargs):
        pytest.fail("the data were loaded before the paths were checked")
    monkeypatch.setattr(theta.models.data, "load_digits", load_digits)     # compile_job's
    monkeypatch.setattr(theta.models.train, "load_digits", load_digits)
    (tmp_path / "file").write_text("not a directory")
    flag = next(a for a in argv if "{file}" in a)
    assert main([a.replace("{file}", str(tmp_path / "file")) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{argv[argv.index(flag) - 1]} {flag.replace('{file}', str(tmp_path / 'file'))}" in err
    assert (tmp_path / "file").read_text() == "not a directory"


def test_a_huge_hidden_layer_is_a_size_error_before_allocating(capsys):
    from theta.errors import SizeError
    from theta.models.classifiers import build
    with pytest.raises(SizeError, match=r"h0\.W of shape 64x1000000000"):
        build("mlp", np.random.default_rng(0), 64, 10, 10 ** 9, 0)
    assert main(["train", "mlp", "--hidden", "1000000000", "--epochs", "1", "--quiet", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert "--hidden" in err and "GiB" in err and err.count("\n") == 1


def test_a_negative_seed_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "logreg", "--seed", "-1"])
    assert e.value.code == 2 and "--seed must be at least 0" in capsys.readouterr().err


# ------------------------------------------------------------------ job.json and checkpoints

def _walk(doc, path=()):
    """(path, value) of every field of a JSON document: object fields and list items, nested."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield path + (key,), value
        yield from _walk(value, path + (key,))


def _named(path: tuple) -> str:
    """What the message must name: the dotted path down to the first list item (whose list it names)."""
    names = []
    for key in path:
        if isinstance(key, int):
            break
        names.append(key)
    return ".".join(names)


def _edits(doc):
    """(path, how, edited copy): each field deleted, then given values of the wrong type or range."""
    for path, value in _walk(doc):
        wrong = [12345] if isinstance(value, str) else ["x"]
        if type(value) is int:
            wrong += [-1, 1.5]
        for how, new in [("deleted", None)] + [(f"= {w!r}", w) for w in wrong]:
            edited = json.loads(json.dumps(doc))
            parent = edited
            for key in path[:-1]:
                parent = parent[key]
            if how == "deleted":
                del parent[path[-1]]
            else:
                parent[path[-1]] = new
            yield path, how, edited


def _resign(job, manifest: dict) -> None:
    """Write ``manifest`` as the job's job.json with its checksums recomputed (as anyone can)."""
    signed = job.parent / "signed"
    shutil.rmtree(signed, ignore_errors=True)
    savedir.write(signed, {"job.json": json.dumps(manifest).encode(), "data.npz": (job / "data.npz").read_bytes()})
    for name in ("job.json", "checksums.json"):
        (job / name).write_bytes((signed / name).read_bytes())


def _refused(argv, capsys, case=()) -> str:
    """stderr of ``theta argv``, which must fail with one line and exit code 2."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, (case, err)
    assert err.count("\n") == 1 and err.startswith("theta: error: ") and "Traceback" not in err, (case, err)
    return err


def test_every_edit_of_job_json_is_an_artifact_error_naming_the_field(job, tmp_path, capsys):
    edited = shutil.copytree(job, tmp_path / "job")
    manifest = json.loads((job / "job.json").read_text())
    cases = list(_edits(manifest)) + [((k,), f"= {v!r}", manifest | {k: v})
                                      for k, v in (("epochs", "5"), ("batch_size", 0), ("seed", 1.5))]
    assert len(cases) > 60
    for path, how, doc in cases:
        _resign(edited, doc)
        err = _refused(["run", str(edited), "--quiet"], capsys, (path, how))
        assert "job.json" in err and _named(path) in err, (path, how, err)
        with pytest.raises(ArtifactError):
            read_job(edited)
    _resign(edited, manifest)          # the unedited manifest, re-signed, still runs
    assert main(["run", str(edited), "--quiet"]) == 0


def test_a_jobs_data_must_fit_its_programs(job, tmp_path, capsys):
    edited = shutil.copytree(job, tmp_path / "job")
    manifest = json.loads((job / "job.json").read_text())
    with np.load(job / "data.npz") as z:
        data = {k: z[k] for k in z.files}
    for key, value in (("valid_y", None), ("train_x", data["train_x"][:-1]), ("test_x", data["test_x"][:, :, None]),
                       ("train_y", data["train_y"].astype(np.float32)), ("valid_x", data["valid_x"][:0])):
        changed = {k: v for k, v in data.items() if k != key} | ({key: value} if value is not None else {})
        with open(edited / "data.npz", "wb") as f:
            np.savez(f, **changed)
        _resign(edited, manifest)
        err = _refused(["run", str(edited), "--quiet"], capsys, key)
        assert "data.npz" in err and key in err, (key, err)


def test_overwrite_replaces_only_a_job(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    err = _refused(["compile", "logreg", "-o", str(tmp_path / "mine"), "--overwrite"], capsys)
    assert "not a theta job" in err and (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_every_edit_of_a_jobs_checksums_is_an_artifact_error_naming_the_field(job, tmp_path, capsys):
    edited = shutil.copytree(job, tmp_path / "job")
    doc = json.loads((job / "checksums.json").read_text())
    cases = list(_edits(doc))
    assert len(cases) >= 10
    for path, how, new in cases:
        # in the one form theta writes, so that only the edited field is wrong
        (edited / "checksums.json").write_text(json.dumps(new, sort_keys=True, separators=(",", ":")) + "\n")
        err = _refused(["run", str(edited), "--quiet"], capsys, (path, how))
        assert "checksums.json" in err and _named(path) in err, (path, how, err)


def _rewrite_checkpoint(path, meta: dict | None = None, **arrays) -> None:
    with np.load(path) as z:
        saved = {k: z[k] for k in z.files}
    if meta is not None:
        saved["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    for key, value in arrays.items():
        if value is None:
            del saved[key]
        else:
            saved[key] = value
    with open(path, "wb") as f:
        np.savez(f, **saved)


def _meta(path) -> dict:
    with np.load(path) as z:
        return json.loads(z["meta"].tobytes().decode())


def test_every_edit_of_a_checkpoints_meta_is_an_artifact_error_naming_the_field(ran, tmp_path, capsys):
    where = shutil.copytree(ran, tmp_path / "job")
    original = (ran / "checkpoint.npz").read_bytes()
    meta = _meta(ran / "checkpoint.npz")
    assert {"format", "identity", "names", "epochs_done", "trainer"} <= set(meta) and meta["trainer"]["history"]
    cases = list(_edits(meta))
    assert len(cases) > 60
    for path, how, doc in cases:
        (where / "checkpoint.npz").write_bytes(original)
        _rewrite_checkpoint(where / "checkpoint.npz", doc)
        err = _refused(["run", str(where), "--resume", "--quiet"], capsys, (path, how))
        assert "checkpoint.npz" in err and _named(path) in err, (path, how, err)


def test_a_checkpoints_arrays_are_checked(ran, tmp_path, capsys):
    where = shutil.copytree(ran, tmp_path / "job")
    original = (ran / "checkpoint.npz").read_bytes()
    with np.load(ran / "checkpoint.npz") as z:
        order, s0 = z["order"], z["s0"]
    cases = {"order": [None, order[:-1], order.astype(np.float64), np.zeros_like(order), order.reshape(1, -1),
                       order + 1],
             "s0": [None, s0[:1], s0.astype(np.float16)],
             "b0": [None, s0.astype(np.float16)]}
    for key, values in cases.items():
        for value in values:
            (where / "checkpoint.npz").write_bytes(original)
            _rewrite_checkpoint(where / "checkpoint.npz", **{key: value})
            err = _refused(["run", str(where), "--resume", "--quiet"], capsys, (key, value))
            assert "checkpoint.npz" in err and f"'{key}'" in err, (key, err)
    (where / "checkpoint.npz").write_bytes(original)
    meta = _meta(ran / "checkpoint.npz")
    del meta["trainer"]
    _rewrite_checkpoint(where / "checkpoint.npz", meta)
    assert "'trainer' is missing" in _refused(["run", str(where), "--resume", "--quiet"], capsys)


def test_theta_train_resume_refuses_a_bad_order(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "logreg", "--epochs", "1", "--backend", "reference", "--quiet", "--no-plots", "--out", str(out)]
    assert main(args) == 0
    with np.load(out / "checkpoint.npz") as z:
        order = z["order"]
    order[0] = order[1]
    _rewrite_checkpoint(out / "checkpoint.npz", order=order)
    err = _refused(args + ["--resume"], capsys)
    assert "checkpoint.npz" in err and "'order'" in err and "permutation" in err
