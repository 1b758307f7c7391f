"""The MoE feed-forward of MoEAD: 4 experts, top-2, plain linear router, softmax over the top-2.

Weights are stored in the layout the dense form wants (all experts' first layers as one
d -> E*F linear, all second layers as one E*F -> d linear plus per-expert biases), so the
exported graph is two plain matrix products whose weights are initializers. `sparse_forward`
runs each expert on the tokens routed to it only, as fastmoe does. The two are equal (a test
pins values and gradients); training runs the sparse one, which skips the half of the expert
arithmetic that the dense form multiplies by zero (1.45x faster training steps on one CPU
thread, `edge` config), and evaluation and export run the dense one.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def balance_loss(logits: torch.Tensor) -> torch.Tensor:
    """MoEAD's NaiveGate loss: cv^2 of the per-expert sum of raw router logits over all tokens."""
    importance = logits.reshape(-1, logits.shape[-1]).sum(0)
    return importance.var(unbiased=True) / (importance.mean() ** 2 + 1e-10)


def top_experts(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest logits and their expert indices, a tie going to the lower index.

    That is ONNX TopK's rule, and the exported graph routes by TopK; torch.topk on CPU took the
    higher index, so a token with tied logits (a zero router row, a saturated input) went to
    other experts in PyTorch than in onnxruntime. A stable descending sort keeps tied experts in
    index order, but does not export: the traced graph takes torch.topk, which becomes TopK."""
    if torch.onnx.is_in_onnx_export():
        return torch.topk(logits, k, dim=-1)
    values, indices = torch.sort(logits, dim=-1, descending=True, stable=True)
    return values[..., :k], indices[..., :k]


class MoEFFN(nn.Module):
    def __init__(self, dim: int, hidden: int, experts: int, top_k: int, dropout: float):
        super().__init__()
        if not 1 <= top_k <= experts:
            raise ValueError(f"top_k must be in 1..{experts}, got {top_k}")
        self.dim, self.hidden, self.experts, self.top_k = dim, hidden, experts, top_k
        self.router = nn.Linear(dim, experts)
        self.expert_in = nn.Linear(dim, experts * hidden)
        self.expert_out = nn.Linear(experts * hidden, dim, bias=False)
        self.expert_out_bias = nn.Parameter(torch.zeros(experts, dim))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # fastmoe's FMoELinear: kaiming_uniform(a=sqrt(5)) per expert, zero bias; router: xavier (the
        # reference initializer touches every nn.Linear).
        nn.init.xavier_uniform_(self.router.weight)
        nn.init.zeros_(self.router.bias)
        for e in range(self.experts):
            rows = slice(e * self.hidden, (e + 1) * self.hidden)
            nn.init.kaiming_uniform_(self.expert_in.weight.data[rows], a=math.sqrt(5))
            w2 = torch.empty(self.dim, self.hidden)
            nn.init.kaiming_uniform_(w2, a=math.sqrt(5))
            self.expert_out.weight.data[:, rows] = w2
        nn.init.zeros_(self.expert_in.bias)
        nn.init.zeros_(self.expert_out_bias)

    def gates(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Router logits and dense gate weights: softmax over the top-k logits, 0 for the others."""
        logits = self.router(x)
        top = top_experts(logits, self.top_k)[1]
        chosen = F.one_hot(top, self.experts).sum(-2) > 0
        weights = torch.softmax(torch.where(chosen, logits, torch.full_like(logits, float("-inf"))), dim=-1)
        return logits, weights

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-k MoE: sparse while training, dense otherwise. Returns (y, balance loss); the
        loss only matters for training, and leaving it out of eval keeps it out of the export."""
        if self.training:
            y, logits = self._sparse(x)
            return y, balance_loss(logits)
        return self.dense_forward(x), x.new_zeros(())

    def dense_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Every expert computed, the unselected ones weighted 0: the exported form."""
        _, w = self.gates(x)
        h = self.dropout(F.relu(self.expert_in(x)))
        h = h.unflatten(-1, (self.experts, self.hidden)) * w.unsqueeze(-1)
        return self.expert_out(h.flatten(-2)) + w @ self.expert_out_bias

    def expert(self, e: int, x: torch.Tensor) -> torch.Tensor:
        rows = slice(e * self.hidden, (e + 1) * self.hidden)
        h = self.dropout(F.relu(F.linear(x, self.expert_in.weight[rows], self.expert_in.bias[rows])))
        return F.linear(h, self.expert_out.weight[:, rows], self.expert_out_bias[e])

    def sparse_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Each token through its top-k experts only (as fastmoe does)."""
        return self._sparse(x)[0]

    def _sparse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = x.reshape(-1, self.dim)
        logits = self.router(flat)
        values, idx = top_experts(logits, self.top_k)
        scores = torch.softmax(values, dim=-1)
        y = torch.zeros_like(flat)
        for e in range(self.experts):
            token, slot = torch.nonzero(idx == e, as_tuple=True)
            if token.numel():
                y = y.index_add(0, token, scores[token, slot, None] * self.expert(e, flat[token]))
        return y.reshape(x.shape), logits.reshape(*x.shape[:-1], self.experts)
