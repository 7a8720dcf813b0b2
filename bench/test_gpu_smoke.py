"""bench/gpu.py --smoke runs end to end on CPU (tiny Llama) and writes a well-formed result.

Run: OMP_NUM_THREADS=1 PYTHONPATH=native-worker python -m pytest bench -q   (no wall-clock assertions)
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_gpu_script_smoke(tmp_path):
    out = tmp_path / "gpu_smoke.json"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(HERE.parent / "native-worker"))
    proc = subprocess.run(
        [
            sys.executable,
            str(HERE / "gpu.py"),
            "--smoke",
            "--ranks",
            "2",
            "--batches",
            "2,3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["smoke"] is True and result["device"] == "cpu"
    assert [(r["rank"], r["batch"]) for r in result["rows"]] == [(2, 2), (2, 3)]
    for row in result["rows"]:
        assert "error" not in row
        assert row["tokens_per_step"] == row["batch"] * row["seq"]
        for key in ("riemannion_ms", "adamw_ms", "overhead_pct", "riemannion_tokens_per_s"):
            assert math.isfinite(row[key])
        assert row["riemannion_ms"] > 0 and row["adamw_ms"] > 0
        assert math.isclose(row["overhead_pct"], 100 * (row["riemannion_ms"] / row["adamw_ms"] - 1))
    assert result["max_overhead_pct_batch_ge_16"] is None  # no batch >= 16 in this smoke run


def test_gpu_script_refuses_cuda_without_gpu(tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    env = dict(os.environ, PYTHONPATH=str(HERE.parent / "native-worker"))
    proc = subprocess.run(
        [sys.executable, str(HERE / "gpu.py"), "--out", str(tmp_path / "x.json")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0 and "no CUDA device" in proc.stderr
    assert not (tmp_path / "x.json").exists()
