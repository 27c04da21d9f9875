"""CGC and PLE (Tang et al., RecSys 2020) against known answers and plain, unbatched code.

The common suite (tests/test_models.py) covers shapes, gradients, seeds, save/load and learning;
here: the gates select exactly the experts the paper says, the special cases reduce to MMoE and
to separate per-task networks, and PLE's levels are wired as in the paper.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmoe.config import parse_config
from mmoe.errors import ConfigError
from mmoe.layers import Gates
from mmoe.models import CGC, PLE, MMoE
from mmoe.specs import InputSpec

SPEC = InputSpec(cardinalities=(5, 7), embedding_dims=(3, 3), num_numeric=4)
TASKS = ("a", "b", "c")


def inputs(n: int = 11, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    cats = torch.stack([torch.randint(0, c, (n,), generator=g) for c in SPEC.cardinalities], 1)
    return cats, torch.randn(n, SPEC.num_numeric, generator=g)


def test_gates_with_one_input_row_per_gate_equal_a_loop_over_gates() -> None:
    torch.manual_seed(0)
    gates = Gates(in_dim=6, num_gates=3, num_experts=4)
    x = torch.randn(9, 3, 6)
    weight = gates.weight.view(6, 4, 3)  # column e * G + g: gate g, expert e
    bias = gates.bias.view(4, 3)
    expected = torch.stack(
        [torch.softmax(x[:, g] @ weight[:, :, g] + bias[:, g], -1) for g in range(3)], dim=1
    )
    assert torch.allclose(gates(x), expected, atol=1e-6)
    # The same rows in every gate's input give what the shared-input path gives.
    shared = torch.randn(9, 6)
    assert torch.allclose(gates(shared[:, None].expand(-1, 3, -1)), gates(shared), atol=1e-6)


@pytest.mark.parametrize("model_class", [CGC, PLE])
def test_each_task_gate_is_zero_exactly_on_other_tasks_experts(model_class) -> None:
    torch.manual_seed(0)
    model = model_class(SPEC, TASKS, num_shared_experts=2, num_task_experts=2)
    _, gates = model(*inputs(), return_gates=True)
    names = model.expert_names
    assert names == ("a/0", "a/1", "b/0", "b/1", "c/0", "c/1", "shared0", "shared1")
    assert torch.allclose(gates.sum(-1), torch.ones(gates.shape[:2]))
    for row, (_level, gate) in enumerate(model.gate_rows):
        for col, expert in enumerate(names):
            selected = gate == "shared" or expert.startswith(f"{gate}/") or "/" not in expert
            weights = gates[:, row, col]
            assert (weights > 0).all() if selected else (weights == 0).all(), (gate, expert)


def test_ple_gate_rows_stack_levels_with_a_shared_gate_on_all_but_the_last() -> None:
    model = PLE(SPEC, ("a", "b"), num_levels=3, num_shared_experts=1, num_task_experts=1)
    assert model.gate_rows == (
        (0, "a"), (0, "b"), (0, "shared"), (1, "a"), (1, "b"), (1, "shared"), (2, "a"), (2, "b"),
    )  # fmt: skip
    _, gates = model(*inputs(), return_gates=True)
    assert gates.shape == (11, 8, 3)
    # Without shared experts nothing would read a shared gate, so there is none.
    alone = PLE(SPEC, ("a", "b"), num_levels=2, num_shared_experts=0, num_task_experts=2)
    assert alone.gate_rows == ((0, "a"), (0, "b"), (1, "a"), (1, "b"))
    assert alone(*inputs()).shape == (11, 2)


def test_cgc_without_task_experts_is_mmoe_over_the_shared_experts() -> None:
    torch.manual_seed(0)
    cgc = CGC(SPEC, TASKS, num_shared_experts=3, num_task_experts=0, expert_hidden=[5])
    mmoe = MMoE(SPEC, TASKS, num_experts=3, expert_hidden=[5])
    state = {
        k.replace("level.task_gates.", "gates.").replace("level.", ""): v
        for k, v in cgc.state_dict().items()
    }
    mmoe.load_state_dict(state)
    (cgc_logits, cgc_gates), (mmoe_logits, mmoe_gates) = (
        m(*inputs(), return_gates=True) for m in (cgc, mmoe)
    )
    assert torch.allclose(cgc_logits, mmoe_logits, atol=1e-6)
    assert torch.allclose(cgc_gates, mmoe_gates, atol=1e-6)


def test_cgc_with_one_own_expert_and_none_shared_is_one_network_per_task() -> None:
    """Every gate selects a single expert (weight 1): task k is tower_k(expert_k(x))."""
    torch.manual_seed(0)
    model = CGC(SPEC, TASKS, num_shared_experts=0, num_task_experts=1, expert_hidden=[5])
    cats, nums = inputs()
    logits, gates = model(cats, nums, return_gates=True)
    assert torch.equal(gates, torch.eye(3).expand(11, -1, -1))
    x = model.embedding(cats, nums)
    ew, eb = model.level.experts.weights[0], model.level.experts.biases[0]
    tw, tb = model.towers.weights, model.towers.biases
    for k in range(3):
        h = F.relu(x @ ew[k] + eb[k])
        expected = (F.relu(h @ tw[0][k] + tb[0][k]) @ tw[1][k] + tb[1][k])[:, 0]
        assert torch.allclose(logits[:, k], expected, atol=1e-5)


def test_ple_with_one_level_is_cgc() -> None:
    torch.manual_seed(0)
    cgc = CGC(SPEC, TASKS, num_shared_experts=2, num_task_experts=1)
    ple = PLE(SPEC, TASKS, num_levels=1, num_shared_experts=2, num_task_experts=1)
    ple.load_state_dict({k.replace("level.", "levels.0."): v for k, v in cgc.state_dict().items()})
    cats, nums = inputs()
    (logits, gates), (ple_logits, ple_gates) = (
        m(cats, nums, return_gates=True) for m in (cgc, ple)
    )
    assert torch.equal(logits, ple_logits) and torch.equal(gates, ple_gates)


def _mlp(x: torch.Tensor, weights, biases, member: int) -> torch.Tensor:
    for w, b in zip(weights, biases, strict=True):
        x = F.relu(x @ w[member] + b[member])
    return x


def _gate(gates: Gates, x: torch.Tensor, gate: int) -> torch.Tensor:
    weight = gates.weight.view(x.shape[1], gates.num_experts, gates.num_gates)
    bias = gates.bias.view(gates.num_experts, gates.num_gates)
    return torch.softmax(x @ weight[:, :, gate] + bias[:, gate], dim=-1)


def test_ple_matches_the_paper_formula_written_with_loops() -> None:
    """Two levels, three tasks: g^{k,j} = w^{k,j}(g^{k,j-1}) S^{k,j}; the shared path reads
    g^{s,j-1}; level 0 reads x; towers read g^{k,N}. Every expert and gate evaluated one by one."""
    torch.manual_seed(0)
    m_t, m_s = 2, 3
    model = PLE(SPEC, TASKS, num_levels=2, num_shared_experts=m_s, num_task_experts=m_t,
                expert_hidden=[6, 5])  # fmt: skip
    cats, nums = inputs()
    x = model.embedding(cats, nums)
    task_inputs, shared_input = [x] * 3, x
    for level in model.levels:
        ws, bs = level.experts.weights, level.experts.biases
        shared = [_mlp(shared_input, ws, bs, 3 * m_t + j) for j in range(m_s)]
        own = [[_mlp(task_inputs[k], ws, bs, k * m_t + i) for i in range(m_t)] for k in range(3)]
        fused = []
        for k in range(3):
            selected = own[k] + shared  # S^{k,j}: task k's experts, then the shared ones
            w = _gate(level.task_gates, task_inputs[k], k)
            fused.append(sum(w[:, i : i + 1] * e for i, e in enumerate(selected)))
        if level.shared_gate is not None:
            every = [e for k in range(3) for e in own[k]] + shared
            w = _gate(level.shared_gate, shared_input, 0)
            shared_input = sum(w[:, i : i + 1] * e for i, e in enumerate(every))
        task_inputs = fused
    tw, tb = model.towers.weights, model.towers.biases
    expected = torch.stack(
        [(F.relu(task_inputs[k] @ tw[0][k] + tb[0][k]) @ tw[1][k] + tb[1][k])[:, 0]
         for k in range(3)], dim=1,
    )  # fmt: skip
    assert torch.allclose(model(cats, nums), expected, atol=1e-5)


def test_a_gate_without_experts_is_a_one_line_config_error() -> None:
    raw = {"data": {"source": "synthetic"},
           "model": {"name": "cgc", "num_shared_experts": 0, "num_task_experts": 0}}  # fmt: skip
    with pytest.raises(ConfigError, match="num_shared_experts \\+ num_task_experts"):
        parse_config(raw)
    assert parse_config({**raw, "model": {"name": "ple"}}).model.num_levels == 2


def test_ple_exports_with_torch_export_and_a_dynamic_batch() -> None:
    """The graph export paths (torch.export, ONNX through it) trace the gates' scatter."""
    torch.manual_seed(0)
    model = PLE(SPEC, ("a", "b"), num_levels=2, num_shared_experts=2, num_task_experts=1).eval()
    cats, nums = inputs(6)
    batch = torch.export.Dim("batch", min=2)
    program = torch.export.export(model, (cats, nums), dynamic_shapes=({0: batch}, {0: batch}))
    assert torch.allclose(program.module()(cats[:3], nums[:3]), model(cats[:3], nums[:3]))
