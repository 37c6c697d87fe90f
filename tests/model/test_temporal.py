import pytest
import torch

from model.temporal import (
    AdaptiveTemporalPooling,
    BasicTemporalAttention,
    EnhancedTemporalFusion,
    HierarchicalTemporalAttention,
    Known,
    MultiScaleTemporalAttention,
    TemporalFeatureFusion,
    make_temporal,
    skip_plan,
    temporal_mask,
)
from model.temporal.attention import NoTemporal, PooledTemporal, fit_heads, to_tokens

MODULES = {
    "basic": lambda c: BasicTemporalAttention(c, 4, 16, causal=True),
    "multiscale": lambda c: MultiScaleTemporalAttention(c, 4, 16, causal=True),
    "hierarchical": lambda c: HierarchicalTemporalAttention(c, 4, 16, causal=True),
    "adaptive": lambda c: AdaptiveTemporalPooling(c, 16, causal=True),
    "enhanced": lambda c: EnhancedTemporalFusion(c, 4, 16, causal=True),
    "pooled": lambda c: PooledTemporal(BasicTemporalAttention(c, 4, 16, causal=True), 2),
}


def test_masks():
    m = temporal_mask(5, causal=True)
    assert torch.equal(m, torch.ones(5, 5, dtype=torch.bool).tril())
    d2 = temporal_mask(5, causal=True, dilation=2)
    assert d2[4].tolist() == [True, False, True, False, True]
    w = temporal_mask(6, causal=False, window=2)
    assert w[3].tolist() == [False, False, True, True, True, False]
    assert temporal_mask(16, causal=True, window=4, dilation=4).diagonal().all()


def test_heads_fit_the_channels():
    assert fit_heads(16, 4) == 1 and fit_heads(64, 4) == 4 and fit_heads(100, 4) == 4 and fit_heads(48, 4) == 3


@pytest.mark.parametrize("name", sorted(MODULES))
def test_shape_and_causality(name):
    module = MODULES[name](32).eval()
    x = torch.randn(2, 16, 32, 4, 6)
    y = module(x)
    assert y.shape == x.shape
    x2 = x.clone()
    x2[:, 9:] = torch.randn_like(x2[:, 9:])  # change the future of frame 8
    y2 = module(x2)
    assert torch.allclose(y[:, :9], y2[:, :9], atol=1e-5), "a causal module must not see later frames"
    assert not torch.allclose(y[:, 9:], y2[:, 9:])


def test_non_causal_attention_sees_the_future():
    module = BasicTemporalAttention(16, 4, 8, causal=False).eval()
    x = torch.randn(1, 8, 16, 2, 2)
    x2 = x.clone()
    x2[:, -1] = torch.randn_like(x2[:, -1])
    assert not torch.allclose(module(x)[:, 0], module(x2)[:, 0])


def test_attention_probabilities_are_recorded_while_training_only():
    module = HierarchicalTemporalAttention(16, 4, 8, causal=True)
    module(torch.randn(1, 8, 16, 2, 2))
    maps = module.attention_maps()
    assert len(maps) == 2 and all(torch.allclose(m.sum(-1), torch.ones(())) for m in maps)
    assert maps[0][..., 0, 1:].abs().max() == 0  # causal: the first frame attends only itself
    module.eval()
    module(torch.randn(1, 8, 16, 2, 2))
    assert module.attention_maps() == []


def test_input_fusion_adds_causal_motion_channels():
    fusion = TemporalFeatureFusion(3, 16, causal=True)
    x = torch.randn(2, 16, 3, 5, 7)
    y = fusion(x)
    assert y.shape == (2, 16, 9, 5, 7) and torch.equal(y[:, :, :3], x)
    x2 = x.clone()
    x2[:, 10] += 1
    assert torch.allclose(fusion(x2)[:, :10], y[:, :10])
    # the banded convolution equals the direct sum over the k previous frames
    idx = (torch.arange(16)[:, None] + torch.arange(3) - 2).clamp(0, 15)
    ref = torch.einsum("btkchw,ekc->btehw", x[:, idx], fusion.weight) + fusion.bias[:, None, None]
    assert torch.allclose(y[:, :, 3:], ref, atol=1e-5)


def test_plans():
    assert skip_plan("full", 5) == ["multiscale", "hierarchical", "hierarchical", "hierarchical", "enhanced"]
    assert skip_plan("coarse", 5) == ["none", "hierarchical", "hierarchical", "hierarchical", "enhanced"]
    assert skip_plan("basic", 3) == ["basic"] * 3
    assert isinstance(make_temporal("none", 8, 4, 16, True), NoTemporal)
    assert isinstance(make_temporal("basic", 8, 4, 16, True, grid=(64, 96)), PooledTemporal)
    assert isinstance(make_temporal("basic", 8, 4, 16, True, grid=(32, 48)), BasicTemporalAttention)
    with pytest.raises(ValueError):
        make_temporal("lstm", 8, 4, 16, True)


@pytest.mark.parametrize("dilation", [1, 2, 4])
def test_one_query_frame_over_frames_first_keys_equals_attention_over_the_window(dilation):
    """attend_latest, as a stream's frame reads its keys and values in place (frames first, in parts, without the
    position code), gives the update of the window's last frame."""
    from model.temporal.attention import TemporalSelfAttention

    torch.manual_seed(4)
    attn = TemporalSelfAttention(32, 2, 16).eval()
    torch.nn.init.normal_(attn.pos, std=0.5)  # a position code that matters
    x = torch.randn(6, 16, 32)  # two sequences of 3 tokens
    mask = temporal_mask(16, causal=True, dilation=dilation)
    kv = attn.frame_kv(x).transpose(0, 1)  # (T, N, 2C), frames first
    h = attn.heads
    past_new = Known(*((c[0][:-1], c[0][-1:]) for c in Known.of(kv, h)))  # a stream's past and its new frame
    with torch.no_grad():
        full = attn(x, mask)[:, -1:]
        parts = attn(x[:, -1:], mask, last=1, kv=[Known.of(kv[:, :3], h), Known.of(kv[:, 3:], h)])  # the last frame
        chunks = attn(x[:, -1:], mask, last=1, kv=[past_new])
        several = attn(x[:, -3:], mask, last=3, kv=[Known.of(kv, h)])  # the general path over the same keys and values
        several_chunks = attn(x[:, -3:], mask, last=3, kv=[past_new])
    assert torch.allclose(parts, full, atol=1e-5)
    assert torch.allclose(chunks, full, atol=1e-5)
    assert torch.allclose(several, attn(x, mask)[:, -3:], atol=1e-5)
    assert torch.allclose(several_chunks, several, atol=1e-6)
    with pytest.raises(ValueError, match="keys and values"):
        attn(x[:, -1:], mask, last=1)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_given_the_keys_and_values_reads_only_the_frames_it_says(name):
    """frames_read: with every attention block's keys and values, the last frames it names give the window's last
    output, and a frame before them changes nothing."""
    torch.manual_seed(6)
    module = MODULES[name](32).eval()
    x = torch.randn(1, 16, 32, 4, 6)
    grid = module.token_grid(x)
    kv = {b: [Known.of(b.frame_kv(to_tokens(grid)).transpose(0, 1), b.heads)] for b in module.attentions()}
    n = module.frames_read(1, 16)
    with torch.no_grad():
        y = module(x[:, 16 - n:], last=1, kv=kv)
        assert torch.allclose(y, module(x)[:, -1:], atol=1e-5)
    assert n == {"enhanced": 3, "adaptive": 16}.get(name, 1)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_block_given_only_the_frames_its_last_query_sees_gives_the_same_output(name):
    """key_spans: each attention block given the keys and values of only its span's last frames (a stream keeps no
    more) gives the window's last output."""
    torch.manual_seed(7)
    module = MODULES[name](32).eval()
    x = torch.randn(1, 16, 32, 4, 6)
    grid = module.token_grid(x)
    spans = module.key_spans(16)
    kv = {b: [Known.of(b.frame_kv(to_tokens(grid)).transpose(0, 1)[16 - spans[b]:], b.heads)]
          for b in module.attentions()}
    with torch.no_grad():
        y = module(x[:, 16 - module.frames_read(1, 16):], last=1, kv=kv)
        assert torch.allclose(y, module(x)[:, -1:], atol=1e-5)
    expected = {b: 16 for b in module.attentions()}
    if name == "hierarchical":
        expected[module.seq_attn] = 4  # its sequence level sees the last 4 frames
    assert spans == expected


def test_a_block_given_fewer_frames_than_its_query_sees_is_refused():
    from model.temporal.attention import TemporalSelfAttention

    attn = TemporalSelfAttention(32, 2, 16).eval()
    x = torch.randn(3, 16, 32)
    kv = attn.frame_kv(x).transpose(0, 1)[12:]  # the last 4 frames' keys and values
    with torch.no_grad():
        attn(x[:, -1:], temporal_mask(16, causal=True, window=4), last=1, kv=[Known.of(kv, attn.heads)])
        with pytest.raises(ValueError, match="start at frame 12"):
            attn(x[:, -1:], temporal_mask(16, causal=True), last=1, kv=[Known.of(kv, attn.heads)])
