"""One error-to-exit-code adapter: a missing optional dependency exits with 6 in every command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # as if the [train] extra were not installed
from click.testing import CliRunner
from facegate.cli import main
out = {}
for name, args in json.loads(sys.argv[1]).items():
    result = CliRunner().invoke(main, args)
    out[name] = [result.exit_code, result.output]
print(json.dumps(out))
"""


def test_torch_missing_exits_with_6_in_every_command(tmp_path):
    checkpoint = tmp_path / "best.pt"
    checkpoint.write_bytes(b"x")
    (tmp_path / "faces").mkdir()
    commands = {
        "train omniglot": ["train", "omniglot", "--out", str(tmp_path / "run"), "--data", str(tmp_path)],
        "evaluate oneshot": [
            "evaluate",
            "oneshot",
            str(checkpoint),
            "--out",
            str(tmp_path / "ev"),
            "--data",
            str(tmp_path),
        ],
        "train faces": ["train", "faces", str(tmp_path / "faces")],
    }
    run = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH, json.dumps(commands)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    results = json.loads(run.stdout)
    for name, (code, output) in results.items():
        assert code == 6, (name, output)
        assert "torch is not installed" in output and "pip install 'facegate[train]'" in output, (name, output)


@pytest.mark.parametrize(("module", "extra"), [("torch", "train"), ("fastapi", "serve"), ("h5py", "train")])
def test_a_missing_extra_names_the_extra(module, extra):
    from facegate.cli.output import missing_extra

    error = missing_extra(ModuleNotFoundError(f"No module named '{module}'", name=module))
    assert error is not None and error.exit_code == 6 and f"facegate[{extra}]" in str(error)
    assert missing_extra(ModuleNotFoundError("No module named 'facegate.nothing'", name="facegate.nothing")) is None
