"""Training interrupted by a real SIGINT (Ctrl-C) mid-run: clean exit 130, a loadable last
checkpoint, nothing half-written, and ``--resume`` continues from the saved epoch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from test_training import write_idx_dataset

from explain import load_model

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(scope="module")
def slow_idx_dir(tmp_path_factory):
    """A Fashion-MNIST look-alike big enough that one epoch at batch size 8 takes a moment."""
    return write_idx_dataset(tmp_path_factory.mktemp("idx_sigint"), 2500, 50, noise_max=255, squares=False)


def _command(data_dir, out, epochs):
    return [
        sys.executable,
        "-m",
        "training",
        "train",
        "--dataset",
        "fashion_mnist",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--architecture",
        "mlp",
        "--patience",
        "0",
    ]


def test_sigint_mid_epoch_then_resume(slow_idx_dir, tmp_path, capsys):
    out = tmp_path / "m.keras"
    folder = tmp_path / ".m.checkpoints"
    state_path = folder / "state.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    # The child inherits an ignored SIGINT (an exec keeps SIG_IGN, and Python then installs no
    # KeyboardInterrupt handler). Something in a long pytest process can leave the OS disposition at
    # SIG_IGN while Python's table still says default_int_handler; reinstalling Python's handler
    # gives the child what a terminal gives a user: SIGINT delivered.
    signal.signal(signal.SIGINT, signal.getsignal(signal.SIGINT))
    proc = subprocess.Popen(
        _command(slow_idx_dir, out, 50),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if json.loads(state_path.read_text())["epoch"] >= 1:
                    break
            except (OSError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.3)  # into the next epoch
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    assert "--resume" in stderr and "interrupted" in stderr
    assert not out.exists()  # the final model is never half-written
    assert not list(tmp_path.glob("m.*")) and not list(tmp_path.glob("m_*"))
    state = json.loads(state_path.read_text())
    saved = state["epoch"]
    assert saved >= 1 and len(state["history"]["loss"]) == saved
    assert load_model(folder / "last.keras")  # the last good checkpoint loads
    assert {p.name for p in folder.iterdir()} <= {"last.keras", "best.keras", "state.json"}  # no temp files

    # --resume in this process (what it reads is on disk; a second process would cost 6 s of imports)
    from training.__main__ import main

    assert main([*_command(slow_idx_dir, out, saved + 1)[3:], "--resume"]) == 0, capsys.readouterr().err
    card = json.loads(out.with_suffix(".json").read_text())
    for key, values in state["history"].items():
        assert len(card["history"][key]) == saved + 1
        assert card["history"][key][:saved] == values
    assert load_model(out)
