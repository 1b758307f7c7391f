"""MoEAD's reconstruction network: one shared block applied recursively (moead.md §2)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .moe import MoEFFN

# Added to attention logits of masked keys. Finite so FP16/INT8 engines never see inf - inf.
MASK_VALUE = -1e4


class Attention(nn.Module):
    """nn.MultiheadAttention's parameters (in_proj 3d x d, out_proj), written out so the export
    is plain Gemm/MatMul/Softmax that the quantizer can split: projections and the score/value
    products in 8 bits, the mask and the softmax in float."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"hidden_dim {dim} is not divisible by nhead {heads}")
        self.heads = heads
        self.head_dim = dim // heads
        self.in_proj = nn.Linear(dim, 3 * dim)
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)
        nn.init.xavier_uniform_(self.in_proj.weight)
        nn.init.zeros_(self.in_proj.bias)
        nn.init.xavier_uniform_(self.out_proj.weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        wq, wk, wv = self.in_proj.weight.chunk(3)
        bq, bk, bv = self.in_proj.bias.chunk(3)
        b, lq, d = q.shape
        hd = self.head_dim

        def heads(x: torch.Tensor) -> torch.Tensor:  # (B, L, d) -> (B, heads, L, hd)
            return x.reshape(x.shape[0], x.shape[1], self.heads, hd).transpose(1, 2)

        # The 1/sqrt(hd) score scale rides on the query projection's weights: the same product,
        # without a Mul node that in INT8 would sit between the projection and the quantized
        # score product (a DequantizeLinear, the Mul, and a QuantizeLinear per attention).
        scale = hd**-0.5
        qh = heads(F.linear(q, wq * scale, bq * scale))
        kh, vh = heads(F.linear(k, wk, bk)), heads(F.linear(v, wv, bv))
        att = self.dropout(torch.softmax(qh @ kh.transpose(-1, -2) + mask, dim=-1))
        return self.out_proj((att @ vh).transpose(1, 2).reshape(b, lq, d))


def neighbour_mask(h: int, w: int, size: int) -> torch.Tensor:
    """Additive (L, L) mask hiding each query's size x size neighbourhood (itself included)."""
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    ys, xs = ys.flatten(), xs.flatten()
    r = size // 2
    near = ((ys[:, None] - ys[None, :]).abs() <= r) & ((xs[:, None] - xs[None, :]).abs() <= r)
    return torch.where(near, torch.tensor(MASK_VALUE), torch.tensor(0.0))


class Reconstruction(nn.Module):
    """Features (B, C, H, W) -> their reconstruction (B, C, H, W), plus the balance loss."""

    def __init__(self, channels: int, grid: tuple[int, int], hidden_dim: int, nhead: int, ffn_dim: int,
                 experts: int, top_k: int, rounds: int, neighbour: int, dropout: float,
                 jitter_scale: float, jitter_prob: float):
        super().__init__()
        h, w = grid
        self.grid, self.channels, self.rounds = grid, channels, rounds
        self.jitter_scale, self.jitter_prob = jitter_scale, jitter_prob
        self.input_proj = nn.Linear(channels, hidden_dim)
        self.output_proj = nn.Linear(hidden_dim, channels)
        # Learned positional embedding: token (y, x) gets concat(col_embed[x], row_embed[y]).
        self.row_embed = nn.Embedding(h, hidden_dim // 2)
        self.col_embed = nn.Embedding(w, hidden_dim - hidden_dim // 2)
        self.query_embed = nn.Embedding(h * w, hidden_dim)  # one query embedding shared by all rounds
        self.attn_input = Attention(hidden_dim, nhead, dropout)  # MHA_a: queries attend to the input tokens
        self.attn_prev = Attention(hidden_dim, nhead, dropout)  # MHA_b: attend to the previous round's output
        self.moe1 = MoEFFN(hidden_dim, ffn_dim, experts, top_k, dropout)
        self.moe2 = MoEFFN(hidden_dim, ffn_dim, experts, top_k, dropout)
        self.norms = nn.ModuleList([nn.LayerNorm(hidden_dim) for _ in range(4 * rounds)])
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", neighbour_mask(h, w, neighbour), persistent=False)
        for lin in (self.input_proj, self.output_proj):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        nn.init.uniform_(self.row_embed.weight)
        nn.init.uniform_(self.col_embed.weight)
        nn.init.xavier_uniform_(self.query_embed.weight)

    def position(self) -> torch.Tensor:
        h, w = self.grid
        col = self.col_embed.weight.unsqueeze(0).expand(h, w, -1)
        row = self.row_embed.weight.unsqueeze(1).expand(h, w, -1)
        return torch.cat([col, row], dim=-1).reshape(h * w, -1)

    def jitter(self, tokens: torch.Tensor) -> torch.Tensor:
        if not self.training or self.jitter_scale <= 0 or torch.rand(()) > self.jitter_prob:
            return tokens
        norm = tokens.norm(dim=-1, keepdim=True) / tokens.shape[-1]
        return tokens + torch.randn_like(tokens) * norm * self.jitter_scale

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, h, w = feats.shape
        if (h, w) != self.grid or c != self.channels:
            raise ValueError(f"expected features (B, {self.channels}, {self.grid[0]}, {self.grid[1]}), got {tuple(feats.shape)}")
        tokens = self.jitter(feats.flatten(2).transpose(1, 2))  # (B, L, C), token = y * W + x
        src = self.input_proj(tokens)
        pos = self.position().unsqueeze(0)
        query = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        src_key = src + pos
        shared = None
        out = src
        for i in range(self.rounds):
            # MHA_a sees the same inputs every round; with dropout off its output is the same too.
            if shared is None or self.training:
                shared = self.attn_input(query + pos, src_key, src, self.mask)
            t = self.norms[4 * i](query + self.dropout(shared))
            t = self.norms[4 * i + 1](t + self.dropout(self.attn_prev(t + pos, out + pos, out, self.mask)))
            y, loss1 = self.moe1(t)
            out = self.norms[4 * i + 2](t + self.dropout(y))
            y, loss2 = self.moe2(out)
            out = self.norms[4 * i + 3](out + self.dropout(y))
        # Each gate keeps only its latest loss in the reference, so the last round's routing counts.
        loss = (loss1 + loss2) / 2
        rec = self.output_proj(out).transpose(1, 2).reshape(b, c, h, w)
        return rec, loss
