"""MoEAD model: shapes, the paper's parameter count, dense top-2 == sparse top-2, wiring."""
from __future__ import annotations

import torch

import pytest

from moead_edge.model import ConfigError, distance_map, load_config, residual_weights
from moead_edge.model.moead import RELATIVE_FLOOR, RESIDUAL_FLOOR
from moead_edge.model.config import CONFIG_DIR
from moead_edge.model.moe import MoEFFN, balance_loss
from moead_edge.model.reconstruction import MASK_VALUE, Attention, Reconstruction, neighbour_mask


def _reconstruction(name: str) -> Reconstruction:
    cfg = load_config(name)
    channels = {"paper": 272, "edge": 168, "tiny": 120}[name]
    return Reconstruction(channels, cfg.grid, cfg.hidden_dim, cfg.nhead, cfg.ffn_dim, cfg.experts, cfg.top_k,
                          cfg.rounds, cfg.neighbour, cfg.dropout, cfg.jitter_scale, cfg.jitter_prob)


def test_paper_reconstruction_parameter_count() -> None:
    # moead.md §6: 2 MoE x (4 x 525,568 + router 1,028) + 2 MHA x 263,168 + 16 LN x 512
    # + query 196 x 256 + position (14 + 14) x 128 + projections 139,792 = 4,934,680.
    # The reference also carries two unused wrapper LayerNorms (1,024), which are left out here.
    net = _reconstruction("paper")
    assert sum(p.numel() for p in net.parameters()) == 4_934_680
    assert len(net.norms) == 16


def test_shapes_for_every_config() -> None:
    for name, channels in (("paper", 272), ("edge", 168), ("tiny", 120)):
        cfg = load_config(name)
        net = _reconstruction(name).eval()
        x = torch.randn(2, channels, *cfg.grid)
        rec, loss = net(x)
        assert rec.shape == x.shape
        assert loss.shape == ()


def _moe_with_nonzero_biases() -> MoEFFN:
    """A small MoE whose biases are not the zeros of a fresh init, so they take part in the checks."""
    torch.manual_seed(0)
    moe = MoEFFN(dim=32, hidden=48, experts=4, top_k=2, dropout=0.0)
    with torch.no_grad():
        moe.expert_in.bias.normal_()
        moe.expert_out_bias.normal_()
    return moe


def test_dense_top2_equals_sparse_and_a_per_token_loop() -> None:
    moe = _moe_with_nonzero_biases().eval()
    with torch.no_grad():
        x = torch.randn(3, 17, 32)
        dense, _ = moe(x)
        assert torch.equal(dense, moe.dense_forward(x))  # eval runs the dense (exported) form
        sparse = moe.sparse_forward(x)
        # Independent reading of the reference: per token, softmax over the two largest logits.
        loop = torch.zeros_like(x)
        for b in range(3):
            for t in range(17):
                logits = moe.router(x[b, t])
                top = logits.topk(2)
                w = torch.softmax(top.values, 0)
                loop[b, t] = sum(w[j] * moe.expert(int(top.indices[j]), x[b, t]) for j in range(2))
    assert torch.allclose(dense, sparse, atol=1e-5)
    assert torch.allclose(dense, loop, atol=1e-5)
    # Routing really is sparse: zeroing an unselected expert leaves a token's output unchanged.
    _, w = moe.gates(x)
    assert torch.all((w > 0).sum(-1) == 2)


def test_balance_loss_is_cv_squared_of_summed_logits() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.0, -1.0], [3.0, 0.0, 1.0, 1.0]])
    imp = torch.tensor([4.0, 2.0, 1.0, 0.0])
    expected = imp.var(unbiased=True) / (imp.mean() ** 2 + 1e-10)
    assert torch.isclose(balance_loss(logits), expected)


def test_neighbour_mask_hides_the_7x7_neighbourhood_only() -> None:
    m = neighbour_mask(14, 14, 7)
    centre = 7 * 14 + 7
    hidden = (m[centre] == MASK_VALUE).reshape(14, 14)
    assert hidden[4:11, 4:11].all() and hidden.sum() == 49
    corner = (m[0] == MASK_VALUE).reshape(14, 14)
    assert corner[:4, :4].all() and corner.sum() == 16
    assert torch.isfinite(m).all()


def test_attention_equals_torch_multihead_attention() -> None:
    """Written out for the export, with the score scale folded into the query projection,
    the attention is still nn.MultiheadAttention with the same weights and additive mask."""
    torch.manual_seed(0)
    ours = Attention(32, 4, 0.0).eval()
    ref = torch.nn.MultiheadAttention(32, 4, batch_first=True).eval()
    with torch.no_grad():
        ours.in_proj.bias.uniform_(-0.5, 0.5)
        ours.out_proj.bias.uniform_(-0.5, 0.5)
        ref.in_proj_weight.copy_(ours.in_proj.weight)
        ref.in_proj_bias.copy_(ours.in_proj.bias)
        ref.out_proj.load_state_dict(ours.out_proj.state_dict())
    q, k, v = (torch.randn(2, 9, 32) for _ in range(3))
    mask = neighbour_mask(3, 3, 1)
    expected, _ = ref(q, k, v, attn_mask=mask, need_weights=False)
    torch.testing.assert_close(ours(q, k, v, mask), expected, rtol=1e-5, atol=1e-5)


def test_every_round_uses_its_own_four_layernorms() -> None:
    net = _reconstruction("tiny").eval()
    calls: list[int] = []
    for i, ln in enumerate(net.norms):
        ln.register_forward_hook(lambda *_, i=i: calls.append(i))
    net(torch.randn(1, 120, *load_config("tiny").grid))
    assert calls == list(range(4 * net.rounds))


def test_position_embedding_is_column_then_row() -> None:
    net = _reconstruction("tiny")
    pos = net.position()
    h, w = net.grid
    half = net.col_embed.weight.shape[1]
    token = 2 * w + 5  # row 2, column 5
    assert torch.equal(pos[token, :half], net.col_embed.weight[5])
    assert torch.equal(pos[token, half:], net.row_embed.weight[2])


def test_jitter_only_in_training() -> None:
    net = _reconstruction("tiny")
    x = torch.randn(2, 120, *load_config("tiny").grid)
    net.eval()
    a, _ = net(x)
    b, _ = net(x)
    assert torch.equal(a, b)
    tokens = x.flatten(2).transpose(1, 2)
    net.train()
    assert not torch.equal(net.jitter(tokens), tokens)


def test_paper_backbone_taps_through_timm() -> None:
    import dataclasses

    from moead_edge.backbones import build_backbone

    cfg = load_config("paper")
    net = build_backbone(dataclasses.replace(cfg.backbone, pretrained=False))  # no download in tests
    assert net.channels == [24, 32, 56, 160] and sum(net.channels) == 272
    assert net.strides == [2, 4, 8, 16]
    with torch.no_grad():
        taps = net(torch.zeros(1, 3, 224, 224))
    assert [t.shape[-1] for t in taps] == [112, 56, 28, 14]
    assert sum(p.numel() for p in net.parameters()) < 4_000_000  # truncated after the last tap (~3.6 M)


def test_distance_maps_plain_and_relative() -> None:
    feats = torch.tensor([[3.0, 0.0], [4.0, 0.0]]).reshape(1, 2, 1, 2)  # positions (3,4) and (0,0)
    rec = torch.tensor([[0.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    assert distance_map(feats, rec).flatten().tolist() == [5.0, 1.0]
    relative = distance_map(feats, rec, "relative_l2").flatten()
    assert relative[0].item() == pytest.approx(1.0)  # |f - r| / |f| = 5 / 5
    assert torch.isfinite(relative).all()  # an all-zero feature vector does not divide by zero
    with pytest.raises(ValueError, match="unknown distance"):
        distance_map(feats, rec, "cosine")


def test_whitened_distance_weights_each_channel_residual() -> None:
    feats = torch.tensor([[3.0, 0.0], [4.0, 0.0]]).reshape(1, 2, 1, 2)
    rec = torch.tensor([[0.0, 0.0], [0.0, 1.0]]).reshape(1, 2, 1, 2)
    weights = torch.tensor([4.0, 0.25])
    got = distance_map(feats, rec, "whitened_relative_l2", weights).flatten()
    # position 0: sqrt(4 * 3^2 + 0.25 * 4^2) / 5; position 1: sqrt(0.25 * 1^2) over the norm floor
    assert got[0].item() == pytest.approx((4 * 9 + 0.25 * 16) ** 0.5 / 5)
    assert got[1].item() == pytest.approx(0.5 / RELATIVE_FLOOR)
    unweighted = distance_map(feats, rec, "whitened_relative_l2", torch.ones(2))
    assert torch.allclose(unweighted, distance_map(feats, rec, "relative_l2"))
    with pytest.raises(ValueError, match="run `fit` on its work dir again"):
        distance_map(feats, rec, "whitened_relative_l2")


class _OffsetReconstruction(torch.nn.Module):
    """Reconstructs channel c as x + offset[c], and adds jitter in training mode as MoEAD's does."""

    def __init__(self, offsets: list[float]):
        super().__init__()
        self.offsets = torch.tensor(offsets).view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn_like(x) if self.training else 0.0
        return x + self.offsets + noise, x.new_zeros(())


def test_residual_weights_are_inverse_mean_squared_residuals() -> None:
    net = _OffsetReconstruction([2.0, 0.5, 1.0, 0.0, 3.0]).train()
    feats = torch.randn(37, 5, 3, 5)  # not a multiple of the batch, to cover the last partial batch
    weights = residual_weights(net, feats, batch=8)
    # A channel reconstructed exactly is floored at 1e-3 of the median channel's residual (1.0 here).
    expected = [1 / 4.0, 1 / 0.25, 1 / 1.0, 1 / RESIDUAL_FLOOR, 1 / 9.0]
    assert weights.tolist() == pytest.approx(expected, rel=1e-5)
    assert net.training  # measured without jitter, and the module's mode is given back


def test_config_rejects_an_unknown_distance(tmp_path) -> None:
    edge = (CONFIG_DIR / "edge.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text(edge.replace("distance: whitened_relative_l2", "distance: cosine"))
    with pytest.raises(ConfigError, match="distance must be one of l2, relative_l2, whitened_relative_l2"):
        load_config(str(bad))
    assert load_config("edge").distance == "whitened_relative_l2"
    assert load_config("paper").distance == "l2"  # the published map


def test_sparse_training_step_has_the_dense_gradients() -> None:
    """Training runs the sparse form; its loss and every parameter's gradient equal the dense
    form's, so what is trained is what is exported."""
    moe = _moe_with_nonzero_biases().train()
    x = torch.randn(3, 17, 32)
    target = torch.randn(3, 17, 32)

    def grads(forward) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        moe.zero_grad()
        y, balance = forward(x)
        loss = torch.nn.functional.mse_loss(y, target) + 0.01 * balance
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in moe.named_parameters()}

    sparse_loss, sparse = grads(moe)
    dense_loss, dense = grads(lambda t: (moe.dense_forward(t), balance_loss(moe.router(t))))
    assert torch.allclose(sparse_loss, dense_loss, atol=1e-6)
    for name in dense:
        assert torch.allclose(sparse[name], dense[name], atol=1e-6), name
    assert dense["expert_in.weight"].abs().sum() > 0  # the comparison is not between zeros
