"""FusedAdam against torch.optim's fused Adam/AdamW, its state_dict, make_optimizer, schedules."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors
from torch import nn

from mmoe.training.optim import FusedAdam, make_adam, make_optimizer
from mmoe.training.schedule import lr_factor, set_learning_rate

BASE_LRS = [3e-3, 1e-2]  # of the two parameter groups of param_groups()
TOTAL_STEPS = 20


def make_model(hidden: int = 16) -> nn.Sequential:
    torch.manual_seed(0)
    # (B, 2) category ids -> (B, 2, 4) -> (B, 8) -> (B, hidden) -> (B, 2)
    return nn.Sequential(
        nn.Embedding(7, 4), nn.Flatten(), nn.Linear(8, hidden), nn.ReLU(), nn.Linear(hidden, 2)
    )


def copy_of(model: nn.Sequential) -> nn.Sequential:
    other = make_model(model[2].out_features)
    other.load_state_dict(model.state_dict())
    return other


def param_groups(model: nn.Sequential) -> list[dict]:
    """Two groups with their own lr; the first takes the optimizer's weight_decay."""
    return [
        {"params": [*model[0].parameters(), *model[2].parameters()], "lr": BASE_LRS[0]},
        {"params": list(model[4].parameters()), "lr": BASE_LRS[1], "weight_decay": 0.0},
    ]


def train(
    model: nn.Sequential, optimizer, steps: range, base_lrs: list[float] = BASE_LRS
) -> list[torch.Tensor]:
    """Updates ``steps`` (their data and rate depend on the step index only); the weights."""
    for step in steps:
        # The rate of both groups changes at every step: FusedAdam must read it at each step.
        set_learning_rate(optimizer, base_lrs, lr_factor(step, TOTAL_STEPS, "cosine", 3))
        g = torch.Generator().manual_seed(1000 + step)
        cat = torch.randint(0, 7, (32, 2), generator=g)
        target = torch.randn(32, 2, generator=g)
        optimizer.zero_grad()
        (model(cat) - target).square().mean().backward()
        if step % 5 == 0:  # a parameter without a gradient is skipped, its step kept
            model[4].bias.grad = None
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def fused(model: nn.Sequential, adamw: bool) -> FusedAdam:
    return FusedAdam(param_groups(model), lr=1.0, weight_decay=0.02, decoupled_weight_decay=adamw)


def torch_fused(model: nn.Sequential, adamw: bool) -> torch.optim.Optimizer:
    optimizer_class = torch.optim.AdamW if adamw else torch.optim.Adam
    return optimizer_class(param_groups(model), lr=1.0, weight_decay=0.02, fused=True)


def all_equal(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def through_bytes(state: dict) -> dict:
    """``state`` after safetensors (tensors) and JSON (the rest), as a checkpoint stores it."""
    tensors = {
        f"{i}.{key}": value for i, entry in state["state"].items() for key, value in entry.items()
    }
    groups = json.loads(json.dumps(state["param_groups"]))
    entries: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in load_tensors(save_tensors(tensors)).items():
        i, key = name.split(".")
        entries.setdefault(int(i), {})[key] = value
    return {"state": entries, "param_groups": groups}


@pytest.mark.parametrize("adamw", [False, True], ids=["adam", "adamw"])
def test_updates_and_state_equal_torch_fused_bit_for_bit(adamw):
    model, reference_model = make_model(), make_model()
    ours, reference = fused(model, adamw), torch_fused(reference_model, adamw)
    assert all_equal(
        train(model, ours, range(TOTAL_STEPS)),
        train(reference_model, reference, range(TOTAL_STEPS)),
    )
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert mine["param_groups"] == theirs["param_groups"]  # same keys and values as torch.optim
    assert mine["state"].keys() == theirs["state"].keys()
    for i, entry in theirs["state"].items():
        assert entry.keys() == mine["state"][i].keys()
        assert all(torch.equal(mine["state"][i][k], v) for k, v in entry.items())
        assert mine["state"][i]["step"].dtype == torch.float32


def test_same_as_the_single_group_form_with_one_group():
    a, b = make_model(), make_model()
    one = FusedAdam(a.parameters(), lr=1e-2, weight_decay=1e-3)
    grouped = FusedAdam([{"params": list(b.parameters())}], lr=1e-2, weight_decay=1e-3)
    assert one.param_groups[0].keys() == {"params", "lr", "betas", "eps", "weight_decay"}
    assert all_equal(train(a, one, range(6), [1e-2]), train(b, grouped, range(6), [1e-2]))


def test_a_parameter_without_gradient_is_skipped_and_keeps_its_step():
    model = make_model()
    optimizer = FusedAdam(param_groups(model), lr=0.1)
    frozen = model[4].weight  # in the second group, last of its group but one
    before = frozen.detach().clone()
    for _ in range(3):
        optimizer.zero_grad()
        model(torch.zeros(4, 2, dtype=torch.long)).sum().backward()
        frozen.grad = None
        optimizer.step()
    assert torch.equal(frozen, before)
    state = optimizer.state_dict()["state"]
    index = [p is frozen for p in optimizer.params].index(True)
    assert index not in state  # never updated: no state entry, as in torch.optim
    assert all(entry["step"].item() == 3 for entry in state.values())
    assert len(state) == len(optimizer.params) - 1


@pytest.mark.parametrize("serialised", [False, True], ids=["dict", "bytes"])
@pytest.mark.parametrize("adamw", [False, True], ids=["adam", "adamw"])
def test_state_dict_round_trip_continues_bit_for_bit(adamw, serialised):
    model = make_model()
    uninterrupted = train(model, fused(model, adamw), range(TOTAL_STEPS))

    first = make_model()
    optimizer = fused(first, adamw)
    train(first, optimizer, range(8))
    resumed_model = copy_of(first)
    state = optimizer.state_dict()
    train(first, optimizer, range(8, 10))  # the state_dict is a snapshot: later steps leave it
    resumed = fused(resumed_model, adamw)
    resumed.load_state_dict(through_bytes(state) if serialised else state)
    assert all_equal(train(resumed_model, resumed, range(8, TOTAL_STEPS)), uninterrupted)


@pytest.mark.parametrize("adamw", [False, True], ids=["adam", "adamw"])
def test_state_dict_loads_into_torch_optim_and_back(adamw):
    model = make_model()
    uninterrupted = train(model, fused(model, adamw), range(TOTAL_STEPS))

    ours_model = make_model()
    ours = fused(ours_model, adamw)
    train(ours_model, ours, range(8))
    torch_model = copy_of(ours_model)
    theirs = torch_fused(torch_model, adamw)
    theirs.load_state_dict(ours.state_dict())
    train(torch_model, theirs, range(8, 14))

    back_model = copy_of(torch_model)
    back = fused(back_model, adamw)
    back.load_state_dict(theirs.state_dict())
    assert all_equal(train(back_model, back, range(14, TOTAL_STEPS)), uninterrupted)


def test_load_state_dict_takes_the_saved_hyperparameters():
    model = make_model()
    saved = FusedAdam(param_groups(model), lr=1.0, betas=(0.8, 0.99), eps=1e-6)
    saved.param_groups[1]["lr"] = 0.5
    optimizer = FusedAdam(param_groups(model), lr=1.0)
    optimizer.load_state_dict(through_bytes(saved.state_dict()))
    assert optimizer.param_groups[1]["lr"] == 0.5
    assert optimizer.param_groups[0]["betas"] == (0.8, 0.99)  # a tuple again after JSON
    assert optimizer.param_groups[0]["eps"] == 1e-6


def test_load_state_dict_refuses_other_parameters_and_changes_nothing():
    model = make_model()
    trained = FusedAdam(param_groups(model), lr=1.0)
    train(model, trained, range(2))
    state = trained.state_dict()
    optimizer = FusedAdam(param_groups(make_model()), lr=1.0)
    before = optimizer.state_dict()

    with pytest.raises(ValueError, match="2 parameter groups, this optimizer 1"):
        FusedAdam(make_model().parameters(), lr=1.0).load_state_dict(state)
    with pytest.raises(ValueError, match="group 0 has 3 parameters, this optimizer's 2"):
        other = make_model()
        FusedAdam(
            [
                {"params": [*other[0].parameters(), other[2].weight]},
                {"params": list(other[4].parameters())},
            ],
            lr=1.0,
        ).load_state_dict(state)
    wider = make_model(hidden=17)
    with pytest.raises(
        ValueError, match=r"exp_avg of parameter 1 is \(16, 8\), expected .*\(17, 8\)"
    ):
        FusedAdam(param_groups(wider), lr=1.0).load_state_dict(state)
    with pytest.raises(ValueError, match="state is Adam's, this optimizer is AdamW"):
        FusedAdam(param_groups(make_model()), lr=1.0, decoupled_weight_decay=True).load_state_dict(
            state
        )
    broken = {
        "state": {0: {"step": torch.tensor(1.0), "exp_avg": torch.zeros(7, 4)}},
        "param_groups": state["param_groups"],
    }
    with pytest.raises(ValueError, match="exp_avg_sq of parameter 0"):
        optimizer.load_state_dict(broken)
    after = optimizer.state_dict()
    assert after["state"] == before["state"] == {}
    assert after["param_groups"] == before["param_groups"]


def test_constructor_refuses_what_it_cannot_update():
    model = make_model()
    with pytest.raises(ValueError, match="float32 CPU"):
        FusedAdam([nn.Parameter(torch.zeros(2, dtype=torch.float64))], lr=1e-3)
    with pytest.raises(ValueError, match="unknown parameter group keys \\['momentum'\\]"):
        FusedAdam([{"params": model.parameters(), "momentum": 0.9}], lr=1e-3)
    with pytest.raises(ValueError, match="twice"):
        FusedAdam([{"params": [model[2].weight]}, {"params": [model[2].weight]}], lr=1e-3)
    with pytest.raises(ValueError, match="invalid Adam hyperparameters"):
        FusedAdam(model.parameters(), lr=-1.0)


def test_make_optimizer_returns_the_documented_types():
    model = make_model()
    model[0].weight.requires_grad_(False)  # frozen parameters are left out
    adam = make_optimizer("adam", model.parameters(), lr=1e-3, weight_decay=1e-2)
    assert type(adam) is FusedAdam and not adam.decoupled_weight_decay
    assert len(adam.params) == 4 and adam.param_groups[0]["weight_decay"] == 1e-2
    adamw = make_optimizer("adamw", param_groups(model), lr=1e-3)
    assert type(adamw) is FusedAdam and adamw.decoupled_weight_decay
    assert [len(g["params"]) for g in adamw.param_groups] == [2, 2]
    reference = make_optimizer("torch_adam", model.parameters(), lr=1e-3)
    assert type(reference) is torch.optim.Adam and reference.param_groups[0]["fused"] is None
    assert type(make_adam(model.parameters(), lr=1e-3)) is FusedAdam

    double = nn.Linear(2, 1).double()  # no fused kernel in FusedAdam's reach: torch.optim's
    assert type(make_optimizer("adam", double.parameters(), lr=1e-3)) is torch.optim.Adam
    assert type(make_optimizer("adamw", double.parameters(), lr=1e-3)) is torch.optim.AdamW
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        make_optimizer("sgd", model.parameters(), lr=1e-3)


# Learning-rate schedules.


@pytest.mark.parametrize(
    ("step", "total", "schedule", "warmup", "expected"),
    [
        (0, 100, "cosine", 0, 1.0),
        (50, 100, "cosine", 0, 0.5),
        (25, 100, "cosine", 0, 0.5 + 0.25 * math.sqrt(2)),  # (1 + cos(pi / 4)) / 2
        (99, 100, "cosine", 0, 0.000246719817),
        (0, 100, "linear", 0, 1.0),
        (50, 100, "linear", 0, 0.5),
        (99, 100, "linear", 0, 0.01),
        (0, 100, "linear", 10, 0.1),  # warm-up: (step + 1) / warmup_steps
        (4, 100, "cosine", 10, 0.5),
        (9, 100, "constant", 10, 1.0),  # the last warm-up step reaches the base rate
        (10, 100, "linear", 10, 1.0),  # decay starts from 1
        (55, 100, "linear", 10, 0.5),  # progress = 45 / 90
        (55, 100, "cosine", 10, 0.5),
        (99, 100, "linear", 10, 1 / 90),
        (99, 100, "constant", 0, 1.0),
        (0, 1, "cosine", 0, 1.0),
        (3, 3, "linear", 0, 0.0),  # past the end: clamped, never negative
    ],
)
def test_lr_factor_hand_computed_values(step, total, schedule, warmup, expected):
    assert lr_factor(step, total, schedule, warmup) == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
@pytest.mark.parametrize(("total", "warmup"), [(1, 0), (7, 0), (50, 5), (5, 5), (100, 30)])
def test_lr_factor_follows_its_definition(schedule, total, warmup):
    factors = [lr_factor(s, total, schedule, warmup) for s in range(total)]
    for step, factor in enumerate(factors):
        if step < warmup:
            expected = (step + 1) / warmup
        else:
            progress = (step - warmup) / max(1, total - warmup)
            expected = {
                "constant": 1.0,
                "linear": 1 - progress,
                "cosine": 0.5 * (1 + math.cos(math.pi * progress)),
            }[schedule]
        assert factor == pytest.approx(expected, abs=1e-15)
        assert 0 < factor <= 1
    after = factors[warmup:]
    assert all(a >= b for a, b in itertools.pairwise(after))  # no increase after warm-up


def test_lr_factor_refuses_an_unknown_schedule():
    with pytest.raises(ValueError, match="unknown learning-rate schedule 'step'"):
        lr_factor(0, 10, "step")


def test_set_learning_rate_on_fused_adam_and_torch_optim():
    model = make_model()
    for optimizer in (FusedAdam(param_groups(model), lr=1.0), torch_fused(model, adamw=False)):
        set_learning_rate(optimizer, [0.2, 0.4], 0.5)
        assert [g["lr"] for g in optimizer.param_groups] == [0.1, 0.2]
        with pytest.raises(ValueError, match="1 base learning rates for 2 parameter groups"):
            set_learning_rate(optimizer, [0.2], 0.5)


def test_loaded_moments_take_the_layout_of_their_parameter():
    """torch.optim loads moments contiguous; the fused CUDA kernel needs the parameter's layout."""
    from mmoe.training.optim import load_optimizer_state

    weight = nn.Parameter(torch.randn(3, 4, 5).permute(1, 0, 2))  # stored transposed, like experts
    opt = torch.optim.Adam([weight], lr=0.1)
    weight.grad = torch.randn_like(weight)
    opt.step()
    saved = opt.state_dict()
    saved["state"][0] = {k: v.contiguous() for k, v in saved["state"][0].items()}  # as if read
    fresh = torch.optim.Adam([weight], lr=0.1)
    load_optimizer_state(fresh, saved)
    for key in ("exp_avg", "exp_avg_sq"):
        assert fresh.state[weight][key].stride() == weight.stride()
        assert torch.equal(fresh.state[weight][key], saved["state"][0][key])
