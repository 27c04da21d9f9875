"""The CUDA paths: device choice, training, prediction, resume and DDP over NCCL on a GPU.

Skipped (with the reason) on a machine without CUDA, which includes CI, and unless
``MMOE_TEST_CUDA=1`` (the rest of the suite hides GPUs, see conftest.py); on a GPU machine:
``MMOE_TEST_CUDA=1 pytest tests/test_cuda.py``. A single GPU allows a data-parallel world of one
process only (NCCL refuses two ranks on one device), so the DDP test runs the trainer's DDP path
over NCCL in a world of one and checks it trains like the plain path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import mmoe
from mmoe.config import parse_config
from mmoe.data.sources import load_splits
from mmoe.training.trainer import Trainer
from tests.test_models import synthetic_config

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="torch sees no CUDA device (the suite hides GPUs unless MMOE_TEST_CUDA=1)",
)
ROOT = Path(__file__).resolve().parents[1]


def test_auto_trains_on_the_gpu_and_the_run_loads_on_the_cpu(tmp_path):
    config = synthetic_config("mmoe", epochs=2, device="auto")
    run = mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    assert run.metrics["device"] == "cuda:0"
    # A trained model predicts on the CPU, and the run directory holds CPU tensors.
    assert all(p.device.type == "cpu" for p in run.model.model.parameters())
    test = load_splits(parse_config(config).data).test
    loaded = mmoe.load(tmp_path / "run")
    np.testing.assert_allclose(
        loaded.predict(test).to_numpy(), run.predict(test).to_numpy(), rtol=1e-5, atol=1e-6
    )
    gates = loaded.gate_weights(test)
    np.testing.assert_allclose(gates.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["shared_bottom", "omoe", "mmoe"])
def test_gpu_training_follows_the_cpu_one(name):
    """Same seed, same batches: the GPU's kernels differ in rounding only."""
    cpu = mmoe.train(synthetic_config(name, epochs=1, device="cpu"), progress=False)
    gpu = mmoe.train(synthetic_config(name, epochs=1, device="cuda"), progress=False)
    a, b = cpu.model.model.state_dict(), gpu.model.model.state_dict()
    for key in a:
        torch.testing.assert_close(b[key].cpu(), a[key], rtol=1e-3, atol=1e-4, msg=key)


def test_crash_then_resume_on_the_gpu(tmp_path, monkeypatch):
    """A run stopped between two steps and resumed ends where the uninterrupted one does."""
    from tests.test_resume import Crash, resumable_config

    config = resumable_config(device="cuda")
    whole = tmp_path / "whole"
    mmoe.train(config, out_dir=whole, progress=False)
    original = Trainer.train_step

    def dying_step(self, part):
        if self.state.step == 31:
            raise Crash
        original(self, part)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(Crash):
        mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    monkeypatch.setattr(Trainer, "train_step", original)
    mmoe.train(config, out_dir=tmp_path / "run", progress=False, resume=True)
    a = load_file(str(whole / "model.safetensors"))
    b = load_file(str(tmp_path / "run" / "model.safetensors"))
    for key in a:
        # Bit-identical where the GPU's kernels are deterministic; the embedding backward's
        # scatter-add uses atomics on CUDA, so the order of additions may differ.
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6, msg=key)


def test_ddp_over_nccl_in_a_world_of_one(tmp_path):
    """The trainer's DDP path on NCCL (device_ids, no buffer broadcast) trains like the plain."""
    script = tmp_path / "one.py"
    script.write_text(
        "import json, sys, torch, torch.distributed as dist\n"
        "import mmoe\n"
        "from mmoe.training import distributed as d\n"
        "class World(d.DistContext):\n"
        "    enabled = property(lambda self: True)  # DDP even in a world of one\n"
        "d.DistContext = World\n"
        "import mmoe.training.trainer as t\n"
        "t.DistContext = World\n"
        "from tests.test_models import synthetic_config\n"
        "device = torch.device('cuda', 0)\n"
        "torch.cuda.set_device(device)\n"
        "dist.init_process_group('nccl')\n"
        "ctx = World()\n"
        "assert d.any_rank(ctx, True, device) and not d.any_rank(ctx, False, device)\n"
        "assert d.broadcast_object(ctx, {'a': 1}) == {'a': 1}\n"
        "run = mmoe.train(synthetic_config('mmoe', epochs=1, device='cuda'), progress=False)\n"
        "kind = type(run.model.model).__name__\n"
        "state = {k: v.cpu().tolist() for k, v in run.model.model.state_dict().items()}\n"
        "json.dump({'kind': kind, 'state': state}, open(sys.argv[1], 'w'))\n"
    )
    out = tmp_path / "state.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=1", str(script), str(out)]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), *sys.path])}
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    ddp = json.loads(out.read_text())
    plain = mmoe.train(synthetic_config("mmoe", epochs=1, device="cuda"), progress=False)
    for key, value in plain.model.model.state_dict().items():
        torch.testing.assert_close(torch.tensor(ddp["state"][key]), value.cpu(), msg=key)


def test_torchrun_cli_on_the_gpu(tmp_path):
    config = tmp_path / "gpu.yaml"
    config.write_text(yaml.safe_dump(synthetic_config("mmoe", epochs=1, device="cuda")))
    command = [sys.executable, "-m", "mmoe", "train", str(config), "--out",
               str(tmp_path / "run"), "--nproc", "1", "--json"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["device"] == "cuda:0"
    assert (
        mmoe.load(tmp_path / "run")
        .predict(load_splits(parse_config(yaml.safe_load(config.read_text())).data).test)
        .notna()
        .all()
        .all()
    )


def test_more_processes_than_gpus_is_one_line(tmp_path):
    config = tmp_path / "gpu.yaml"
    config.write_text(yaml.safe_dump(synthetic_config("mmoe", epochs=1, device="auto")))
    n = torch.cuda.device_count() + 1
    command = [sys.executable, "-m", "mmoe", "train", str(config), "--out",
               str(tmp_path / "run"), "--nproc", str(n)]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"--nproc {n - 1}" in done.stderr and "training.device: cpu" in done.stderr
