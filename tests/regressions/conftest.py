"""The fuzzer's reproducers (see README.md) import ``fuzz`` from tests/ and run in emu's
checking mode, as the fuzzer did when it found them."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


@pytest.fixture(autouse=True)
def _fuzz_check_mode(emu_check):
    return emu_check
