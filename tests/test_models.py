"""The common suite: every architecture in the registry passes the same checks.

A new architecture gets these tests by being added to ``ARCHITECTURES``; ``TINY`` only shrinks
the sizes so the suite stays fast. Every architecture also runs them with the shared input
block on (``NAME+cross``: DCN-v2 cross layers, low rank).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mmoe
from mmoe.config import parse_config
from mmoe.data.batch import Batch
from mmoe.data.sources import load_splits
from mmoe.layers import FeatureEmbedding, Gates, InputSpec, ParallelMLP, mix_experts
from mmoe.models import ARCHITECTURES, MMoE, build_model

SPEC = InputSpec(cardinalities=(5, 7, 3), embedding_dims=(4, 4, 2), num_numeric=6)
TINY = {
    "shared_bottom": {"bottom_hidden": [16], "tower_hidden": [4]},
    "omoe": {"num_experts": 4, "expert_hidden": [8], "tower_hidden": [4]},
    "mmoe": {"num_experts": 4, "expert_hidden": [8], "tower_hidden": [4]},
    "cgc": {"num_shared_experts": 2, "num_task_experts": 1, "expert_hidden": [8],
            "tower_hidden": [4]},
    "ple": {"num_levels": 2, "num_shared_experts": 2, "num_task_experts": 1,
            "expert_hidden": [8], "tower_hidden": [4]},
}  # fmt: skip
#: Options of the shared input block that every architecture is also tested with.
VARIANTS = {"cross": {"cross_layers": 2, "cross_rank": 3}}
ARCHS = list(ARCHITECTURES) + [f"{n}+{v}" for n in ARCHITECTURES for v in VARIANTS]


def sizes_of(name: str) -> dict:
    """The model-section keys of a suite entry ``NAME`` or ``NAME+VARIANT``, name included."""
    arch, _, variant = name.partition("+")
    return {"name": arch, **TINY.get(arch, {}), **VARIANTS.get(variant, {})}


def make(name: str, tasks=("a", "b"), seed: int = 0, **sizes):
    options = sizes_of(name)
    config_class = ARCHITECTURES[options.pop("name")].config_class
    torch.manual_seed(seed)
    config = config_class(**{**options, **sizes})
    return build_model(config, SPEC, list(tasks))


def random_batch(n: int = 64, seed: int = 1) -> Batch:
    g = torch.Generator().manual_seed(seed)
    cats = torch.stack([torch.randint(0, c, (n,), generator=g) for c in SPEC.cardinalities], dim=1)
    return Batch(cats, torch.randn(n, SPEC.num_numeric, generator=g))


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("tasks", [("only",), ("a", "b"), ("a", "b", "c")])
def test_output_keys_and_shapes(name, tasks):
    model = make(name, tasks)
    batch = random_batch(17)
    out = model.task_outputs(batch)
    assert list(out) == list(tasks)
    assert all(v.shape == (17,) and v.dtype == torch.float32 for v in out.values())
    logits = model(batch.categorical, batch.numeric)  # the tensor entry point: (B, T)
    assert logits.shape == (17, len(tasks))
    logits2, gates = model(batch.categorical, batch.numeric, return_gates=True)
    assert torch.equal(logits, logits2)
    assert all(torch.equal(out[k], logits[:, i]) for i, k in enumerate(tasks))
    if model.has_gates:
        rows, experts = len(model.gate_rows), len(model.expert_names)
        assert gates.shape == (17, rows, experts) and rows >= len(tasks)
        assert {task for _, task in model.gate_rows} >= set(tasks)
        assert torch.allclose(gates.sum(-1), torch.ones(17, rows))
        assert (gates >= 0).all()
    else:
        assert gates is None


@pytest.mark.parametrize("name", ARCHS)
def test_gradients_reach_every_expert_gate_and_tower(name):
    model = make(name, ("a", "b", "c"))
    batch = random_batch(256)
    targets = torch.rand(256, 3, generator=torch.Generator().manual_seed(3)).round()
    logits = model(batch.categorical, batch.numeric)
    F.binary_cross_entropy_with_logits(logits, targets).backward()
    for module_name, module in model.named_modules():
        if isinstance(module, ParallelMLP):
            for w in module.weights:
                per_member = w.grad.flatten(1).norm(dim=1)
                assert (per_member > 0).all(), f"{module_name}: a member got no gradient"
        elif isinstance(module, Gates):
            grad = module.weight.grad
            assert grad is not None and (grad.abs().sum(0) > 0).all(), f"{module_name}"
    for param_name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{param_name} got no gradient"


@pytest.mark.parametrize("name", ARCHS)
def test_same_seed_same_model_and_output(name):
    batch = random_batch()
    a, b, c = make(name, seed=5), make(name, seed=5), make(name, seed=6)
    za, zb, zc = (m(batch.categorical, batch.numeric) for m in (a, b, c))
    assert torch.equal(za, zb)
    assert not torch.equal(za, zc)


def synthetic_config(name: str, **training) -> dict:
    return {
        "data": {"source": "synthetic", "num_features": 8, "num_train": 3000,
                 "num_valid": 500, "num_test": 500, "num_sines": 2, "seed": 4},
        "model": sizes_of(name),
        "training": {"epochs": 12, "batch_size": 64, "learning_rate": 0.01, "seed": 0,
                     **training},
    }  # fmt: skip


@pytest.mark.parametrize("name", ARCHS)
def test_learns_a_tiny_two_task_problem(name):
    run = mmoe.train(synthetic_config(name), progress=False)
    test = load_splits(parse_config(synthetic_config(name)).data).test
    for task in ("y1", "y2"):
        variance = float(np.var(test.column(task).to_numpy()))
        # A constant predictor scores the label variance; the model must do far better.
        assert run.metrics["test"][task]["mse"] < 0.2 * variance, (task, variance)


@pytest.mark.parametrize("name", ARCHS)
def test_same_seed_same_metrics_and_different_seed_differs(name):
    config = synthetic_config(name, epochs=2)
    first = mmoe.train(config, progress=False).metrics
    again = mmoe.train(config, progress=False).metrics
    assert first["test"] == again["test"]
    for key in ("step", "train_loss", "valid"):  # the best record, timings aside
        assert first["best"][key] == again["best"][key]
    config["training"]["seed"] = 1
    other = mmoe.train(config, progress=False).metrics
    assert other["test"] != first["test"]


@pytest.mark.parametrize("name", ARCHS)
def test_save_load_gives_bit_identical_predictions(name, tmp_path):
    config = synthetic_config(name, epochs=1)
    run = mmoe.train(config, out_dir=tmp_path / "run", progress=False)
    test = load_splits(parse_config(config).data).test
    loaded = mmoe.load(tmp_path / "run")
    assert type(loaded.model) is type(run.model.model)
    before, after = run.predict(test), loaded.predict(test)
    assert list(after.columns) == ["y1", "y2"]
    assert np.array_equal(before.to_numpy(), after.to_numpy())
    if loaded.model.has_gates:
        assert np.array_equal(run.model.gate_weights(test), loaded.gate_weights(test))


# ---- the blocks against plain, unbatched reference code ----------------------------------------


def test_batched_experts_equal_a_per_expert_loop():
    torch.manual_seed(0)
    block = ParallelMLP(n=5, in_dim=12, hidden=[7, 3])
    x = torch.randn(33, 12)
    expected = []
    for i in range(5):
        h = x
        for layer, (w, b) in enumerate(zip(block.weights, block.biases, strict=True)):
            h = F.relu(F.linear(h, w[i].T, b[i])) if layer < 2 else h
        expected.append(h)
    assert torch.allclose(block(x), torch.stack(expected, dim=1), atol=1e-6)
    # One input row per member (as MMoE's towers receive them).
    xs = torch.randn(33, 5, 12)
    looped = torch.stack(
        [F.relu(F.linear(F.relu(F.linear(xs[:, i], block.weights[0][i].T, block.biases[0][i])),
                         block.weights[1][i].T, block.biases[1][i])) for i in range(5)],
        dim=1,
    )  # fmt: skip
    assert torch.allclose(block(xs), looped, atol=1e-6)


def test_fused_embedding_equals_separate_tables():
    emb = FeatureEmbedding(SPEC)
    batch = random_batch(20)
    widths = sorted(set(SPEC.embedding_dims))
    tables = {}
    for width, table in zip(widths, emb.tables, strict=True):
        offset = 0
        for i, d in enumerate(SPEC.embedding_dims):
            if d == width:
                tables[i] = table[offset : offset + SPEC.cardinalities[i]]
                offset += SPEC.cardinalities[i]
    order = [i for w in widths for i, d in enumerate(SPEC.embedding_dims) if d == w]
    expected = torch.cat(
        [F.embedding(batch.categorical[:, i], tables[i]) for i in order] + [batch.numeric], dim=1
    )
    assert torch.equal(emb(batch.categorical, batch.numeric), expected)


def test_fused_embedding_gradient_equals_the_default_gather_backward():
    """The scatter_add_ backward sums the same gradients as autograd's own scatter-add."""
    emb = FeatureEmbedding(SPEC)
    batch = random_batch(64)
    weights = torch.randn(64, SPEC.output_dim)
    (emb(batch.categorical, batch.numeric) * weights).sum().backward()
    ours = [t.grad.clone() for t in emb.tables]
    reference = []
    for width, table in zip(emb.widths, emb.tables, strict=True):
        leaf = table.detach().clone().requires_grad_()
        features = [i for i, d in enumerate(SPEC.embedding_dims) if d == width]
        cols = batch.categorical[:, features].long() + getattr(emb, f"offsets_{width}").long()
        looked = leaf[cols.reshape(-1)].view(64, -1)
        start = sum(w * len([d for d in SPEC.embedding_dims if d == w]) for w in emb.widths
                    if w < width)  # fmt: skip
        (looked * weights[:, start : start + looked.shape[1]]).sum().backward()
        reference.append(leaf.grad)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(ours, reference, strict=True))


@pytest.mark.parametrize(("num_gates", "width"), [(1, 5), (2, 5), (3, 5), (5, 30)])
def test_mix_experts_gradients_equal_autograds_bmm(num_gates, width):
    """Both paths of ``mix_experts`` (elementwise backward below the bmm size limit, plain bmm
    above it) give autograd's values and gradients, in float64 to tight tolerance."""
    torch.manual_seed(0)
    gates = torch.softmax(torch.randn(6, num_gates, 4, dtype=torch.float64), -1)
    experts = torch.randn(6, 4, width, dtype=torch.float64)
    upstream = torch.randn(6, num_gates, width, dtype=torch.float64)
    results = []
    for fn in (mix_experts, torch.bmm):
        g, e = gates.clone().requires_grad_(), experts.clone().requires_grad_()
        out = fn(g, e)
        out.backward(upstream)
        results.append((out.detach(), g.grad, e.grad))
    for ours, reference in zip(*results, strict=True):
        assert torch.allclose(ours, reference, atol=1e-12)
    g = gates.clone().requires_grad_()
    e = experts.clone().requires_grad_()
    assert torch.autograd.gradcheck(mix_experts, (g, e))


def test_first_layer_weights_are_stored_side_by_side():
    """The shared-input GEMM reads the first layer as a view, and its gradient needs no copy;
    shape, values and the saved state are those of a plain (n, D, H) tensor."""
    torch.manual_seed(0)
    bound = (6 / (5 + 2)) ** 0.5  # Glorot-uniform
    plain = torch.empty(3, 5, 2).uniform_(-bound, bound)
    torch.manual_seed(0)
    block = ParallelMLP(n=3, in_dim=5, hidden=[2, 4])
    w = block.weights[0]
    assert w.shape == (3, 5, 2) and torch.equal(w, plain)  # same draws as the plain layout
    assert w.permute(1, 0, 2).is_contiguous()
    block(torch.randn(7, 5)).sum().backward()
    assert w.grad is not None and w.grad.stride() == w.stride()
    copy = ParallelMLP(n=3, in_dim=5, hidden=[2, 4])
    copy.load_state_dict({k: v.contiguous() for k, v in block.state_dict().items()})
    assert torch.equal(copy.weights[0], w) and copy.weights[0].stride() == w.stride()


def test_mmoe_matches_the_paper_formula():
    """y_k = h_k(Σ_i g_k(x)_i f_i(x)), g_k(x) = softmax(W_gk x), written with plain loops."""
    model = make("mmoe", ("a", "b"))
    assert isinstance(model, MMoE)
    batch = random_batch(9)
    x = model.embedding(batch.categorical, batch.numeric)
    num_experts, num_tasks = 4, 2
    w_gate = model.gates.weight.view(-1, num_experts, num_tasks)  # (D, E, T)
    b_gate = model.gates.bias.view(num_experts, num_tasks)
    ew, eb = model.experts.weights[0], model.experts.biases[0]
    experts = [F.relu(x @ ew[i] + eb[i]) for i in range(num_experts)]
    logits = []
    for k in range(num_tasks):
        g = torch.softmax(x @ w_gate[:, :, k] + b_gate[:, k], dim=-1)  # (B, E)
        mixed = sum(g[:, i : i + 1] * experts[i] for i in range(num_experts))
        tw, tb = model.towers.weights, model.towers.biases
        h = F.relu(mixed @ tw[0][k] + tb[0][k])
        logits.append((h @ tw[1][k] + tb[1][k])[:, 0])
    got, gates = model(batch.categorical, batch.numeric, return_gates=True)
    assert torch.allclose(got, torch.stack(logits, dim=1), atol=1e-5)
    assert torch.allclose(gates[:, 0], torch.softmax(x @ w_gate[:, :, 0] + b_gate[:, 0], -1))


def test_omoe_uses_one_gate_for_every_task():
    model = make("omoe", ("a", "b", "c"))
    _, gates = model(*random_batch(8)._tensors()[:2], return_gates=True)
    assert torch.equal(gates[:, 0], gates[:, 1]) and torch.equal(gates[:, 0], gates[:, 2])


def test_mmoe_gates_differ_between_tasks():
    model = make("mmoe", ("a", "b"))
    _, gates = model(*random_batch(8)._tensors()[:2], return_gates=True)
    assert not torch.allclose(gates[:, 0], gates[:, 1])


def test_gate_hidden_layer_is_an_option():
    model = make("mmoe", ("a", "b"), gate_hidden=[6])
    _, gates = model(*random_batch(8)._tensors()[:2], return_gates=True)
    assert gates.shape == (8, 2, 4)
    assert torch.allclose(gates.sum(-1), torch.ones(8, 2))


def test_paper_sizes_give_the_paper_weight_counts():
    """Synthetic study sizes: 8 experts × 16 units + towers of 8 hold 13,056 weights."""
    spec = InputSpec((), (), 100)
    model = build_model(mmoe.models.MMoEConfig(), spec, ["y1", "y2"])
    weights = model.experts.weights[0].numel() + model.towers.weights[0].numel()
    assert weights == 100 * 16 * 8 + 2 * 16 * 8 == 13_056


def test_gate_rows_and_expert_names_describe_the_gate_tensor() -> None:
    """Every row and column of the returned gates is named, so reports can label them."""
    from mmoe.models.mmoe import MMoE
    from mmoe.models.omoe import OMoE
    from mmoe.models.shared_bottom import SharedBottom
    from mmoe.specs import InputSpec

    inputs = InputSpec((), (), 5)
    for cls in (MMoE, OMoE):
        model = cls(inputs, ["a", "b"], num_experts=3)
        _, gates = model(torch.zeros(2, 0, dtype=torch.long), torch.randn(2, 5), return_gates=True)
        assert model.gate_rows == ((0, "a"), (0, "b"))
        assert model.expert_names == ("expert0", "expert1", "expert2")
        assert gates.shape[1:] == (len(model.gate_rows), len(model.expert_names))
    assert SharedBottom(inputs, ["a"]).gate_rows == ()


@pytest.mark.parametrize("name", ["cgc", "ple"])
def test_gate_dropout_of_cgc_and_ple_keeps_the_selection_and_is_off_in_eval(name):
    """Dropped gate weights renormalise over the experts a gate selects; eval is unchanged."""
    plain, dropped = make(name), make(name, gate_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())
    batch = random_batch()
    plain.eval(), dropped.eval()
    _, g0 = plain(batch.categorical, batch.numeric, return_gates=True)
    _, g1 = dropped(batch.categorical, batch.numeric, return_gates=True)
    assert torch.equal(g0, g1)
    dropped.train()
    torch.manual_seed(3)
    _, g2 = dropped(batch.categorical, batch.numeric, return_gates=True)
    assert torch.allclose(g2.sum(-1), torch.ones(g2.shape[:2]))
    assert (g2[g0 == 0] == 0).all()  # an unselected expert never gets weight
    assert (g2 == 0).sum() > (g0 == 0).sum()  # some selected experts were dropped
