import contextlib
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (real CIFAR-10 and NAS-Bench-201 ground truth); tests that need it skip without it."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture
def engine_env(tmp_path) -> dict:
    """Environment for running the engines and stages as subprocesses: this venv first on PATH, no analytics."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["DVC_NO_ANALYTICS"] = "1"
    env["DVC_SITE_CACHE_DIR"] = str(tmp_path / "dvc-site-cache")
    env["NASFLOW_LOCK_DIR"] = str(tmp_path / "locks")
    return env


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """With `-q`, a slow end-to-end test would be minutes of silence: name each one as it starts."""
    if item.get_closest_marker("slow") is None:
        return
    reporter = item.config.pluginmanager.get_plugin("terminalreporter")
    capture = item.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and reporter.verbosity <= 0:
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():  # to the terminal now
            reporter.write_line("")
            reporter.write_line(f"[slow end-to-end test] {item.nodeid} ...")
