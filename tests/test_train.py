"""The main job: `theta train` reaches under 5% test error with the MLP on digits, quickly."""
import subprocess
import sys

import pytest

import theta
from theta.models.classifiers import MODELS
from theta.models.train import TrainConfig, train


def test_mlp_on_digits_under_5_percent():
    # (the issue also asks for under a minute on 2 cores: it takes a few seconds, measured and
    # reported in result.seconds, but tests assert behaviour, not timing)
    result = train(TrainConfig(model="mlp", epochs=40), progress=False)
    assert result.test_error < 0.05, result
    assert result.history[-1]["cost"] < result.history[0]["cost"]


def test_logreg_learns():
    result = train(TrainConfig(model="logreg", epochs=10), progress=False)
    assert result.test_error < 0.10, result


def test_cli_train_runs():
    out = subprocess.run([sys.executable, "-m", "theta", "train", "--model", "logreg", "--epochs", "3", "--quiet",
                          "--no-plots"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "logreg" in out.stdout and "test err" in out.stdout


def test_cli_bad_argument_is_a_clean_error():
    for args in (["--model", "nope"], ["nope"]):
        out = subprocess.run([sys.executable, "-m", "theta", "train", *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "unknown model 'nope'" in out.stderr and "Traceback" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "theta", "train", "--optimizer", "adamw"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr


@pytest.mark.parametrize("name", [n for n in MODELS if n != "mlp"])   # mlp: the main job's test above
def test_every_model_reaches_its_quality_bar(name):
    """The bar stated in the README (`theta list`), with the model's default options (LeNet
    with fewer epochs, to stay fast)."""
    result = train(TrainConfig(model=name, epochs=10 if name == "lenet" else None), progress=False)
    assert result.test_error < MODELS[name].max_test_error, result
    assert result.history[-1]["cost"] < result.history[0]["cost"]


def test_a_diverging_run_stops_with_a_clear_message():
    out = subprocess.run([sys.executable, "-m", "theta", "train", "mlp", "--lr", "inf", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "training cost became nan" in out.stderr and "lower --lr" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_list_and_version():
    out = subprocess.run([sys.executable, "-m", "theta", "list"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and all(name in out.stdout for name in MODELS)
    out = subprocess.run([sys.executable, "-m", "theta", "--version"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("theta ")


def test_floatx_restored():
    assert theta.config.floatX == "float32"


def test_cli_rejects_nonsense_numbers():
    for args in (["--epochs", "0"], ["--batch-size", "-3"], ["--lr", "0"]):
        out = subprocess.run([sys.executable, "-m", "theta", "train", *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "must be" in out.stderr


@pytest.mark.parametrize("name", ["dae", "rbm"])
def test_unsupervised_models_reach_their_bars(name):
    from theta.models.zoo import ZOO
    outcome = ZOO[name].run({})
    assert outcome.passed, outcome.figures
    history = outcome.result["history"]
    key = "reconstruction_error" if name == "dae" else "monitor"
    assert history[-1][key] != history[0][key]


@pytest.mark.slow
def test_lstm_solves_the_adding_problem_where_a_plain_rnn_fails():
    from theta.models.recurrent import train_adding
    lstm = train_adding("lstm", length=20, steps=300)
    rnn = train_adding("rnn", length=20, steps=300)
    assert lstm["test_mse"] < 0.05, lstm["history"]            # the mean predictor's is 1/6
    assert rnn["test_mse"] > 0.1, rnn["history"]


def test_rbm_cd_k_runs_its_gibbs_chain_as_a_scan_with_fresh_samples_per_step():
    import numpy as np
    from theta.models.data import load_digits
    from theta.models.rbm import train_rbm
    r = train_rbm(load_digits().train.x[:200], epochs=2, k=3, persistent=False)
    costs = [h["monitor"] for h in r["history"]]
    assert np.isfinite(costs).all() and costs[1] < costs[0]     # reconstruction cross-entropy falls


def test_random_search_samples_each_hyperparameter_and_reports_the_best():
    from theta.models.search import random_search
    trials = random_search("logreg", trials=3, epochs=3)
    assert len({t.params["learning_rate"] for t in trials}) == 3
    assert [t.valid_error for t in trials] == sorted(t.valid_error for t in trials)
    assert all(0.013 <= t.params["learning_rate"] <= 1.3 for t in trials)
    out = subprocess.run([sys.executable, "-m", "theta", "search", "logreg", "--trials", "2", "--epochs", "2"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "best of 2 trials for logreg" in out.stdout, out.stderr


def _checkpoint_state(directory) -> dict:
    import numpy as np
    with np.load(directory / "checkpoint.npz") as z:
        return {k: z[k] for k in z.files if k != "meta"}


def _checkpoint_epoch(directory) -> int:
    import json
    import numpy as np
    with np.load(directory / "checkpoint.npz") as z:
        return json.loads(z["meta"].tobytes().decode())["trainer"]["epoch"]


def test_a_run_killed_midway_and_resumed_ends_bitwise_equal(tmp_path, killed_after_first_checkpoint):
    """SIGKILL at a random point after the first checkpoint (and before the second: see the
    fixture), then --resume: the parameters, optimizer state, random-stream state and data order
    end as in the uninterrupted run."""
    args = [sys.executable, "-m", "theta", "train", "relu-dropout", "--epochs", "6", "--optimizer", "adam",
            "--lr", "0.002", "--quiet"]
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert subprocess.run(args + ["--out", str(whole)], capture_output=True, timeout=300).returncode == 0
    assert _checkpoint_epoch(whole) == 6
    killed = killed_after_first_checkpoint(args[3:] + ["--out", str(cut)], cut)
    assert killed["epoch"] == 1 and len(killed["history"]) == 1     # killed mid-run, 5 epochs before the end
    again = subprocess.run(args + ["--out", str(cut)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 2 and "--resume" in again.stderr          # never overwritten silently
    resumed = subprocess.run(args + ["--out", str(cut), "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert _checkpoint_epoch(cut) == 6
    a, b = _checkpoint_state(whole), _checkpoint_state(cut)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].tobytes() == b[k].tobytes(), k
    other = subprocess.run(args[:4] + ["maxout"] + args[5:] + ["--out", str(cut), "--resume"],
                           capture_output=True, text=True, timeout=300)
    assert other.returncode == 2 and "another run" in other.stderr


def test_train_draws_its_learning_curve_and_filters(tmp_path):
    out = subprocess.run([sys.executable, "-m", "theta", "train", "logreg", "rbm", "--epochs", "2", "--quiet",
                          "--plots", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("logreg-curve.png", "logreg-filters.png", "rbm-curve.png", "rbm-filters.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert str(tmp_path / name) in out.stdout       # it says where they are
