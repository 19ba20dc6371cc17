"""`import splat` chooses libgomp's wait policy before torch loads it: a short
spin (see splat/__init__.py), unless the user set either variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CODE = "import os, splat, torch; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"


def _settings_after_import(**preset: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    out = subprocess.run([sys.executable, "-c", CODE], env={**env, **preset}, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_default_is_a_short_spin():
    assert _settings_after_import() == ["ACTIVE", "1000"]


@pytest.mark.parametrize(
    "preset, expected",
    [
        ({"OMP_WAIT_POLICY": "PASSIVE"}, ["PASSIVE", "None"]),
        ({"GOMP_SPINCOUNT": "300000"}, ["None", "300000"]),
        ({"OMP_WAIT_POLICY": "ACTIVE", "GOMP_SPINCOUNT": "50"}, ["ACTIVE", "50"]),
    ],
)
def test_the_users_setting_wins(preset, expected):
    assert _settings_after_import(**preset) == expected
