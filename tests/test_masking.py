"""The shared masking mechanism: Eq. 4's gradient, exact sparsity, and a base that never moves."""

from __future__ import annotations

import pytest
import torch

from prune_cli.backbone import base_weights_hash, load_backbone
from prune_cli.masking import (MaskedEncoder, StepBuffers, keep_top, multi_tensor_masking, select_maskable, sparsity, theta_masked_weight,
                               theta_masked_weights)

INCLUDE = [r"^embeddings\.\w+_embeddings\.weight$", r"^encoder\..*\.weight$"]
EXCLUDE = ["LayerNorm", r"\.bias$"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    encoder, tokenizer = load_backbone({"name_or_path": str(tiny_model_dir)})
    return MaskedEncoder(encoder, select_maskable(encoder, INCLUDE, EXCLUDE)), tokenizer


def test_default_patterns_select_embeddings_and_linear_weights_only(tiny):
    masked, _ = tiny
    names = masked.maskable
    assert "embeddings.word_embeddings.weight" in names
    assert "encoder.layer.0.attention.self.query.weight" in names
    assert "encoder.layer.1.output.dense.weight" in names
    assert not [n for n in names if "LayerNorm" in n or n.endswith(".bias") or n.startswith("pooler")]
    linear = [n for n, m in masked.encoder.encoder.named_modules() if isinstance(m, torch.nn.Linear)]
    assert len([n for n in names if n.startswith("encoder.")]) == len(linear)


def test_patterns_that_select_nothing_say_which_list_is_to_blame(tiny):
    """An include that matches nothing, and an exclude that removes all it matched, are two
    mistakes; the error names the list that made the selection empty."""
    from prune_cli.errors import UserError

    encoder = tiny[0].encoder
    with pytest.raises(UserError, match=r"^mask.include=\['nomatch'\] matches no weight matrix of this model"):
        select_maskable(encoder, ["nomatch"], [])
    with pytest.raises(UserError, match=r"^mask.exclude=\['\.\*'\] removes every weight matrix mask.include=.* matches; nothing would be masked"):
        select_maskable(encoder, INCLUDE, [".*"])


@pytest.mark.parametrize("reuse_memory", [False, True])
@pytest.mark.parametrize("t_small", [1.0, 0.3])
def test_theta_gradient_is_eq4(tiny, t_small: float, reuse_memory: bool):
    """grad_theta must equal grad_m * t_s * sigma(t_s theta) * (1 - sigma(t_s theta)), also when
    the weight and gradient live in StepBuffers (then over two steps: the memory is reused)."""
    masked, tokenizer = tiny
    batch = dict(tokenizer(["the film is good .", "the plot is dull ."], padding=True, return_tensors="pt"))
    torch.manual_seed(1)
    names = masked.maskable
    theta = {n: (torch.randn(masked.shapes[n]) * 0.01 + 0.005).requires_grad_() for n in names}
    base = masked.base_weights()
    buffers = {n: StepBuffers.like(theta[n], base[n]) if reuse_memory else None for n in names}
    for _ in range(2 if reuse_memory else 1):
        for t in theta.values():
            t.grad = None
        weights = {n: theta_masked_weight(base[n], theta[n], 1e5, t_small, buffers[n]) for n in names}
        out = masked(batch, weights)[-1].sum()
        out.backward()
    if reuse_memory:
        assert all(theta[n].grad.data_ptr() == buffers[n].grad.data_ptr() for n in names)

    # The same loss with the (hard) mask as a leaf tensor gives grad_m directly.
    hard = {n: torch.sigmoid(theta[n].detach() * 1e5).requires_grad_() for n in names}
    masked(batch, {n: base[n] * hard[n] for n in names})[-1].sum().backward()
    for n in names:
        soft = torch.sigmoid(t_small * theta[n].detach())
        expected = hard[n].grad * t_small * soft * (1 - soft)
        torch.testing.assert_close(theta[n].grad, expected, rtol=1e-5, atol=1e-10)
    assert any(theta[n].grad.abs().sum() > 0 for n in names)


@pytest.mark.parametrize("t_small", [1.0, 0.3])
def test_multi_tensor_weights_equal_the_per_weight_ones_to_the_bit(tiny, t_small: float):
    """The GPU path (every weight in multi-tensor kernels, one autograd node) must give the same
    effective weights and theta gradients as one `theta_masked_weight` per weight, bit for bit; a
    weight the loss never reads gets no gradient on either path."""
    masked, tokenizer = tiny
    batch = dict(tokenizer(["the film is good .", "the plot is dull ."], padding=True, return_tensors="pt"))
    torch.manual_seed(2)
    names = masked.maskable
    base = masked.base_weights()
    start = {n: torch.randn(masked.shapes[n]) * 0.01 + 0.002 for n in names}
    unread = names[-1]  # its effective weight is left out of the forward pass below
    results = []
    for multi in (False, True):
        theta = {n: start[n].clone().requires_grad_() for n in names}
        if multi:
            weights = dict(zip(names, theta_masked_weights([base[n] for n in names], [theta[n] for n in names], 1e5, t_small)))
        else:
            weights = {n: theta_masked_weight(base[n], theta[n], 1e5, t_small) for n in names}
        read = {n: w for n, w in weights.items() if n != unread}
        masked(batch, read)[-1].sum().backward()
        results.append(({n: w.detach() for n, w in weights.items()}, {n: theta[n].grad for n in names}))
    (weights_a, grads_a), (weights_b, grads_b) = results
    assert grads_a[unread] is None and grads_b[unread] is None
    for n in names:
        assert torch.equal(weights_a[n], weights_b[n])
        if n != unread:
            assert torch.equal(grads_a[n].view(torch.int32), grads_b[n].view(torch.int32)), n
    assert any(grads_a[n].abs().sum() > 0 for n in names if n != unread)


def test_multi_tensor_masking_is_the_default_off_the_cpu_and_can_be_forced(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("PRUNE_CLI_MULTI_TENSOR", raising=False)
    assert not multi_tensor_masking(torch.device("cpu"))
    assert multi_tensor_masking(torch.device("cuda"))
    assert multi_tensor_masking(torch.device("mps"))
    monkeypatch.setenv("PRUNE_CLI_MULTI_TENSOR", "1")
    assert multi_tensor_masking(torch.device("cpu"))
    monkeypatch.setenv("PRUNE_CLI_MULTI_TENSOR", "0")
    assert not multi_tensor_masking(torch.device("cuda"))


def test_forward_mask_is_a_step_for_large_t():
    theta = torch.tensor([-0.01, -1e-3, 1e-3, 0.02])
    base = torch.tensor([2.0, 3.0, 5.0, 7.0])
    assert theta_masked_weight(base, theta, 1e5, 1.0).tolist() == [0.0, 0.0, 5.0, 7.0]


@pytest.mark.parametrize("target", [0.0, 0.2, 0.5, 0.9, 0.999])
def test_keep_top_prunes_exactly_the_requested_share(target: float):
    torch.manual_seed(0)
    scores = {"a": torch.randn(37, 11), "b": torch.randn(5, 3), "c": torch.zeros(7, 7)}  # ties in c
    masks = keep_top(scores, target)
    total = sum(s.numel() for s in scores.values())
    assert sum(int((~m).sum()) for m in masks.values()) == round(target * total)
    assert abs(sparsity(masks) - target) <= 0.5 / total
    kept = torch.cat([scores[n][masks[n]] for n in scores])
    pruned = torch.cat([scores[n][~masks[n]] for n in scores])
    if len(kept) and len(pruned):
        assert pruned.max() <= kept.min()


def test_masked_forward_leaves_the_base_untouched_and_matches_baking(tiny):
    masked, tokenizer = tiny
    batch = dict(tokenizer(["the cast is great ."], return_tensors="pt"))
    before = base_weights_hash(masked.encoder)
    torch.manual_seed(2)
    masks = {n: torch.rand(masked.shapes[n]) > 0.5 for n in masked.maskable}
    swapped = masked(batch, masked.masked_weights(masks))[-1]
    assert base_weights_hash(masked.encoder) == before

    import copy

    baked = copy.deepcopy(masked.encoder)
    with torch.no_grad():
        for n in masked.maskable:
            baked.get_parameter(n).mul_(masks[n])
    reference = baked(**batch, output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(swapped, reference)
    assert not torch.allclose(swapped, masked(batch)[-1])


def test_fixed_weights_match_per_call_swap_and_are_restored(tiny):
    masked, tokenizer = tiny
    batch = dict(tokenizer(["the plot is grim ."], return_tensors="pt"))
    before = base_weights_hash(masked.encoder)
    masks = {n: torch.rand(masked.shapes[n], generator=torch.Generator().manual_seed(5)) > 0.3 for n in masked.maskable}
    weights = masked.masked_weights(masks)
    per_call = masked(batch, weights)[-1]
    with masked.fixed(weights):
        installed = masked(batch)[-1]
        assert base_weights_hash(masked.encoder) != before
    assert torch.equal(per_call, installed)
    assert base_weights_hash(masked.encoder) == before
    assert all(not p.requires_grad for p in masked.encoder.parameters())


def test_mean_pooling_head_ignores_padding_and_differs_from_cls():
    """A row's output must not depend on how far its batch is padded; [CLS] and mean pooling differ."""
    from prune_cli.head import LayerMixHead

    torch.manual_seed(0)
    states = tuple(torch.randn(2, 5, 8) for _ in range(3))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    mean_head, cls_head = LayerMixHead(8, 3, 2, pooling="mean"), LayerMixHead(8, 3, 2, pooling="cls")
    cls_head.load_state_dict(mean_head.state_dict())
    padded = mean_head(states, mask)
    alone = mean_head(tuple(s[:1, :3] for s in states), mask[:1, :3])
    torch.testing.assert_close(padded[:1], alone)
    assert not torch.allclose(padded, cls_head(states, mask))
    with pytest.raises(ValueError, match="pooling"):
        LayerMixHead(8, 3, 2, pooling="max")


def test_clamped_mask_argument_leaves_every_mask_bit_identical():
    """The forward pass clamps t_l * theta to [SIGMOID_ZERO_AT, SIGMOID_ONE_AT] for speed; that is
    only allowed because sigmoid is already exactly 0 / 1 beyond those bounds on this machine's
    kernels. Swept here: every 31st float32 with 8 <= |x| < 1024 (where the saturation starts,
    subnormal outputs included), the bounds' neighbours, and the extremes."""
    from prune_cli.masking import SIGMOID_ONE_AT, SIGMOID_ZERO_AT

    def bits_of(value: float) -> int:
        return int(torch.tensor([value], dtype=torch.float32).view(torch.int32))

    positive = torch.arange(bits_of(8.0), bits_of(1024.0), 31, dtype=torch.int32).view(torch.float32)
    edges = torch.tensor([SIGMOID_ZERO_AT, SIGMOID_ONE_AT])
    neighbours = torch.cat([torch.nextafter(edges, torch.tensor(float("inf"))), torch.nextafter(edges, torch.tensor(-float("inf")))])
    extremes = torch.tensor([float("inf"), -float("inf"), 3.4e38, -3.4e38, 1e5, -1e5, 0.0, -0.0, 1e-3, -1e-3])
    x = torch.cat([positive, -positive, edges, neighbours, extremes])
    theta = x / 1e5
    expected = torch.sigmoid(theta * 1e5)
    got = theta_masked_weight(torch.ones_like(theta), theta, 1e5, 1.0)
    assert torch.equal(got.view(torch.int32), expected.view(torch.int32))
    assert float(torch.sigmoid(torch.tensor(SIGMOID_ZERO_AT))) == 0.0
    assert float(torch.sigmoid(torch.tensor(SIGMOID_ONE_AT))) == 1.0
    assert bool(((expected > 0) & (expected < 1)).any()), "the sweep must cross the unsaturated band"


def test_dropout_is_on_only_inside_the_block(tiny):
    masked, tokenizer = tiny
    batch = dict(tokenizer(["the plot is grim ."], return_tensors="pt"))
    with masked.dropout(False):
        assert torch.equal(masked(batch)[-1], masked(batch)[-1])
    torch.manual_seed(3)
    with masked.dropout(True):
        assert masked.encoder.training
        assert not torch.equal(masked(batch)[-1], masked(batch)[-1])  # a fresh dropout draw each pass
    assert not masked.encoder.training and not any(m.training for m in masked.encoder.modules())
    assert torch.equal(masked(batch)[-1], masked(batch)[-1])
