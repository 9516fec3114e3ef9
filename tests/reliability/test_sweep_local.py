"""``make sweep-local``: a sweep whose every trial fails exits non-zero naming the first failure's
error, and SEEDS=N reaches every trial. The trials are a tiny stand-in program (the sweep tool
only runs a command per trial and reads its metrics.json), so these run in seconds."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import readme_commands as rc  # noqa: E402
import sweep as sweep_tool  # noqa: E402

# hidden=<n> < 0 fails like a bad key would; otherwise writes metrics.json with its argv
TRIAL = """
import json, sys
from pathlib import Path
args = dict(a.split("=", 1) for a in sys.argv[1:])
if int(args["model.hidden"]) < 0:
    print("building the model...")
    print("ValueError: model.hidden=" + args["model.hidden"] + " must be positive")
    sys.exit(1)
out = Path(args["hydra.run.dir"])
(out / "metrics.json").write_text(json.dumps({"test/mse": 1.0, "argv": sys.argv[1:]}))
"""


def sweep_spec(tmp_path: Path, values: list[int]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    program = tmp_path / "trial.py"
    program.write_text(TRIAL)
    spec = {
        "program": str(program),
        "method": "grid",
        "metric": {"name": "test/mse", "goal": "minimize"},
        "parameters": {"model.hidden": {"values": values}},
        "command": ["${env}", "python", "${program}", "${args_no_hyphens}"],
    }
    path = tmp_path / "toy" / "sweeps" / "grid.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(spec))
    return path


def sweep_local(spec: Path, out: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "tools/sweep.py", "local", str(spec), "--out", str(out), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)


def test_a_sweep_whose_every_trial_fails_exits_non_zero_with_the_first_error(tmp_path):
    res = sweep_local(sweep_spec(tmp_path, [-1, -2]), tmp_path / "out")
    assert res.returncode != 0
    assert "all 2 trial(s)" in res.stderr and "failed (exit 1" in res.stderr
    assert "ValueError: model.hidden=-1 must be positive" in res.stderr, res.stderr
    assert "hidden=-2" not in res.stderr  # the first failure, not the last
    assert (tmp_path / "out" / "results.csv").is_file()  # the table is still written


def test_a_sweep_with_one_good_trial_exits_zero_and_counts_the_failures(tmp_path):
    res = sweep_local(sweep_spec(tmp_path, [-1, 4]), tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert "1 of 2 trial(s) failed" in res.stdout


def test_seeds_reach_every_trial(tmp_path):
    res = sweep_local(sweep_spec(tmp_path, [4, 8]), tmp_path / "out", "--seeds", "2")
    assert res.returncode == 0, res.stderr
    for trial in ("trial_000", "trial_001"):
        argv = json.loads((tmp_path / "out" / trial / "metrics.json").read_text())["argv"]
        assert "++seeds=2" in argv
    bad = sweep_local(sweep_spec(tmp_path / "b", [4]), tmp_path / "b" / "out", "--seeds", "0")
    assert bad.returncode != 0 and "SEEDS='0' must be a whole number >= 1" in bad.stderr


def test_make_sweep_local_passes_seeds_on(tmp_path):
    (argv,) = rc.recorded_make(
        ["sweep-local", "SWEEP=x.yaml", "SEEDS=3"], {}, rc.Context(tmp_path, {})
    )
    assert argv[argv.index("--seeds") + 1] == "3"


@pytest.mark.parametrize(
    "log, line",
    [
        (  # Hydra's unknown-key error: its paragraph, without the HYDRA_FULL_ERROR hint
            "Could not override 'trainer.max_stepz'.\nTo append to your config use "
            "+trainer.max_stepz=3\nKey 'max_stepz' is not in struct\n\n"
            "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n",
            "Could not override 'trainer.max_stepz'.",
        ),
        (  # an exception in the job: the traceback's last line
            "Error executing job with overrides: []\nTraceback (most recent call last):\n"
            '  File "x.py", line 1\nValueError: data.batch_size=0 must be >= 1\n\n'
            "Set the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n",
            "ValueError: data.batch_size=0 must be >= 1",
        ),
        ("", "(empty log)"),
    ],
)
def test_failure_summary_names_the_error_line(tmp_path, log, line):
    (tmp_path / "trial.log").write_text(log)
    summary = sweep_tool.failure_summary(tmp_path / "trial.log")
    assert summary.startswith(line) and "HYDRA_FULL_ERROR" not in summary
