"""Data parallelism with real processes: 2 CPU ranks under torchrun (gloo) equal 1 process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import mmoe
from mmoe.data.batch import Batch
from mmoe.data.loaders import InMemorySource
from tests.test_models import synthetic_config

ROOT = Path(__file__).resolve().parents[1]


def ddp_config(**training) -> dict:
    config = synthetic_config("mmoe", epochs=2, batch_size=64, patience=None, **training)
    config["data"].update(num_train=1001)  # 16 global batches an epoch, the last 41 rows: 21 + 20
    config["training"]["restore_best"] = False  # compare the weights after the last step
    return config


def test_two_processes_equal_one_at_the_same_global_batch(tmp_path):
    config = tmp_path / "ddp.yaml"
    config.write_text(yaml.safe_dump(ddp_config()))
    single = mmoe.train(config, out_dir=tmp_path / "single", progress=False)

    command = [sys.executable, "-m", "mmoe", "train", str(config), "--out",
               str(tmp_path / "ddp"), "--nproc", "2", "--json"]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    reported = json.loads(done.stdout)  # rank 0 alone prints, and only JSON
    assert reported["world_size"] == 2 and reported["steps"] == single.metrics["steps"] == 32

    a = load_file(str(tmp_path / "single/model.safetensors"))
    b = load_file(str(tmp_path / "ddp/model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)

    # The run directory written under DDP is an ordinary one: it loads and predicts the same.
    trained = mmoe.load(tmp_path / "ddp")
    assert trained.preprocessor.to_dict() == single.model.preprocessor.to_dict()
    from mmoe.data.sources import load_splits

    test = load_splits(single.model.config.data).test
    np.testing.assert_allclose(
        trained.predict(test).to_numpy(), single.predict(test).to_numpy(), rtol=1e-4, atol=1e-5
    )
    history = (tmp_path / "ddp/metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in history] == [16, 32]  # rank 0 alone logs


def test_ranks_share_every_global_batch_disjointly():
    n = 103
    split = Batch(
        torch.zeros(n, 0, dtype=torch.long),
        torch.arange(n, dtype=torch.float32).unsqueeze(1),
        torch.zeros(n, 1),
        torch.rand(n, 1, generator=torch.Generator().manual_seed(0)) > 0.3,
    )
    whole = InMemorySource(split, batch_size=16, seed=3)
    ranks = [InMemorySource(split, batch_size=16, seed=3, rank=r, world_size=3) for r in range(3)]
    for epoch in (1, 2):
        parts = [list(source.epoch(epoch)) for source in ranks]
        for step, global_batch in enumerate(whole.epoch(epoch)):
            pieces = [p[step] for p in parts]
            rows = torch.cat([p.batch.numeric[:, 0] for p in pieces])
            assert torch.equal(rows, global_batch.batch.numeric[:, 0])  # disjoint, all covered
            assert all(p.global_rows == len(global_batch.batch) for p in pieces)
            present = global_batch.batch.label_mask.sum(0, dtype=torch.float32)
            assert all(torch.equal(p.label_counts, present) for p in pieces)
    first = next(iter(whole.epoch(1))).batch.numeric
    assert not torch.equal(first, next(iter(whole.epoch(2))).batch.numeric)  # reshuffled


@pytest.mark.parametrize("world_size", [2])
def test_resume_refuses_another_world_size(tmp_path, world_size):
    from mmoe.errors import ArtifactError
    from mmoe.training.distributed import DistContext
    from mmoe.training.trainer import Trainer

    config = mmoe.RunConfig.model_validate(ddp_config())
    split = Batch(torch.zeros(8, 0, dtype=torch.long), torch.zeros(8, 8), torch.zeros(8, 2),
                  torch.ones(8, 2, dtype=torch.bool))  # fmt: skip
    model = mmoe.build_model(config.model, mmoe.InputSpec((), (), 8), ["y1", "y2"])
    single = Trainer(model, InMemorySource(split, 4, 0), split, config.tasks, config.training,
                     ("y1", "mse"), progress=False)  # fmt: skip
    tensors, plain = single.state_dict()
    plain["world_size"] = world_size
    with pytest.raises(ArtifactError, match="written by 2 process"):
        single.load_state_dict(tensors, plain)
    assert DistContext().world_size == 1


def test_interrupted_two_process_run_resumes_with_two_processes(tmp_path):
    """Ctrl-C on the whole process group: one line, exit 130, a checkpoint; --resume finishes."""
    import os
    import signal
    import time

    config = ddp_config()
    config["training"].update(epochs=40, checkpoint_every_steps=20)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    command = [sys.executable, "-m", "mmoe", "train", str(path), "--out", str(out), "-q"]
    proc = subprocess.Popen(
        [*command, "--nproc", "2"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, start_new_session=True,  # its own process group, as a terminal's job is
    )  # fmt: skip
    state = tmp_path / "run.partial/checkpoint/trainer.json"
    deadline = time.monotonic() + 120
    while not (state.exists() and json.loads(state.read_text())["step"] >= 100):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground job
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: stopped by signal 2 at step "), err
    assert lines[0].endswith(f"--out {out} --resume --nproc 2")
    stopped = json.loads(state.read_text())["step"]
    assert stopped == int(lines[0].split(" at step ")[1].split(";")[0])

    done = subprocess.run([*command, "--resume", "--nproc", "2"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    steps = [json.loads(x)["step"] for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps == [16 * k for k in range(1, 41)]  # every epoch's record, once
    assert json.loads((out / "metrics.json").read_text())["steps"] == 640
