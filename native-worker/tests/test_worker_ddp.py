"""The worker under torchrun (DDP, gloo on CPU): riemannlora/worker/ddp.py.

`train.batch_size` is the global micro-batch, so ONE config trained by 1 or 2 processes must give the same
adapter (same data, same global-batch gradient, same Riemannian step on every rank) up to float rounding;
and a checkpoint written under one world size must resume under the other to the same final adapter.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from worker_fixtures import NATIVE, read_events, synthetic_config, write_json

from riemannlora.errors import WorkerError
from riemannlora.training.sampler import EpochSampler
from riemannlora.worker import ddp
from riemannlora.worker.distributed import DistContext
from riemannlora.worker.run import run_command

RTOL = 1e-5


def _config(optimizer: str, init: str, lr: float) -> dict:
    return synthetic_config(
        method={"init": init, "optimizer": optimizer, "lr": lr},
        train={"steps": 6, "batch_size": 8, "eval_interval": 0, "log_interval": 1, "threads": 1},
        output={"checkpoint_interval": 3, "export_adapter": True},
    )


def _single(config_path: Path, run_dir: Path, resume: bool = False) -> None:
    out = io.StringIO()
    code = run_command(str(config_path), str(run_dir), resume=resume, stdout=out)
    assert code == 0, out.getvalue()[-2000:]


def _torchrun(config_path: Path, run_dir: Path, resume: bool = False, nproc: int = 2) -> list[dict]:
    env = {
        **os.environ,
        "PYTHONPATH": str(NATIVE),
        "OMP_NUM_THREADS": "1",
        "RIEMANNLORA_DDP_CHECK_INTERVAL": "1",  # exercise the drift check every step: it must stay quiet
    }
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    cmd += ["-m", "riemannlora.worker", "run", "--config", str(config_path), "--run-dir", str(run_dir)]
    proc = subprocess.run(
        cmd + (["--resume"] if resume else []), env=env, capture_output=True, text=True, timeout=120
    )
    log = (run_dir / "worker.log").read_text() if (run_dir / "worker.log").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}\n{log[-3000:]}"
    # Only rank 0 speaks the protocol: every stdout line is one event, each event once.
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [e["type"] for e in events].count("finished") == 1
    return events


def _adapter(run_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


def _assert_same_adapter(a: Path, b: Path) -> None:
    """Same delta weight ``lora_B @ lora_A`` per module (the PEFT factors of a manifold point are only
    defined up to an invertible r'×r' gauge, which amplifies rounding; the function is what must agree)."""
    ta, tb = _adapter(a), _adapter(b)
    assert ta.keys() == tb.keys() and ta
    modules = sorted({k.rsplit(".lora_", 1)[0] for k in ta if ".lora_A." in k})
    assert modules
    for m in modules:
        da = ta[f"{m}.lora_B.weight"].double() @ ta[f"{m}.lora_A.weight"].double()
        db = tb[f"{m}.lora_B.weight"].double() @ tb[f"{m}.lora_A.weight"].double()
        rel = float((da - db).norm() / max(float(da.norm()), 1e-30))
        assert rel <= RTOL, f"{m}: relative difference {rel:.2e} of the delta between {a.name} and {b.name}"


def _drop_after(run_dir: Path, step: int) -> Path:
    """Make a finished run look stopped at `step`: later checkpoints and the adapter removed, status.json
    `stopped` (a completed run cannot be resumed)."""
    for ckpt in (run_dir / "checkpoints").iterdir():
        if int(ckpt.name.split("-")[-1].split(".")[0]) > step:
            shutil.rmtree(ckpt) if ckpt.is_dir() else ckpt.unlink()
    shutil.rmtree(run_dir / "adapter")
    status = json.loads((run_dir / "status.json").read_text())
    (run_dir / "status.json").write_text(json.dumps({**status, "state": "stopped", "step": step}))
    return run_dir


@pytest.mark.parametrize(
    ("optimizer", "init", "lr"),
    [("riemannion", "loi", 0.05), ("adamw", "lora", 0.01)],
    ids=["riemannion-loi", "adamw"],
)
def test_two_processes_match_one_process(tmp_path, optimizer, init, lr):
    cfg = write_json(tmp_path / "config.json", _config(optimizer, init, lr))
    _single(cfg, tmp_path / "one")
    events = _torchrun(cfg, tmp_path / "two")
    started = next(e for e in events if e["type"] == "started")
    assert started["world_size"] == 2 and started["global_batch"] == 8
    assert not [e for e in events if e["type"] == "log" and "drifted" in e["message"]]
    _assert_same_adapter(tmp_path / "one", tmp_path / "two")
    # The reported losses are the global-batch ones, as in one process.
    loss = {
        n: [e["loss"] for e in read_events(tmp_path / n) if e["type"] == "metric" and e["split"] == "train"]
        for n in ("one", "two")
    }
    assert loss["one"] == pytest.approx(loss["two"], rel=1e-5)
    if optimizer == "riemannion":
        # A checkpoint resumes under the other world size, to the same final adapter.
        one_then_two = _drop_after(shutil.copytree(tmp_path / "one", tmp_path / "one-then-two"), 3)
        two_then_one = _drop_after(shutil.copytree(tmp_path / "two", tmp_path / "two-then-one"), 3)
        resumed = _torchrun(cfg, one_then_two, resume=True)
        assert next(e for e in resumed if e["type"] == "started")["start_step"] == 3
        _single(cfg, two_then_one, resume=True)
        _assert_same_adapter(tmp_path / "one", one_then_two)
        _assert_same_adapter(tmp_path / "one", two_then_one)


def test_factor_drift_is_detected_and_repaired(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(NATIVE), "OMP_NUM_THREADS": "1"}
    script = Path(__file__).with_name("_ddp_drift_script.py")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", str(script)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "rank 0 ok" in proc.stdout and "rank 1 ok" in proc.stdout


def test_sharded_sampler_splits_the_global_batch():
    ranks = [ddp.ShardedSampler(EpochSampler(10, 4), DistContext(rank=r, world_size=2)) for r in range(2)]
    single = EpochSampler(10, 4)
    for _ in range(7):  # crosses epoch boundaries
        assert ranks[0].next(4) + ranks[1].next(4) == single.next(4)
    assert ranks[1].state_dict() == single.state_dict()  # global state: resumable under any world size
    with pytest.raises(ValueError, match="does not split"):
        ranks[0].next(3)


def test_batch_size_must_divide_by_world_size():
    cfg = synthetic_config(train={"batch_size": 7, "device": "cpu"})
    with pytest.raises(WorkerError, match="must divide by the world size 2") as info:
        ddp.init_distributed(DistContext(rank=0, world_size=2), cfg)
    assert info.value.field == "/train/batch_size" and "8" in info.value.hint


def test_dist_context_from_env(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = DistContext.from_env()
    assert (ctx.rank, ctx.world_size, ctx.local_rank, ctx.is_main) == (3, 4, 1, False)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert DistContext.from_env() == DistContext()


def _ending(joined: bool) -> subprocess.CompletedProcess:
    code = (
        "import sys\n"
        "from riemannlora.worker.distributed import leave_process, mark_joined\n"
        + ("mark_joined()\n" if joined else "")
        + "import atexit; atexit.register(lambda: print('finalized', file=sys.stderr))\n"
        "sys.stdout.write('last event without a newline')\n"
        "leave_process(3)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(NATIVE)}
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def test_a_rank_that_joined_a_group_ends_without_finalization_and_loses_no_output():
    # A rank leaves with os._exit (gloo threads can abort a finalizing interpreter: distributed.py says why),
    # but only after its buffered stdout is out and with the run's exit code.
    joined = _ending(joined=True)
    assert joined.returncode == 3
    assert joined.stdout == "last event without a newline"
    assert "finalized" not in joined.stderr
    # Everything else ends normally (atexit handlers run).
    plain = _ending(joined=False)
    assert plain.returncode == 3 and plain.stdout == "last event without a newline"
    assert "finalized" in plain.stderr
