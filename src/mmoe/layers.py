"""Building blocks shared by every architecture: input embedding, parallel MLPs, gates.

Speed rules from DESIGN.md §5 are applied here, once, for all models: categorical features are
looked up in one fused table per embedding width; ``n`` experts (or towers) of the same shape run
as batched matmuls over stacked weights, never as a Python loop; all gates are one matmul.

Shapes use: ``B`` batch rows, ``D`` input width, ``E`` experts, ``T`` tasks, ``H`` hidden units.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmoe.specs import InputSpec

#: Standard deviation of the initial embedding vectors. Measured on census group 1 (MMoE,
#: Adam 1e-3, batch 1024, 2 seeds): N(0, 1) embeddings reach test income AUC 0.937 after 3
#: epochs and 0.944 after 10; N(0, 0.05²) with Glorot layers reach 0.942 and 0.946.
EMBEDDING_INIT_STD = 0.05


class FeatureEmbedding(nn.Module):
    """Embeds categorical features and concatenates the numeric ones: ``(B, Fc), (B, Fn) → (B, D)``.

    Features of equal embedding width share one table; each feature owns a row range of it
    (``offsets``), so the lookup is a single ``index_select`` however many features there are.

    Example:
        >>> emb = FeatureEmbedding(InputSpec((5, 3), (4, 4), num_numeric=2))
        >>> emb(torch.tensor([[1, 2]]), torch.zeros(1, 2)).shape
        torch.Size([1, 10])
    """

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        self.spec = spec
        widths = sorted(set(spec.embedding_dims))
        self.tables = nn.ParameterList()
        for width in widths:
            features = [i for i, d in enumerate(spec.embedding_dims) if d == width]
            sizes = [spec.cardinalities[i] for i in features]
            offsets = torch.tensor([0, *sizes[:-1]]).cumsum(0)
            # int32 codes plus int32 offsets stay int32 (no per-step cast for index_select).
            if sum(sizes) < 2**31:
                offsets = offsets.to(torch.int32)
            self.register_buffer(f"offsets_{width}", offsets, persistent=False)
            self.register_buffer(f"features_{width}", torch.tensor(features), persistent=False)
            # Small embeddings, as in most CTR libraries; see EMBEDDING_INIT_STD.
            table = torch.randn(sum(sizes), width) * EMBEDDING_INIT_STD
            self.tables.append(nn.Parameter(table))
        self.widths = widths
        # With one width and features in order, the column gather can be skipped.
        self._identity_order = len(widths) <= 1

    def forward(self, categorical: Tensor, numeric: Tensor) -> Tensor:
        parts = []
        for width, table in zip(self.widths, self.tables, strict=True):
            cols = categorical
            if not self._identity_order:
                cols = categorical.index_select(1, getattr(self, f"features_{width}"))
            codes = cols + getattr(self, f"offsets_{width}")  # (B, Fw) rows of the table
            parts.append(_TableLookup.apply(table, codes))  # (B, Fw * width)
        parts.append(numeric)
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


class _TableLookup(torch.autograd.Function):
    """``table[codes]`` laid out ``(B, F * W)``; its backward sums gradients with ``scatter_add_``.

    ``codes`` is ``(B, F)`` (row numbers of a ``(V, W)`` table). The default backward of a row
    gather (a scatter-add of ``B * F`` short rows) is the largest single cost of a census training
    step. Here the incoming gradient (usually a column slice of the concatenated input's
    gradient) is copied once into column-major order ``(W, B * F)``, and one ``scatter_add_``
    along the rows, with the row numbers broadcast over the ``W`` columns, sums it into a
    ``(W, V)`` table: about half the time of the default backward, and a fixed summation order
    (deterministic on CPU). Measured against one weighted ``bincount`` per column (the previous
    form, same sums): 227 against 266 µs per 1,024-row census batch.
    """

    @staticmethod
    def forward(ctx: Any, table: Tensor, codes: Tensor) -> Tensor:
        rows = codes.reshape(-1)  # (B * F,)
        ctx.save_for_backward(rows)
        ctx.num_rows, ctx.width = table.shape
        return table.index_select(0, rows).view(codes.shape[0], -1)  # (B, F * W)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (rows,) = ctx.saved_tensors
        width = ctx.width
        # (B, F * W) -> (W, B * F) in one copy: row w holds column w of every looked-up vector.
        columns = grad.unflatten(1, (-1, width)).permute(2, 0, 1).contiguous().view(width, -1)
        index = rows.long().expand(width, -1)  # (W, B * F), no copy
        sums = grad.new_zeros(width, ctx.num_rows).scatter_add_(1, index, columns)  # (W, V)
        return sums.t(), None


class ParallelMLP(nn.Module):
    """``n`` independent MLPs of identical shape, evaluated together as batched matmuls.

    Used for the experts (``n = E``), the task towers (``n = T``) and the shared bottom (``n = 1``).
    Each layer is ``relu(x @ W_i + b_i)`` for member ``i``; the last layer skips the ReLU when
    ``activate_last`` is false (towers end in a logit).

    Args:
        n: number of members.
        in_dim: input width ``D``.
        hidden: widths of the layers, e.g. ``[16]`` or ``[64, 32]``.
        activate_last: apply ReLU after the last layer.
        dropout: dropout probability after each ReLU, the output's one included when
            ``activate_last`` (0 disables it).

    Input ``(B, D)`` is shared by every member; input ``(B, n, D)`` gives each member its own row.
    Output is ``(B, n, hidden[-1])``.

    Example:
        >>> experts = ParallelMLP(n=8, in_dim=100, hidden=[16])
        >>> experts(torch.randn(32, 100)).shape
        torch.Size([32, 8, 16])
    """

    def __init__(
        self,
        n: int,
        in_dim: int,
        hidden: Sequence[int],
        activate_last: bool = True,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        assert n >= 1 and len(hidden) >= 1
        self.n = n
        self.activate_last = activate_last
        self.dropout = dropout
        widths = [in_dim, *hidden]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for layer, (d_in, d_out) in enumerate(itertools.pairwise(widths)):
            # Glorot-uniform weights and zero biases, drawn independently for each member.
            bound = math.sqrt(6.0 / (d_in + d_out))
            weight = torch.empty(n, d_in, d_out).uniform_(-bound, bound)
            if layer == 0:
                weight = _members_side_by_side(weight)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(n, d_out)))

    @property
    def out_dim(self) -> int:
        return self.weights[-1].shape[-1]

    def forward(self, x: Tensor) -> Tensor:
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            x = _parallel_linear(x, w, b)  # (B, n, H)
            if i < last or self.activate_last:
                x = F.relu(x)
                # After every ReLU, the last one of experts and bottoms included (a tower's
                # logit has none): single-layer experts get their dropout too.
                if self.dropout > 0:
                    x = F.dropout(x, self.dropout, self.training)
        return x


def _members_side_by_side(weight: Tensor) -> Tensor:
    """``weight`` ``(n, D, H)`` with the same values, stored in memory as ``(D, n, H)``.

    A shared input ``(B, D)`` meets all members' first layers in one GEMM against the ``(D, n*H)``
    matrix of their weights side by side. Storing the parameter in that order makes the matrix
    a free view, and its gradient (the view's gradient, permuted back) already has the
    parameter's strides, so no step copies the weight or its gradient. The parameter's shape,
    its values and its ``state_dict`` entry are those of the plain ``(n, D, H)`` layout.
    """
    n, d_in, d_out = weight.shape
    return torch.empty(d_in, n, d_out).permute(1, 0, 2).copy_(weight)


#: Largest block-diagonal weight (in elements) for which one GEMM beats a batched matmul.
_BLOCK_DIAGONAL_LIMIT = 1 << 14


def _parallel_linear(x: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``x_i @ w_i + b_i`` for every member ``i``: ``(B, D) or (B, n, D) → (B, n, H)``.

    ``w`` is ``(n, D, H)``, ``b`` is ``(n, H)``. Four layouts, each the fastest for its shapes
    on CPU, where small models pay per operator rather than per FLOP:

    - shared input ``(B, D)``: one GEMM against all members' weights side by side;
    - one output unit per member (a tower's logit): an elementwise product and a sum;
    - small per-member layers: one GEMM against the block-diagonal weight (the zero blocks
      cost less than the batched matmul's per-matrix overhead);
    - larger per-member layers: a batched matmul over the member axis.
    """
    n, d_in, d_out = w.shape
    if x.dim() == 2:
        flat = w.permute(1, 0, 2).reshape(d_in, n * d_out)  # (D, n*H), a view for layer 0
        return torch.addmm(b.reshape(-1), x, flat).view(-1, n, d_out)
    if d_out == 1:
        return (x * w[:, :, 0]).sum(-1, keepdim=True) + b  # (B, n, 1)
    # ``block_diag`` has no ONNX form: the TorchScript exporter traces the batched matmul.
    if (n * d_in) * (n * d_out) <= _BLOCK_DIAGONAL_LIMIT and not torch.jit.is_tracing():
        block = torch.block_diag(*w.unbind(0))  # (n*D, n*H)
        return torch.addmm(b.reshape(-1), x.reshape(-1, n * d_in), block).view(-1, n, d_out)
    return torch.baddbmm(b.unsqueeze(1), x.transpose(0, 1), w).transpose(0, 1)


class Gates(nn.Module):
    """``G`` softmax gates over ``E`` experts from one matmul: ``(B, D) → (B, G, E)``.

    The paper's gate is ``softmax(W_g x)`` (a single linear map); ``hidden`` adds ReLU layers in
    front of it as an option. Logits are laid out ``(B, E, G)`` so the softmax reduces over a
    dimension that is not the innermost tiny one, which is several times faster on CPU; the
    returned tensor is a transposed view ``(B, G, E)``. ``dropout`` > 0 applies
    :func:`gate_dropout` in training mode (off by default, as in the paper).

    Input ``(B, D)`` is read by every gate; input ``(B, G, D)`` gives each gate its own row (the
    task gates of PLE's upper levels each read their own task's fused vector).

    Example:
        >>> gates = Gates(in_dim=100, num_gates=2, num_experts=8)
        >>> g = gates(torch.randn(4, 100))
        >>> g.shape, bool(torch.allclose(g.sum(-1), torch.ones(4, 2)))
        (torch.Size([4, 2, 8]), True)
    """

    def __init__(
        self,
        in_dim: int,
        num_gates: int,
        num_experts: int,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        assert 0.0 <= dropout < 1.0
        self.num_gates = num_gates
        self.num_experts = num_experts
        self.dropout = dropout
        self.hidden = ParallelMLP(num_gates, in_dim, hidden) if hidden else None
        width = hidden[-1] if hidden else in_dim
        bound = 1.0 / math.sqrt(width)
        if self.hidden is None:
            # Column e * G + g holds gate g's weights for expert e: one (D, E*G) matmul.
            self.weight = nn.Parameter(torch.empty(width, num_experts * num_gates))
            self.bias = nn.Parameter(torch.empty(num_experts * num_gates))
        else:
            self.weight = nn.Parameter(torch.empty(num_gates, width, num_experts))
            self.bias = nn.Parameter(torch.empty(num_gates, num_experts))
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        if self.hidden is None and x.dim() == 3:
            # Gate g's weights are columns g, G + g, ... of the (D, E*G) matrix: a (G, D, E) view.
            weight = self.weight.view(-1, self.num_experts, self.num_gates).permute(2, 0, 1)
            bias = self.bias.view(self.num_experts, self.num_gates).t().unsqueeze(1)  # (G, 1, E)
            logits = torch.baddbmm(bias, x.transpose(0, 1), weight)  # (G, B, E)
            # Softmax over E laid out (B, E, G), as below, rather than over the innermost E.
            logits = logits.permute(1, 2, 0).contiguous()  # (B, E, G)
            return torch.softmax(logits, dim=1).transpose(1, 2)  # (B, G, E)
        if self.hidden is None:
            logits = torch.addmm(self.bias, x, self.weight)  # (B, E*G)
            logits = logits.view(-1, self.num_experts, self.num_gates)  # (B, E, G)
            gates = torch.softmax(logits, dim=1).transpose(1, 2)  # (B, G, E)
        else:
            h = self.hidden(x)  # (B, G, H)
            logits = torch.einsum("bgh,ghe->bge", h, self.weight) + self.bias  # (B, G, E)
            gates = torch.softmax(logits, dim=-1)
        if self.dropout > 0 and self.training:  # a Python test only: no tensor op when off
            gates = gate_dropout(gates, self.dropout)
        return gates


def gate_dropout(gates: Tensor, p: float) -> Tensor:
    """Drop each expert's gate weight with probability ``p``, renormalise: ``(B, G, E) → same``.

    The regulariser Zhao et al. (RecSys 2019) used against gate polarisation: a gate that leans
    on one expert sees it missing on a share ``p`` of the rows and has to train the others. A
    row whose every weight was dropped keeps its weights unchanged (there is nothing to
    renormalise). The mask comes from torch's global generator, so a seed fixes it.

    Example:
        >>> g = torch.tensor([[[0.5, 0.25, 0.25]]])
        >>> _ = torch.manual_seed(0)
        >>> gate_dropout(g, 0.5).sum(-1).tolist()
        [[1.0]]
    """
    keep = torch.rand_like(gates) >= p  # (B, G, E)
    kept = gates * keep
    total = kept.sum(-1, keepdim=True)  # (B, G, 1)
    dropped_all = total == 0
    # masked_fill keeps the division finite where everything was dropped (no NaN gradient).
    return torch.where(dropped_all, gates, kept / total.masked_fill(dropped_all, 1.0))


def mix_experts(gates: Tensor, experts: Tensor) -> Tensor:
    """Gate-weighted sum of expert outputs: ``(B, G, E), (B, E, H) → (B, G, H)``.

    Example:
        >>> gates = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])  # (1, 2, 2)
        >>> mix_experts(gates, torch.tensor([[[2.0], [4.0]]])).tolist()
        [[[2.0], [3.0]]]
    """
    num_gates, (num_experts, width) = gates.shape[1], experts.shape[1:]
    if num_gates * num_experts * width < _BMM_SCALAR_LIMIT and torch.is_grad_enabled():
        return _MixExperts.apply(gates, experts)
    return torch.bmm(gates, experts)


#: CPU ``bmm`` computes products with ``inner * rows * cols`` below this one scalar at a time,
#: and above it with the BLAS kernel. Measured on the experts' gradient of the mix (batch 1024,
#: 2 threads, fwd+bwd µs, bmm vs elementwise): E=8, H=16: G=1 549/355, G=2 659/482, G=3
#: 520/429 (scalar loop); G=4 252/354, G=8 307/564 (BLAS); E=16, H=64: G=2 741/835.
_BMM_SCALAR_LIMIT = 400


class _MixExperts(torch.autograd.Function):
    """``bmm(gates, experts)`` whose backward forms the experts' gradient elementwise.

    The experts' gradient ``gates^T @ grad`` is a batch of ``(E, G) @ (G, H)`` products with an
    inner dimension of only ``G`` (the number of tasks); CPU ``bmm`` runs such tiny products
    one scalar at a time (see ``_BMM_SCALAR_LIMIT``), and this one was the slowest operator of
    a census MMoE step. ``G`` broadcast multiply-adds of ``(B, E, H)`` form the same sum faster.
    """

    @staticmethod
    def forward(ctx: Any, gates: Tensor, experts: Tensor) -> Tensor:
        ctx.save_for_backward(gates, experts)
        return torch.bmm(gates, experts)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor]:
        gates, experts = ctx.saved_tensors
        per_expert = gates.transpose(1, 2)  # (B, E, G)
        # Laid out like ``per_expert`` (Gates' softmax output), so its backward needs no copy.
        grad_gates = torch.bmm(experts, grad.transpose(1, 2)).transpose(1, 2)  # (B, G, E)
        grad_experts = per_expert[:, :, :1] * grad[:, None, 0]  # (B, E, H)
        for g in range(1, gates.shape[1]):
            grad_experts.addcmul_(per_expert[:, :, g : g + 1], grad[:, None, g])
        return grad_gates, grad_experts


class CrossNetwork(nn.Module):
    """DCN-v2 cross layers (Wang et al., WWW 2021, eq. 1): ``(B, D) → (B, D)``.

        x_{l+1} = x_0 ⊙ (W_l x_l + b_l) + x_l

    Each layer multiplies the input ``x_0`` elementwise with a linear map of the current vector,
    so ``L`` layers form feature crosses up to degree ``L + 1``, and the residual keeps lower
    degrees. With ``rank`` ``r`` the map is the paper's low-rank ``U_l (V_l^T x_l)`` (``D × r``
    each), ``2 D r`` weights instead of ``D²``. Weights are Glorot-uniform, biases zero (the
    paper's initialisation); all operators are matmuls, products and sums, so the block exports
    to ONNX as is.

    Args:
        dim: width ``D`` of the input vector.
        layers: number of cross layers ``L``.
        rank: ``None`` for full ``D × D`` matrices, else the rank of the low-rank form.

    Example:
        >>> cross = CrossNetwork(dim=10, layers=2, rank=4)
        >>> cross(torch.randn(3, 10)).shape
        torch.Size([3, 10])
    """

    def __init__(self, dim: int, layers: int, rank: int | None = None) -> None:
        super().__init__()
        assert layers >= 1
        self.rank = rank
        shapes = [(dim, dim)] if rank is None else [(dim, rank), (rank, dim)]
        self.weights = nn.ParameterList()
        for _ in range(layers):
            for d_in, d_out in shapes:
                bound = math.sqrt(6.0 / (d_in + d_out))
                self.weights.append(nn.Parameter(torch.empty(d_in, d_out).uniform_(-bound, bound)))
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(dim)) for _ in range(layers))

    def forward(self, x0: Tensor) -> Tensor:
        x = x0
        step = 1 if self.rank is None else 2
        for layer, bias in enumerate(self.biases):
            if self.rank is None:
                mapped = torch.addmm(bias, x, self.weights[layer])  # (B, D)
            else:
                low = x @ self.weights[step * layer]  # (B, r)
                mapped = torch.addmm(bias, low, self.weights[step * layer + 1])  # (B, D)
            x = torch.addcmul(x, x0, mapped)  # x0 ⊙ (W x + b) + x
        return x


class EnrichedEmbedding(FeatureEmbedding):
    """``FeatureEmbedding`` followed by input dropout and DCN-v2 cross layers: ``(B, D)`` out.

    Used by :class:`~mmoe.models.base.MultiTaskModel` only when one of these options is on, so
    the default model runs exactly the plain embedding's operators. Dropout comes first (it
    regularises the embeddings and every expert's and gate's input), then the crosses.

    Example:
        >>> emb = EnrichedEmbedding(InputSpec((5,), (4,), 2), cross_layers=1, input_dropout=0.1)
        >>> emb(torch.tensor([[1]]), torch.zeros(1, 2)).shape
        torch.Size([1, 6])
    """

    def __init__(
        self,
        spec: InputSpec,
        cross_layers: int = 0,
        cross_rank: int | None = None,
        input_dropout: float = 0.0,
    ) -> None:
        super().__init__(spec)
        self.input_dropout = input_dropout
        self.cross = (
            CrossNetwork(spec.output_dim, cross_layers, cross_rank) if cross_layers else None
        )

    def forward(self, categorical: Tensor, numeric: Tensor) -> Tensor:
        x = super().forward(categorical, numeric)  # (B, D)
        if self.input_dropout > 0:
            x = F.dropout(x, self.input_dropout, self.training)
        if self.cross is not None:
            x = self.cross(x)
        return x
