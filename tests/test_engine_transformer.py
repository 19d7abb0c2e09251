"""Specification of bridge.engine.transformer against the spec's forward pass, written out plainly here."""

import math

import pytest
import torch

from bridge.engine.transformer import TransformerConfig, VampNetTransformer, relative_position_buckets

MASK = 1024


# --- relative position buckets -------------------------------------------------------------------
# Rule (spec): rel = key - query; 16 buckets per direction, +16 when rel > 0; n = |rel|;
# n < 8 -> n, else 8 + floor(log(n / 8) / log(128 / 8) * 8), capped at 15.
BUCKETS_BY_HAND = [
    (0, 0),  # n = 0
    (-1, 1),  # n = 1 < 8
    (1, 17),  # 16 + 1
    (-7, 7),  # n = 7 < 8
    (-8, 8),  # 8 + floor(log(1) / log(16) * 8) = 8 + 0
    (-11, 8),  # log(11/8) / log(16) * 8 = 0.3185 / 2.7726 * 8 = 0.919 -> 8 + 0
    (-12, 9),  # log(1.5) / log(16) * 8 = 0.4055 / 2.7726 * 8 = 1.170 -> 8 + 1
    (-15, 9),  # log(1.875) / log(16) * 8 = 0.6286 / 2.7726 * 8 = 1.814 -> 8 + 1
    (-16, 10),  # log(2) / log(16) * 8 = 8 / 4 = 2 -> 8 + 2
    (-23, 11),  # log(2.875) / log(16) * 8 = 1.0561 / 2.7726 * 8 = 3.047 -> 8 + 3
    (-32, 12),  # log(4) / log(16) * 8 = 4 -> 8 + 4
    (-45, 12),  # log(5.625) / log(16) * 8 = 1.7272 / 2.7726 * 8 = 4.984 -> 8 + 4
    (-46, 13),  # log(5.75) / log(16) * 8 = 1.7492 / 2.7726 * 8 = 5.047 -> 8 + 5
    (-64, 14),  # log(8) / log(16) * 8 = 6 -> 8 + 6
    (-100, 15),  # log(12.5) / log(16) * 8 = 2.5257 / 2.7726 * 8 = 7.288 -> 8 + 7
    (-128, 15),  # log(16) / log(16) * 8 = 8 -> 16, capped at 15
    (-140, 15),  # beyond 128: capped at 15
    (3, 19),  # 16 + 3
    (8, 24),  # 16 + 8 + 0
    (12, 25),  # 16 + 9 (as -12)
    (100, 31),  # 16 + 15 (as -100)
    (140, 31),  # 16 + 15, capped
]


def test_relative_position_buckets_follow_the_t5_rule_computed_by_hand():
    buckets = relative_position_buckets(300)  # (query, key)
    query = 150
    got = [(rel, int(buckets[query, query + rel])) for rel, _ in BUCKETS_BY_HAND]
    assert got == BUCKETS_BY_HAND


def test_relative_position_buckets_depend_only_on_key_minus_query():
    buckets = relative_position_buckets(40)
    assert buckets.shape == (40, 40)
    for q, k in ((0, 5), (10, 15), (34, 39)):
        assert buckets[q, k] == buckets[0, 5] == 21  # rel = +5: 16 + 5
    assert buckets[5, 0] == buckets[39, 34] == 5
    assert (buckets.diagonal() == 0).all()


# --- the forward pass, from the spec, the obvious way --------------------------------------------


def hand_bucket(rel: int) -> int:
    """The spec's bucket rule in exact integer arithmetic: floor(8 * log16(n / 8)) >= j <=> n^2 >= 64 * 2^j."""
    offset = 16 if rel > 0 else 0
    n = abs(rel)
    if n < 8:
        return offset + n
    j = max(j for j in range(8) if n * n >= 64 * 2**j) if n < 128 else 7
    return offset + 8 + j


def rms_norm(x, weight):
    return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6) * weight


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))


def spec_logits(model, codec_codebooks, codes):
    """(B, C, T) codes -> (B, vocab, T * n_predict) logits, straight from the spec's description."""
    p = {k: v.double() for k, v in model.state_dict().items()}
    cfg = model.config
    B, C, T = codes.shape
    d, H = cfg.embedding_dim, cfg.n_heads
    dh = d // H
    # 1. embedding: codec codebook i plus the MASK row, 8-d vectors concatenated codebook-major
    vectors = []
    for i in range(C):
        table = torch.cat([codec_codebooks[i].double(), p["embedding.special.MASK"][i][None]])  # (1025, 8)
        vectors.append(table[codes[:, i]].transpose(1, 2))  # (B, 8, T)
    x = torch.cat(vectors, dim=1)  # (B, 8C, T)
    x = torch.nn.functional.conv1d(x, p["embedding.out_proj.weight"], p["embedding.out_proj.bias"])  # (B, d, T)
    x = x.transpose(1, 2)  # (B, T, d)
    # relative position bias from layer 0's table, shared by every layer
    table = p["transformer.layers.0.self_attn.relative_attention_bias.weight"]  # (32, H)
    bias = torch.zeros(H, T, T, dtype=torch.float64)
    for q in range(T):
        for k in range(T):
            bias[:, q, k] = table[hand_bucket(k - q)]
    for layer in range(cfg.n_layers):
        w = {k[len(f"transformer.layers.{layer}."):]: v for k, v in p.items()
             if k.startswith(f"transformer.layers.{layer}.")}
        h = rms_norm(x, w["norm_1.weight"])
        q = (h @ w["self_attn.w_qs.weight"].T).view(B, T, H, dh).permute(0, 2, 1, 3)  # (B, H, T, dh)
        k = (h @ w["self_attn.w_ks.weight"].T).view(B, T, H, dh).permute(0, 2, 1, 3)
        v = (h @ w["self_attn.w_vs.weight"].T).view(B, T, H, dh).permute(0, 2, 1, 3)
        scores = q @ k.transpose(-1, -2) / math.sqrt(dh) + bias[None]  # (B, H, T, T)
        weights = torch.exp(scores - scores.amax(dim=-1, keepdim=True))
        weights = weights / weights.sum(dim=-1, keepdim=True)
        y = (weights @ v).permute(0, 2, 1, 3).reshape(B, T, d)
        x = x + y @ w["self_attn.fc.weight"].T
        h = rms_norm(x, w["norm_3.weight"])
        u = h @ w["feed_forward.w_1.weight"].T  # (B, T, 4d)
        a, b = u[..., : 2 * d], u[..., 2 * d:]
        x = x + (a * gelu_tanh(b)) @ w["feed_forward.w_2.weight"].T
    x = rms_norm(x, p["transformer.norm.weight"])
    # head: 1x1 conv, output channel = vocab_index * n_predict + codebook
    n_p = cfg.n_codebooks - cfg.n_conditioning_codebooks
    out = torch.nn.functional.conv1d(x.transpose(1, 2), p["classifier.layers.0.weight"],
                                     p["classifier.layers.0.bias"])  # (B, vocab * n_p, T)
    out = out.view(B, cfg.vocab_size, n_p, T)  # [b, v, c, t]
    return out.permute(0, 1, 3, 2).reshape(B, cfg.vocab_size, T * n_p)  # flat position t * n_p + c


def random_model(n_codebooks, n_conditioning, seed):
    """A small transformer with every parameter random: norms, biases and the MASK rows too."""
    model = VampNetTransformer(TransformerConfig(n_codebooks=n_codebooks, n_conditioning_codebooks=n_conditioning,
                                                 n_layers=2, n_heads=4, embedding_dim=32))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            scale = 1.0 if "relative_attention_bias" in name or "MASK" in name else 0.3
            param.copy_(torch.randn(param.shape, generator=g) * scale + (1.0 if name.endswith("norm_1.weight") else 0))
    return model.eval()


def random_codes(B, C, T, seed, mask_fraction=0.3):
    g = torch.Generator().manual_seed(seed)
    codes = torch.randint(0, 1024, (B, C, T), generator=g)
    return codes.masked_fill(torch.rand(B, C, T, generator=g) < mask_fraction, MASK)


@pytest.mark.parametrize("n_codebooks,n_conditioning,T", [(4, 0, 13), (14, 4, 9), (4, 0, 140)])
def test_forward_equals_the_spec_written_out_plainly(tiny_interface, n_codebooks, n_conditioning, T):
    codebooks = [q.codebook.weight for q in tiny_interface.codec.quantizer.quantizers]
    model = random_model(n_codebooks, n_conditioning, seed=T).prepare(codebooks)
    codes = random_codes(2, n_codebooks, T, seed=T)
    codes[:, n_conditioning:, 3] = MASK  # a frame fully masked in the predicted codebooks
    expected = spec_logits(model, codebooks, codes)
    with torch.inference_mode():
        got = model(codes)
    n_p = n_codebooks - n_conditioning
    assert got.shape == (2, 1024, T * n_p)
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-4)


def test_cell_logits_are_the_flat_layout_regrouped_by_codebook(tiny_interface):
    codebooks = [q.codebook.weight for q in tiny_interface.codec.quantizer.quantizers]
    model = random_model(14, 4, seed=7).prepare(codebooks)
    codes = random_codes(2, 14, 11, seed=7)
    expected = spec_logits(model, codebooks, codes)  # (B, vocab, T * 10), flat t * 10 + c
    with torch.inference_mode():
        got = model.cell_logits(model.hidden(codes))  # (B, 10, T, vocab)
    assert got.shape == (2, 10, 11, 1024) and got.dtype == torch.float32
    torch.testing.assert_close(got.double(), expected.view(2, 1024, 11, 10).permute(0, 3, 2, 1),
                               atol=1e-4, rtol=1e-4)


def test_cell_logits_of_a_batch_row_equal_the_single_row(tiny_interface):
    codebooks = [q.codebook.weight for q in tiny_interface.codec.quantizer.quantizers]
    model = random_model(14, 4, seed=8).prepare(codebooks)
    codes = random_codes(3, 14, 40, seed=8)
    with torch.inference_mode():
        batch = model.cell_logits(model.hidden(codes))
        for k in range(3):
            assert torch.equal(batch[k:k + 1], model.cell_logits(model.hidden(codes[k:k + 1])))


def test_mask_vector_and_conditioning_codes_both_reach_the_logits(tiny_interface):
    codebooks = [q.codebook.weight for q in tiny_interface.codec.quantizer.quantizers]
    model = random_model(14, 4, seed=3).prepare(codebooks)
    codes = random_codes(1, 14, 6, seed=3, mask_fraction=0.0)
    changed = codes.clone()
    changed[0, 2, 1] = (codes[0, 2, 1] + 1) % 1024  # a conditioning codebook
    masked = codes.clone()
    masked[0, 9, 4] = MASK
    with torch.inference_mode():
        base = model(codes)
        assert not torch.allclose(base, model(changed))
        assert not torch.allclose(base, model(masked))
