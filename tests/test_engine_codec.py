"""Specification of bridge.engine.codec: audio <-> a 14 x T token grid at hop 768, chunked or whole."""

import math

import pytest
import torch

from bridge.engine import load_codec

HOP = 768
MASK = 1024


@pytest.fixture(scope="module")
def codec(tiny_models):
    """A private copy (tests change chunk_frames), with random tiny weights."""
    return load_codec(tiny_models / "codec.pth").prepare()


def noise(n_samples, seed=0, level=0.3):
    return torch.randn(1, 1, n_samples, generator=torch.Generator().manual_seed(seed)) * level


@pytest.mark.parametrize("n_samples,n_frames", [(1, 1), (767, 1), (768, 1), (769, 2), (44100, 58)])
def test_encode_gives_ceil_n_over_hop_frames_of_14_codebooks(codec, n_samples, n_frames):
    assert math.ceil(n_samples / HOP) == n_frames
    codes = codec.encode_codes(noise(n_samples))
    assert codes.shape == (1, 14, n_frames)
    assert codes.dtype == torch.long
    assert 0 <= int(codes.min()) and int(codes.max()) < 1024


def test_encode_right_pads_with_silence_to_a_whole_hop(codec):
    audio = noise(1000)
    padded = torch.nn.functional.pad(audio, (0, 2 * HOP - 1000))
    assert torch.equal(codec.encode_codes(audio), codec.encode_codes(padded))


def test_decode_gives_t_times_hop_samples_and_length_trims(codec):
    codes = torch.randint(0, 1024, (2, 14, 9), generator=torch.Generator().manual_seed(1))
    audio = codec.decode_codes(codes)
    assert audio.shape == (2, 1, 9 * HOP)
    assert float(audio.abs().max()) <= 1.0  # tanh output
    trimmed = codec.decode_codes(codes, length=5000)
    assert trimmed.shape == (2, 1, 5000)
    torch.testing.assert_close(trimmed, audio[..., :5000])


def test_chunked_encode_equals_whole_input_encode(codec):
    audio = noise(40 * HOP + 123, seed=2)
    codec.chunk_frames = 10**6
    whole = codec.encode_codes(audio)
    try:
        codec.chunk_frames = 7
        chunked = codec.encode_codes(audio)
    finally:
        codec.chunk_frames = 10**6
    assert whole.shape == chunked.shape == (1, 14, 41)
    assert torch.equal(whole, chunked)


def test_chunked_decode_equals_whole_input_decode(tiny_models):
    # In float64, so that rounding (which the random decoder amplifies to about 4e-3 in float32,
    # chunked or not) cannot hide a chunking error: the context margins make chunking exact.
    codec = load_codec(tiny_models / "codec.pth").double().prepare()
    codes = torch.randint(0, 1024, (1, 14, 45), generator=torch.Generator().manual_seed(3))
    codec.chunk_frames = 10**6
    whole = codec.decode_codes(codes)
    codec.chunk_frames = 7
    chunked = codec.decode_codes(codes)
    assert whole.shape == chunked.shape == (1, 1, 45 * HOP)
    assert float(whole.abs().max()) > 1e-3  # not trivially silent
    torch.testing.assert_close(chunked, whole, atol=1e-9, rtol=0)


def test_requantizing_looked_up_codebook_rows_gives_back_the_codes(codec):
    codes = torch.randint(0, 1024, (2, 14, 12), generator=torch.Generator().manual_seed(4))
    rows = torch.cat([q.codebook(codes[:, i]).transpose(1, 2)  # (B, 8, T) raw rows of level i
                      for i, q in enumerate(codec.quantizer.quantizers)], dim=1)  # (B, 14 * 8, T)
    assert torch.equal(codec.quantizer.requantize(rows), codes)


def test_decoding_uses_out_proj_of_the_raw_codebook_rows_summed_over_levels(codec):
    codes = torch.randint(0, 1024, (1, 14, 5), generator=torch.Generator().manual_seed(5))
    expected = 0
    for i, q in enumerate(codec.quantizer.quantizers):
        expected = expected + q.out_proj(q.codebook(codes[:, i]).transpose(1, 2))  # (1, latent, T)
    torch.testing.assert_close(codec.latents_from_codes(codes), expected, atol=1e-5, rtol=1e-5)


def test_encode_picks_the_nearest_codebook_row_by_cosine_similarity(codec):
    """Level 0's code is the argmax of cos(in_proj(latent), codebook row)."""
    audio = noise(6 * HOP, seed=6)
    latents = codec.encoder(audio)  # (1, latent, 6)
    q = codec.quantizer.quantizers[0]
    projected = q.in_proj(latents)[0].T  # (6, 8)
    cosine = torch.nn.functional.cosine_similarity(projected[:, None, :], q.codebook.weight[None], dim=-1)
    assert torch.equal(codec.encode_codes(audio)[0, 0], cosine.argmax(dim=-1))


def test_decode_codes_silences_frames_where_every_codebook_is_mask(tiny_interface):
    codes = torch.randint(0, 1024, (1, 14, 10), generator=torch.Generator().manual_seed(7))
    codes[:, :, 3:6] = MASK  # frames 3, 4, 5 fully masked
    audio = tiny_interface.decode_codes(codes)
    assert audio.shape == (1, 1, 10 * HOP)
    assert torch.all(audio[..., 3 * HOP:6 * HOP] == 0)
    assert float(audio[..., :3 * HOP].abs().max()) > 0 and float(audio[..., 6 * HOP:].abs().max()) > 0


def test_decode_codes_treats_a_partly_masked_frame_as_code_0(tiny_interface):
    codes = torch.randint(0, 1024, (1, 14, 6), generator=torch.Generator().manual_seed(8))
    partly = codes.clone()
    partly[:, 5:, 2] = MASK  # only the upper codebooks of frame 2
    zeros = codes.clone()
    zeros[:, 5:, 2] = 0
    out = tiny_interface.decode_codes(partly)
    assert float(out[..., 2 * HOP:3 * HOP].abs().max()) > 0  # not silenced
    torch.testing.assert_close(out, tiny_interface.decode_codes(zeros))
    assert tiny_interface.decode_codes(partly, length=1000).shape == (1, 1, 1000)
