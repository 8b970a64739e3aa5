"""An edited saved program is refused, never run (issue 29 item 9, issue 19 item 6).

Checksums catch accidents, not edits: anyone can change manifest.json and recompute them. So
theta.load checks every field of the manifest against the rest of the program, its kernels'
sources and the device's limits (compiler.program_check) and refuses anything else with an
ArtifactError naming the field. The table tests below walk the JSON of saved programs
generically (so a new field is covered as soon as it is saved): each field in turn is deleted
or replaced by a wrong type, a negative, a huge value or a list of the wrong length, the
checksums recomputed, and the result must be an ArtifactError at load, or a function that
computes exactly what the unedited one does. Whatever is accepted runs in a child process, so
a crash names its case instead of killing pytest.
"""
import copy
import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import theta
import theta.tensor as T
from theta.compiler import program_check, savedir
from theta.compiler.program import Program
from theta.errors import ArtifactError, InputError, SizeError

X = np.linspace(-1, 1, 40, dtype="float32").reshape(8, 5)
Y = (np.arange(8) % 3).astype("int32")
SEQ = np.arange(5, dtype="float32")


def _train_step():
    """gemm, softmax and reduce kernels, two shared variables updated in place."""
    x, y = T.fmatrix("x"), T.ivector("y")
    W = theta.shared(np.full((5, 3), 0.1, "float32"), name="W")
    b = theta.shared(np.zeros(3, "float32"), name="b")
    cost = T.mean(T.nnet.categorical_crossentropy(T.nnet.softmax(T.dot(x, W) + b), y))
    gW, gb = theta.grad(cost, [W, b])
    return theta.function([x, y], cost, updates=[(W, W - 0.5 * gW), (b, b - 0.5 * gb)], backend="emu")


def _scan():
    """A loop: a sequence read backwards, a state, a non-sequence, two stacked outputs."""
    v, c = T.fvector("v"), T.fscalar("c")
    (acc, prod), _ = theta.scan(lambda a, s, k: [s + a * k, a * s], sequences=v,
                                outputs_info=[T.zeros((), dtype="float32"), None], non_sequences=c,
                                go_backwards=True)
    return theta.function([v, c], [acc, prod], backend="emu")


def _minibatch():
    """A minibatch of a shared dataset: a reference with a runtime offset (the batch start)."""
    data = theta.shared(np.arange(40, dtype="float32").reshape(10, 4), name="data")
    i = T.lscalar("i")
    x = T.fmatrix("x")
    w = theta.shared(np.ones(4, "float32"), name="w")
    return theta.function([i], T.sum(T.dot(x, w)), givens={x: data[i * 2:(i + 1) * 2]},
                          updates=[(w, w * 0.5)], backend="emu")


# name -> (build, arguments, runtime scalars of the loaded function)
PROGRAMS = {
    "step": (_train_step, (X, Y), []),
    "scan": (_scan, (SEQ, np.float32(2)), []),
    "minibatch": (_minibatch, (np.int64(1),), [2]),
}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """name -> directory of the saved function (after one call)."""
    root = tmp_path_factory.mktemp("programs")
    out = {}
    for name, (build, args, _) in PROGRAMS.items():
        f = build()
        f(*args)
        f.save(root / name)
        out[name] = root / name
    return out


def _reseal(path, name: str, data: bytes) -> None:
    """Write ``data`` as file ``name`` of the saved directory ``path`` and recompute its checksum,
    as anyone editing a saved program can."""
    (path / name).write_bytes(data)
    digests = json.loads((path / savedir.CHECKSUMS).read_text())["sha256"]
    digests[name] = savedir.sha256(data)
    (path / savedir.CHECKSUMS).write_bytes(savedir._canonical(digests))


# -- the child that runs what was accepted -------------------------------------------------------

_RUNNER = textwrap.dedent("""
    import json, sys, traceback
    import numpy as np
    import theta
    cases = json.load(open(sys.argv[1]))
    for case in cases:
        print("START", case["name"], flush=True)
        args = [np.asarray(a, dtype=d) for a, d in case["args"]]
        try:
            f = theta.load(case["path"], backend="emu")
            out = f(*args, scalars=case["scalars"])
            out = out if isinstance(out, list) else ["single", out]
            state = [f.get_value(n).tolist() for n in sorted(f.state)]
            print("RESULT", json.dumps([np.asarray(o).tolist() for o in out] + state), flush=True)
        except theta.ThetaError as e:
            print("ERROR", type(e).__name__, str(e).replace(chr(10), " ")[:300], flush=True)
        except Exception as e:
            print("RAW", type(e).__name__, str(e).replace(chr(10), " ")[:300], flush=True)
""")


def _run_cases(cases: list, tmp_path) -> dict:
    """case name -> "RESULT <json>" / "ERROR ..." / "RAW ..." / "CRASH ...", run in one child
    (rerun past a case that kills it, so every case gets its verdict)."""
    verdicts: dict = {}
    todo = list(cases)
    while todo:
        spec = tmp_path / "cases.json"
        spec.write_text(json.dumps(todo))
        try:
            proc = subprocess.run([sys.executable, "-c", _RUNNER, str(spec)], capture_output=True, text=True,
                                  timeout=HANG_S)
            stdout, died = proc.stdout, f"CRASH rc={proc.returncode} {proc.stderr[-300:]}"
        except subprocess.TimeoutExpired as e:   # (a 2**31-block grid ran for hours on emu)
            stdout, died, proc = (e.stdout or b"").decode(), f"HANG over {HANG_S} s", None
        current = None
        for line in stdout.splitlines():
            kind, _, rest = line.partition(" ")
            if kind == "START":
                current = rest
            elif current is not None:
                verdicts[current] = line
                current = None
        if current is not None:   # the child died (or hung) inside this case
            verdicts[current] = died
        todo = [c for c in todo if c["name"] not in verdicts]
        if proc is not None and proc.returncode == 0 and todo:
            raise AssertionError(f"the runner skipped {[c['name'] for c in todo]}: {proc.stderr[-2000:]}")
    return verdicts


HANG_S = 240   # the whole batch of a child; each case takes well under a second


def _case(name: str, path, program: str, scalars: list | None = None) -> dict:
    _, args, default = PROGRAMS[program]
    scalars = default if scalars is None else scalars
    return {"name": name, "path": str(path), "args": [[np.asarray(a).tolist(), np.asarray(a).dtype.name] for a in args],
            "scalars": scalars}


# -- the crashes of issue 29 item 9, each a refusal naming its field -------------------------------

def _at(doc, *keys):
    for k in keys:
        doc = doc[k]
    return doc


def _setter(*keys_and_value):
    *keys, value = keys_and_value

    def edit(doc):
        _at(doc, *keys[:-1])[keys[-1]] = value
    return edit


def _loop_steps(n):
    def edit(doc):
        loop = doc["loops"][0]
        loop["n_steps"] = n
        for seq in loop["seqs"]:
            seq[2] = n
    return edit


ISSUE_CASES = {   # name -> (program, edit, the field the error must name)
    "huge output offset": ("step", _setter("outputs", 0, "ref", "offset", 10 ** 12), "outputs[0].ref.offset"),
    "negative output offset": ("step", _setter("outputs", 0, "ref", "offset", -3), "outputs[0].ref.offset"),
    "output shape larger than its buffer": ("step", _setter("outputs", 1, "shape", [50, 3]), "outputs[1]"),
    "negative output stride": ("step", _setter("outputs", 1, "strides", [-3, 1]), "outputs[1]"),
    "huge loop n_steps with matching rows": ("scan", _loop_steps(10 ** 9), "loops[0]"),
    "huge loop output row": ("scan", _setter("loops", 0, "outputs", 0, 1, 10 ** 9), "loops[0].outputs[0]"),
    "negative sequence stride": ("scan", _setter("loops", 0, "seqs", 0, 1, -1), "loops[0].seqs[0]"),
    "grid of 2**31-1 blocks": ("step", _setter("kernels", 0, "grid", [2 ** 31 - 1, 1, 1]), "kernels[0].grid"),
    "grid of 2**31-1 blocks (elemwise)": ("scan", _setter("loops", 0, "step", "kernels", 0, "grid", [2 ** 31 - 1]),
                                          "loops[0].step.kernels[0].grid"),
    "huge arena": ("step", _setter("arena_bytes", 2 ** 50), "arena_bytes"),
    "block larger than compiled": ("step", _setter("kernels", 1, "block", [1024, 1, 1]), "kernels[1].block"),
    "kernel pointer past its buffer": ("step", _setter("kernels", 0, "bindings", 0, "ref", "offset", 41),
                                       "kernels[0].bindings[0].ref.offset"),
    "temporary outside the arena": ("step", _setter("buffers", 8, "arena_offset", 2 ** 20), "buffers[8]"),
    "pointer to a buffer of another dtype": ("step", _setter("kernels", 1, "bindings", 1, "ref", "buffer", 0),
                                             "kernels[1].bindings[1]"),
    "a kernel left out": ("step", lambda doc: doc["kernels"].pop(3) and None, "checksummed file"),
    "a state of the wrong size": ("scan", _setter("loops", 0, "initial", 0, "offset", 1), "loops[0].initial[0]"),
}


def test_every_issue_case_is_refused_naming_its_field(saved, tmp_path):
    cases = []
    for k, (name, (program, edit, field)) in enumerate(ISSUE_CASES.items()):
        path = tmp_path / f"case{k}"
        shutil.copytree(saved[program], path)
        doc = json.loads((path / "manifest.json").read_text())
        edit(doc)
        _reseal(path, "manifest.json", json.dumps(doc).encode())
        cases.append(_case(name, path, program))
    verdicts = _run_cases(cases, tmp_path)   # before the fix some of these killed the interpreter
    for name, (_, _, field) in ISSUE_CASES.items():
        assert verdicts[name].startswith("ERROR ArtifactError"), (name, verdicts[name])
        assert field in verdicts[name], (name, verdicts[name])


# -- the generic table: every field of the manifest and of checksums.json ---------------------------

def _nodes(doc, path=()):
    """(path, value) of every value inside ``doc`` (not ``doc`` itself), depth first."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for key, value in items:
        yield path + (key,), value
        yield from _nodes(value, path + (key,))


def _mutations(value):
    """(label, how) for one field: how(container, key) edits it in place."""
    def put(v):
        return lambda c, k: c.__setitem__(k, v)
    yield "deleted", lambda c, k: c.pop(k)
    wrong = {str: 7, bool: 1, int: "7", float: "7", list: "x", dict: [], type(None): 7}[type(value)]
    yield "wrong type", put(wrong)
    if type(value) is int:
        yield "negative", put(-1 if value != -1 else -2)
        yield "huge", put(2 ** 62)
    if isinstance(value, list):
        yield "one shorter", lambda c, k: c[k].pop() if c[k] else c[k].append(0)
        yield "one longer", lambda c, k: c[k].append(copy.deepcopy(c[k][-1]) if c[k] else 0)


def _edited(doc, path, how):
    doc = copy.deepcopy(doc)
    how(_at(doc, *path[:-1]), path[-1])
    return doc


def _label(path) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_every_field_of_the_manifest_deleted_or_corrupted(saved, tmp_path, program):
    _check_table(saved[program], program, "manifest.json", tmp_path)


@pytest.mark.parametrize("program", ["step"])
def test_every_field_of_the_checksum_file_deleted_or_corrupted(saved, tmp_path, program):
    _check_table(saved[program], program, savedir.CHECKSUMS, tmp_path)


@pytest.mark.parametrize("program", ["step"])
def test_every_field_of_function_json_deleted_or_corrupted(saved, tmp_path, program):
    _check_table(saved[program], program, "function.json", tmp_path)


# A runtime offset term of a reference (a minibatch start's coefficient) has no counterpart in
# the manifest to check it against at load: each call checks the reference with its scalars
# (an InputError naming them), and one edit stays unrefusable: a duplicated term, which a
# legitimate program can hold too (x[i:i + 5][i:i + 2] slices one axis twice by the same index).
AT_CALL = ".dyn"
UNCHECKABLE = {"manifest.json: kernels[0].bindings[0].ref.dyn one longer"}


def _check_table(source, program: str, file: str, tmp_path) -> None:
    original = json.loads((source / file).read_text())
    work = tmp_path / "work"
    shutil.copytree(source, work)
    accepted, wrong = [], []
    for k, (path, value) in enumerate(list(_nodes(original))):
        for label, how in _mutations(value):
            name = f"{file}: {_label(path)} {label}"
            doc = _edited(original, path, how)
            data = json.dumps(doc).encode()
            if file == savedir.CHECKSUMS:
                # in the form theta writes, where the edit leaves one: the content is refused, not the form
                canonical = isinstance(doc.get("sha256"), dict) and set(doc) == set(original) \
                    and all(isinstance(v, str) for v in doc["sha256"].values()) \
                    and (doc["format"], doc["version"]) == (original["format"], original["version"])
                (work / file).write_bytes(savedir._canonical(doc["sha256"]) if canonical else data)
            else:
                _reseal(work, file, data)
            written = {f: (work / f).read_bytes() for f in (file, savedir.CHECKSUMS)}
            try:   # loading runs no kernel: a refusal here cannot crash
                theta.load(work, backend="emu")
            except ArtifactError:
                continue
            except Exception as e:   # noqa: BLE001 - any other exception is the failure reported
                wrong.append(f"{name}: raw {type(e).__name__}: {e}")
                continue
            finally:
                for f in (file, savedir.CHECKSUMS):
                    shutil.copyfile(source / f, work / f)
            case = tmp_path / f"m{k}_{label.replace(' ', '_')}"
            shutil.copytree(source, case)
            for f, content in written.items():
                (case / f).write_bytes(content)
            accepted.append(_case(name, case, program))
    reference = tmp_path / "unedited"
    shutil.copytree(source, reference)
    verdicts = _run_cases([_case("unedited", reference, program)] + accepted, tmp_path)
    expected = verdicts.pop("unedited")
    assert expected.startswith("RESULT"), expected
    for name, verdict in verdicts.items():
        if verdict == expected or name in UNCHECKABLE:
            continue
        if AT_CALL in name and verdict.startswith("ERROR InputError") and "runtime scalars" in verdict:
            continue
        wrong.append(f"{name}: accepted, then {verdict[:300]}")   # crashed, raised or computed another result
    assert not wrong, f"{len(wrong)} edits not refused:\n" + "\n".join(wrong)


# -- what a compiled program always satisfies ----------------------------------------------------------

def _more_kernels():
    """(function, arguments) over other kernel families and views: reductions split across blocks,
    a transposed operand (two views through one pointer), gather and scatter, a reversed view."""
    m = T.fmatrix("m")
    big = np.linspace(0, 1, 64 * 4096, dtype="float32").reshape(64, 4096)
    idx = T.ivector("idx")
    yield theta.function([m], [m.sum(axis=1), m.max(axis=0), m.sum()], backend="emu"), (big,)
    yield theta.function([m], T.dot(m, m.T) + m[::-1, ::2].sum(), backend="emu"), (X,)
    yield theta.function([m, idx], [m[idx], T.inc_subtensor(m[idx], 1.0)], backend="emu"), \
        (X, np.array([3, 0, 3], "int32"))
    img = T.tensor4("img", dtype="float32")
    filters = theta.shared(np.ones((3, 2, 3, 3), "float32"), name="filters")
    yield theta.function([img], T.nnet.conv2d(img, filters, border_mode="half"), backend="emu"), \
        (np.ones((2, 2, 6, 5), "float32"),)


def test_every_compiled_program_passes_the_check(saved):
    for name, (build, args, _) in PROGRAMS.items():
        f = build()
        f(*args)
        program_check.check(f.program, name)
        program_check.check(Program.load(saved[name]), name)
    for k, (f, args) in enumerate(_more_kernels()):
        f(*args)
        program_check.check(f.program, f"program {k}")
        assert all(b.extent for kernel in f.program.kernels for b in kernel.bindings if b.kind == "ptr")


def test_the_c_types_agree_with_the_compiler():
    from theta.compiler.cprint import CTYPES
    assert program_check.C_TYPES == CTYPES


# -- loading: sizes, runtime scalars, call forms -------------------------------------------------------

def test_an_arena_the_device_cannot_allocate_is_a_size_error(saved, monkeypatch):
    from theta.runtime import emu
    f = theta.load(saved["step"], backend="emu")
    real = emu.EmuDevice.alloc

    def refuse(self, nbytes):
        if nbytes >= f.program.arena_bytes > 0:
            raise MemoryError(f"Unable to allocate {nbytes} bytes")
        return real(self, nbytes)
    monkeypatch.setattr(emu.EmuDevice, "alloc", refuse)
    with pytest.raises(SizeError, match="arena"):
        theta.load(saved["step"], backend="emu")


def test_a_runtime_scalar_outside_the_buffer_is_refused(saved, tmp_path):
    rows = np.arange(40, dtype="float32").reshape(10, 4)
    starts = {"in range": 2, "last rows": 8, "one row past the end": 9, "far past the end": 10 ** 6, "negative": -4}
    verdicts = _run_cases([_case(name, saved["minibatch"], "minibatch", [start]) for name, start in starts.items()],
                          tmp_path)   # before the fix, the far one killed the interpreter
    assert verdicts["in range"] == "RESULT " + json.dumps(["single", float(rows[2:4].sum()) * 0.5, rows.tolist(),
                                                          [0.25] * 4])
    assert verdicts["last rows"].startswith("RESULT"), verdicts["last rows"]
    for name in ("one row past the end", "far past the end", "negative"):
        assert verdicts[name].startswith("ERROR InputError") and "start0" in verdicts[name], verdicts[name]
    with pytest.raises(InputError, match="integer"):
        theta.load(saved["minibatch"], backend="emu")(1, scalars=[1.5])


def test_a_loaded_function_takes_the_call_forms_of_theta_function(tmp_path):
    x, y = T.fmatrix("x"), T.fscalar("scale")
    f = theta.function([x, theta.In(y, value=2.0)], (x * y).sum(), backend="emu")
    expected = f(X)
    assert f(x=X) == expected and f(X, scale=3.0) == f(X, 3.0)
    f.save(tmp_path / "f")
    g = theta.load(tmp_path / "f", backend="emu")
    assert g(X) == expected            # the default
    assert g(x=X) == expected          # by keyword
    assert g(X, scale=3.0) == f(X, 3.0)
    assert g(scale=3.0, x=X) == f(X, 3.0)
    with pytest.raises(InputError, match="unknown keyword argument 'z'"):
        g(X, z=1)
    with pytest.raises(InputError, match="twice"):
        g(X, x=X)
    with pytest.raises(InputError, match="takes 2 inputs"):
        g(X, 1.0, 2.0)
    h = theta.function([x, y], (x * y).sum(), backend="emu")
    h(X, 1.0)
    h.save(tmp_path / "h")
    with pytest.raises(InputError, match="missing input 1 'scale'"):
        theta.load(tmp_path / "h", backend="emu")(X)


def test_a_grid_taller_than_its_split_computes_the_same(tmp_path):
    """A split reduction's grid.y is the split compiled into its source; an edited, taller grid
    (within CUDA's limits and the work, so the check lets it pass: it segfaulted emu) must not run past the
    partials: the extra rows of blocks return before doing anything."""
    m = T.fmatrix("m")
    big = np.linspace(0, 1, 64 * 4096, dtype="float32").reshape(64, 4096)
    f = theta.function([m], m.sum(), backend="emu")   # one output over 262,144 terms: split
    want = f(big)
    f.save(tmp_path / "p")
    doc = json.loads((tmp_path / "p" / "manifest.json").read_text())
    split = [k for k in doc["kernels"] if len(k["grid"]) > 1 and k["grid"][1] > 1]
    assert split, "the reduction was expected to split across blocks"
    for k in split:
        k["grid"][1] = 2 ** 16 - 1   # CUDA's largest grid.y
    _reseal(tmp_path / "p", "manifest.json", json.dumps(doc).encode())
    np.save(tmp_path / "big.npy", big)
    code = ("import sys, numpy as np, theta\n"
            "try:\n"
            f"    out = theta.load({str(tmp_path / 'p')!r}, backend='emu')(np.load({str(tmp_path / 'big.npy')!r}))\n"
            f"    np.save({str(tmp_path / 'out.npy')!r}, out); print('RESULT')\n"
            "except theta.ArtifactError as e:\n"
            "    print('ERROR', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr[-2000:]
    if proc.stdout.startswith("RESULT"):
        np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want)
    else:
        assert "grid" in proc.stdout, proc.stdout
