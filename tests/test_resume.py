"""Checkpoints and exact resume: a run stopped at any step and resumed ends bit-identical."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import mmoe
from mmoe.errors import ArtifactError
from mmoe.training.trainer import Trainer
from tests.test_models import synthetic_config

ROOT = Path(__file__).resolve().parents[1]


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model.safetensors"))


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), f"{name} differs"


def resumable_config(**training) -> dict:
    """MMoE with dropout (the global RNG matters), a warm-up + cosine schedule, patience."""
    config = synthetic_config("mmoe", epochs=4, checkpoint_every_steps=5, **training)
    config["model"]["dropout"] = 0.1
    config["training"].update(lr_schedule="cosine", warmup_steps=20, eval_every_steps=30)
    return config


class Crash(Exception):
    """Stands in for a process dying between two steps."""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    mmoe.train(resumable_config(), out_dir=out, progress=False)
    return out


@pytest.mark.parametrize("crash_at", [7, 31, 117])
def test_crash_then_resume_is_bit_identical(tmp_path, monkeypatch, uninterrupted, crash_at):
    out = tmp_path / "run"
    original = Trainer.train_step

    def dying_step(self, part):
        if self.state.step == crash_at:
            raise Crash
        original(self, part)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(Crash):
        mmoe.train(resumable_config(), out_dir=out, progress=False)
    monkeypatch.setattr(Trainer, "train_step", original)
    state = json.loads((tmp_path / "run.partial/checkpoint/trainer.json").read_text())
    assert state["step"] == crash_at // 5 * 5  # the last checkpoint before the crash
    run = mmoe.train(resumable_config(), out_dir=out, progress=False, resume=True)
    assert_same_weights(out, uninterrupted)
    whole = [json.loads(x) for x in (uninterrupted / "metrics.jsonl").read_text().splitlines()]
    again = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in again] == [r["step"] for r in whole]  # no record lost or doubled
    assert [r["valid"] for r in again] == [r["valid"] for r in whole]
    assert run.metrics["steps"] == 188
    assert not (out / "checkpoint").exists()  # the published run holds no checkpoint


def test_resume_refuses_another_config_or_no_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "run"
    with pytest.raises(ArtifactError, match="no checkpoint to resume"):
        mmoe.train(resumable_config(), out_dir=out, progress=False, resume=True)

    def dying_step(self, part):
        raise Crash

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(Crash):
        mmoe.train(resumable_config(), out_dir=out, progress=False)
    (out.parent / "run.partial/checkpoint").mkdir(exist_ok=True)
    (out.parent / "run.partial/checkpoint/trainer.json").write_text("{}")
    with pytest.raises(ArtifactError, match=r"another config \(differs in: training\)"):
        mmoe.train(resumable_config(seed=1), out_dir=out, progress=False, resume=True)


def test_checkpoint_holds_json_and_safetensors_only(tmp_path, monkeypatch):
    original = Trainer.train_step

    def dying_step(self, part):
        if self.state.step == 12:
            raise Crash
        original(self, part)

    monkeypatch.setattr(Trainer, "train_step", dying_step)
    with pytest.raises(Crash):
        mmoe.train(resumable_config(), out_dir=tmp_path / "run", progress=False)
    folder = tmp_path / "run.partial/checkpoint"
    assert sorted(p.name for p in folder.iterdir()) == [
        "preprocessor.json", "state-000000010.safetensors", "trainer.json"]  # fmt: skip
    state = json.loads((folder / "trainer.json").read_text())
    assert state["step"] == 10 and state["epoch"] == 1 and state["epoch_step"] == 10
    assert state["world_size"] == 1 and state["tensors"] == "state-000000010.safetensors"
    tensors = load_file(str(folder / state["tensors"]))
    assert "rng.torch" in tensors and "running_loss" in tensors
    assert any(k.startswith("optimizer.") and k.endswith(".exp_avg") for k in tensors)
    assert {k.removeprefix("model.") for k in tensors if k.startswith("model.")} == set(
        mmoe.build_model(mmoe.RunConfig.model_validate(resumable_config()).model,
                         mmoe.InputSpec((), (), 8), ["y1", "y2"]).state_dict())  # fmt: skip


# ---- real processes: SIGKILL and SIGINT ---------------------------------------------------------


def start_training(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "mmoe", "train", str(config), "--out", str(out), "-q", *extra]
    return subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def wait_for_checkpoint(proc: subprocess.Popen, out: Path, step: int, limit: float = 60) -> None:
    """Poll the checkpoint until it reaches ``step`` (the process must still be running)."""
    state_file = out.with_name(out.name + ".partial") / "checkpoint" / "trainer.json"
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"training ended before step {step}: {proc.stderr.read()}"
        try:
            if json.loads(state_file.read_text())["step"] >= step:
                return
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass  # not written yet (reads see whole files: writes are atomic)
        time.sleep(0.002)
    raise AssertionError(f"no checkpoint at step {step} within {limit} s")


def finish_with_resume(config: Path, out: Path) -> None:
    """Run ``mmoe train CONFIG --out OUT --resume`` to the end."""
    done = start_training(config, out, "--resume")
    _, err = done.communicate(timeout=120)
    assert done.returncode == 0, err


@pytest.fixture(scope="module")
def long_config(tmp_path_factory) -> tuple[Path, Path]:
    """A run long enough to be killed mid-way (checkpoint every step), and its uninterrupted end."""
    config = resumable_config()
    config["training"].update(epochs=12, checkpoint_every_steps=1)
    folder = tmp_path_factory.mktemp("long")
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    whole = folder / "whole"
    mmoe.train(path, out_dir=whole, progress=False)
    return path, whole


def test_sigkill_at_two_points_then_resume_is_bit_identical(tmp_path, long_config):
    config, whole = long_config
    out = tmp_path / "run"
    proc = start_training(config, out)
    wait_for_checkpoint(proc, out, 40)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = json.loads((tmp_path / "run.partial/checkpoint/trainer.json").read_text())["step"]
    proc = start_training(config, out, "--resume")
    wait_for_checkpoint(proc, out, first + 150)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not out.exists()
    finish_with_resume(config, out)
    assert_same_weights(out, whole)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_signal_writes_a_checkpoint_and_says_how_to_resume(tmp_path, long_config, signum):
    config, whole = long_config
    out = tmp_path / "run"
    proc = start_training(config, out)
    wait_for_checkpoint(proc, out, 25)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum  # 130 for Ctrl-C, 143 for SIGTERM
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"error: stopped by signal {int(signum)} at step ")
    assert lines[0].endswith(
        f"; checkpoint written; resume with: mmoe train {config} --out {out} --resume"
    )
    step = int(lines[0].split(" at step ")[1].split(";")[0])
    state = json.loads((tmp_path / "run.partial/checkpoint/trainer.json").read_text())
    assert state["step"] == step  # the checkpoint is of the step the message names
    finish_with_resume(config, out)
    assert_same_weights(out, whole)
