"""The main job: `theta train` reaches under 5% test error with the MLP on digits, quickly."""
import subprocess
import sys

import theta
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
    out = subprocess.run([sys.executable, "-m", "theta", "train", "--model", "logreg", "--epochs", "3", "--quiet"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "logreg" in out.stdout and "test err" in out.stdout


def test_cli_bad_argument_is_a_clean_error():
    out = subprocess.run([sys.executable, "-m", "theta", "train", "--model", "nope"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_floatx_restored():
    assert theta.config.floatX == "float32"


def test_cli_rejects_nonsense_numbers():
    for args in (["--epochs", "0"], ["--batch-size", "-3"], ["--lr", "0"]):
        out = subprocess.run([sys.executable, "-m", "theta", "train", *args], capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "must be" in out.stderr
