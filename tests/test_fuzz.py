"""The fuzzer's fixed CI budget (tests/fuzz.py): random groups of graphs from every kernel
family, on emu in checking mode against the reference backend on the unrewritten graph, values
and gradients. Derandomized: the same examples every run, so the kernel cache makes reruns
fast. ``python -m tests.fuzz --seed S --minutes M`` runs longer and writes reproducers under
tests/regressions/. THETA_FUZZ_EXAMPLES scales every theme's example count."""
import os

import pytest
from hypothesis import given, settings, strategies as st

from fuzz import SETTINGS, fuzz_once

pytestmark = pytest.mark.usefixtures("emu_check")   # emu's checking mode (tests/conftest.py)

SCALE = float(os.environ.get("THETA_FUZZ_EXAMPLES", "1"))
# examples per theme (each compiles one emu function for a group of up to 3 programs)
BUDGET = {"elemwise": 6, "special": 8, "integer": 8, "reduce": 6, "dot": 6, "softmax": 6, "index": 8,
          "concat": 5, "scan": 4, "conv": 4, "random": 5, "mixed": 6}


@pytest.mark.parametrize("theme", sorted(BUDGET))
def test_fuzz(theme):
    @settings(max_examples=max(1, int(BUDGET[theme] * SCALE)), derandomize=True, **SETTINGS)
    @given(st.data())
    def run(data):
        fuzz_once(data, theme)
    run()
