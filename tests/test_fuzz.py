"""The fuzzer's fixed CI budget (tests/fuzz.py): random groups of graphs from every kernel
family, on emu in checking mode against the reference backend on the unrewritten graph, values
and gradients. Derandomized: the same examples every run, so the kernel cache makes reruns
fast. ``python -m tests.fuzz --seed S --minutes M`` runs longer and writes reproducers under
tests/regressions/. THETA_FUZZ_EXAMPLES scales every theme's example count.

The integer theme feeds every integer dtype's edge values (MIN // -1 traps on x86), so it runs
in a child process: a kernel that kills its process fails the test instead of pytest."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import theta
from fuzz import SETTINGS, fuzz_once

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

SCALE = float(os.environ.get("THETA_FUZZ_EXAMPLES", "1"))
# examples per theme (each compiles one emu function for a group of up to 3 programs)
BUDGET = {"elemwise": 6, "special": 8, "integer": 8, "reduce": 6, "dot": 6, "softmax": 6, "index": 8,
          "concat": 5, "scan": 4, "conv": 4, "random": 5, "mixed": 6}
IN_A_CHILD = {"integer"}     # themes whose inputs could crash a kernel's process


def run_theme(theme: str) -> None:
    @settings(max_examples=max(1, int(BUDGET[theme] * SCALE)), derandomize=True, **SETTINGS)
    @given(st.data())
    def run(data):
        fuzz_once(data, theme)
    run()


@pytest.mark.parametrize("theme", sorted(BUDGET))
def test_fuzz(theme):
    if theme not in IN_A_CHILD:
        run_theme(theme)
        return
    here = str(Path(__file__).resolve().parent)
    code = (f"import sys; sys.path.insert(0, {here!r}); import theta; theta.config.emu_check = "
            f"{bool(theta.config.emu_check)}; from test_fuzz import run_theme; run_theme({theme!r})")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode < 0:
        pytest.fail(f"the {theme} theme killed its process with signal {-proc.returncode}\n{proc.stderr[-4000:]}")
    assert proc.returncode == 0, f"the {theme} theme failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-6000:]}"
