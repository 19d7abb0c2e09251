"""Prompts: masks over the token grid that say which tokens to regenerate (1) and which to keep (0).

Every recipe is a function returning a (B, C, T) long tensor of 0/1; recipes combine with
`mask_and` (min) and `mask_or` (max). `MaskRecipe` is the declarative form (plain JSON, the same
for the CLI, OSC and the GUI) and `PRESETS` the named starting points. All randomness comes from
an explicit `torch.Generator`, so a recipe plus a seed always gives the same mask.
"""

import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import torch

SAMPLE_RATE = 44100
HOP_LENGTH = 768


def seconds_to_frames(seconds: float, sample_rate: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH) -> int:
    """ceil(seconds * sample_rate / hop): 10 s -> 575 frames, 3 s -> 173."""
    return math.ceil(seconds * sample_rate / hop_length)


# --- recipes on tensors ---------------------------------------------------------------------------


def full_mask(shape) -> torch.Tensor:
    return torch.ones(shape, dtype=torch.long)


def empty_mask(shape) -> torch.Tensor:
    return torch.zeros(shape, dtype=torch.long)


def mask_and(a, b):
    return torch.minimum(a, b)


def mask_or(a, b):
    return torch.maximum(a, b)


def random_mask(shape, ratio: float, generator=None):
    """Each cell regenerated with probability `ratio` (the reference's `linear_random`)."""
    return torch.bernoulli(torch.full(shape, float(ratio)), generator=generator).long()


def cosine_random_mask(shape, r: float, generator=None):
    """Random mask whose ratio follows the training schedule: cos(pi/2 * r)."""
    return random_mask(shape, math.cos(math.pi / 2 * r), generator)


def inpaint_mask(shape, n_prefix: int, n_suffix: int):
    """Keep the first `n_prefix` and last `n_suffix` frames, regenerate the rest."""
    mask = full_mask(shape)
    T = shape[-1]
    mask[..., :min(n_prefix, T)] = 0
    if n_suffix > 0:
        mask[..., max(0, T - n_suffix):] = 0
    return mask


def periodic_mask(shape, period: int, width_frames: int = 1, offset: int | None = None, generator=None):
    """Keep every `period`-th frame (plus width // 2 frames each side), shifted by `offset` frames.

    `offset=None` draws a random offset in [0, period) like the reference's `random_roll`.
    Period 0 keeps nothing. As in the reference, an even width keeps width + 1 frames.
    """
    mask = full_mask(shape)
    if period <= 0:
        return mask
    T = shape[-1]
    if offset is None:
        offset = int(torch.randint(0, period, (1,), generator=generator))
    half = width_frames // 2
    for center in range(0, T, period):
        mask[..., max(0, center - half):min(T - 1, center + half) + 1] = 0
    return torch.roll(mask, offset, dims=-1)


def strided_mask(shape, stride: int, offset: int = 0):
    """Keep exactly the frames t with (t - offset) % stride == 0; no randomness, no width."""
    mask = full_mask(shape)
    if stride > 0:
        mask[..., offset % stride::stride] = 0
    return mask


def block_mask(shape, start_frame: int, end_frame: int):
    """Regenerate frames [start_frame, end_frame), keep everything else."""
    mask = empty_mask(shape)
    mask[..., max(0, start_frame):max(0, end_frame)] = 1
    return mask


def codebook_mask(mask, first_codebook: int):
    """Regenerate every codebook >= `first_codebook` entirely (the reference's upper_codebook_mask)."""
    mask = mask.clone()
    mask[:, first_codebook:, :] = 1
    return mask


def keep_lowest_codebooks(mask, n: int):
    """Keep the lowest `n` codebooks entirely (the reference's codebook_unmask / ncc)."""
    mask = mask.clone()
    mask[:, :n, :] = 0
    return mask


def compression_mask(shape, n_kept: int):
    """A low-bitrate prompt: keep only the lowest `n_kept` codebooks at every frame."""
    return keep_lowest_codebooks(full_mask(shape), n_kept)


def dropout_mask(mask, p: float, generator=None):
    """Regenerate int(T * p) randomly drawn whole frames (every codebook, drawn with replacement,
    the same frames for every batch item), as the reference's `dropout` does."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout p={p!r} is invalid: must be a fraction from 0 to 1")
    T = mask.shape[-1]
    frames = torch.randint(0, max(T, 1), (int(T * p),), generator=generator)
    mask = mask.clone()
    mask[..., frames.to(mask.device)] = 1
    return mask


def frames_near_events(shape, event_frames, before_frames: int, after_frames: int):
    """Keep frames [e - before, e + after) around each event frame; regenerate the rest."""
    mask = full_mask(shape)
    T = shape[-1]
    for e in event_frames:
        mask[..., max(0, e - before_frames):min(T, e + max(1, after_frames))] = 0
    return mask


# --- onsets and beats (for onset- and beat-driven prompts) -----------------------------------------


def onset_envelope(audio: np.ndarray, hop_length: int = HOP_LENGTH) -> np.ndarray:
    """Spectral flux per token frame of mono audio (n,), half-wave rectified, one value per hop."""
    n_fft = 2048
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    n_frames = max(1, math.ceil(len(audio) / hop_length))
    padded = np.pad(audio, (n_fft // 2, n_fft // 2 + n_frames * hop_length - len(audio)))
    window = np.hanning(n_fft).astype(np.float32)
    starts = np.arange(n_frames) * hop_length
    frames = np.stack([padded[s:s + n_fft] * window for s in starts])  # (T, n_fft)
    magnitude = np.log1p(10 * np.abs(np.fft.rfft(frames, axis=-1)))  # (T, bins)
    flux = np.maximum(0, np.diff(magnitude, axis=0, prepend=magnitude[:1])).sum(axis=-1)
    return flux / (flux.max() + 1e-9)


def detect_onsets(audio, hop_length: int = HOP_LENGTH) -> list[int]:
    """Onset frames: local maxima of the flux above an adaptive threshold, at least 3 frames apart."""
    env = onset_envelope(audio, hop_length)
    onsets, last = [], -10
    for t in range(len(env)):
        lo, hi = max(0, t - 3), min(len(env), t + 4)
        threshold = env[max(0, t - 8):t + 9].mean() + 0.1
        if env[t] == env[lo:hi].max() and env[t] > threshold and t - last >= 3:
            onsets.append(t)
            last = t
    return onsets


def detect_beats(audio, sample_rate: int = SAMPLE_RATE, hop_length: int = HOP_LENGTH,
                 min_bpm: float = 60.0, max_bpm: float = 180.0) -> list[int]:
    """Beat frames: tempo from the flux's autocorrelation, refined to a fractional period, and the
    phase of the strongest alignment. Beats fall on round(phase + k * period)."""
    flux = onset_envelope(audio, hop_length)
    fps = sample_rate / hop_length
    env = flux - flux.mean()
    acf = np.correlate(env, env, mode="full")[len(env) - 1:]
    lags = np.arange(len(acf))
    valid = (lags >= fps * 60 / max_bpm) & (lags <= fps * 60 / min_bpm)
    if not valid.any():
        return []
    period = int(lags[valid][np.argmax(acf[valid])])
    # A whole-frame period drifts: 120 BPM is 28.71 frames, so a 29-frame grid is 3 frames off
    # after ten beats. Search periods within a frame of the autocorrelation's, in 1/50 frame steps,
    # and half-frame phases for the grid whose frames hold the most flux on average. Frame 0 has
    # no flux by construction (no frame before it), so it does not count against a grid.
    best_score, best_beats = -np.inf, []
    for p in np.arange(max(1.0, period - 1.0), period + 1.0 + 1e-9, 0.02):
        for phase in np.arange(0.0, p, 0.5):
            beats = np.round(np.arange(phase, len(flux) - 0.5, p)).astype(int)
            scored = beats[beats > 0]
            score = flux[scored].mean() if len(scored) else -np.inf
            if score > best_score:
                best_score, best_beats = score, np.round(np.arange(phase - p, len(flux) - 0.5, p)).astype(int)
    return [int(b) for b in best_beats if b >= 0]  # the grid reaches back to a beat on frame 0


# --- the declarative recipe ---------------------------------------------------------------------


@dataclass
class MaskRecipe:
    """A mask as plain data. Terms combine like the reference's `build_mask`:

    random(rand_mask_intensity) AND inpaint(prefix_s, suffix_s) AND periodic(periodic_prompt,
    periodic_prompt_width, periodic_offset) AND onsets AND beats AND blocks AND strided, then
    dropout, then keep the lowest `keep_lowest` codebooks, then regenerate codebooks >=
    `upper_codebook_mask`. `compression` (keep only the lowest n codebooks at every frame) and a
    hand-painted `grid` (C rows of 0/1, as strings or lists, or `grid_rle` rows of
    [count, value] pairs) each replace all of that.
    """

    rand_mask_intensity: float = 1.0
    prefix_s: float = 0.0
    suffix_s: float = 0.0
    periodic_prompt: int = 7
    periodic_prompt_width: int = 1
    periodic_offset: int | None = None  # None: random, from the seed
    onset_mask_width: int = 0  # frames kept on each side of every onset; 0 = off
    beat_after_s: float = 0.0  # keep this long after each beat; 0 = off
    beat_before_s: float = 0.0
    # beat and downbeat times in seconds from the region start (e.g. the DAW's tempo map), used
    # instead of detection; downbeats count as beats. None: detect them from the audio.
    beats_s: list | None = None
    downbeats_s: list | None = None
    blocks_s: list = field(default_factory=list)  # [[start_s, end_s], ...] regenerated
    strided: int = 0  # keep every n-th frame exactly; 0 = off
    strided_offset: int = 0
    dropout: float = 0.0
    keep_lowest: int = 0
    upper_codebook_mask: int = 3
    compression: int | None = None
    grid: list | None = None
    grid_rle: list | None = None
    preset: str | None = None  # informational once resolved: the preset it started from

    def __post_init__(self):
        def bad(name, value, rule):
            raise ValueError(f"mask recipe: {name}={value!r} is invalid: {rule}")

        for name in ("rand_mask_intensity", "dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value <= 1:
                bad(name, value, "must be a number from 0 to 1")
        for name in ("prefix_s", "suffix_s", "beat_after_s", "beat_before_s"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                bad(name, value, "must be a finite number of seconds >= 0")
        for name in ("periodic_prompt", "periodic_prompt_width", "onset_mask_width", "strided",
                     "strided_offset", "keep_lowest", "upper_codebook_mask"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                bad(name, value, "must be a whole number >= 0")
        if self.periodic_offset is not None and (not isinstance(self.periodic_offset, int) or self.periodic_offset < 0):
            bad("periodic_offset", self.periodic_offset, "must be a whole number >= 0, or null for random")
        if self.compression is not None and (not isinstance(self.compression, int) or self.compression < 0):
            bad("compression", self.compression, "must be a whole number of codebooks >= 0, or null")
        for name in ("beats_s", "downbeats_s"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
                bad(name, value, "must be a list of times in seconds from the region start, or null to detect")
        for block in self.blocks_s:
            if (not isinstance(block, (list, tuple)) or len(block) != 2
                    or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in block)
                    or block[1] <= block[0]):
                bad("blocks_s", block, "each block must be [start_s, end_s] with end_s > start_s")

    # -- JSON --
    @classmethod
    def from_json(cls, value) -> "MaskRecipe":
        """A preset name, a dict (optionally with "preset" to start from), or a JSON string of either."""
        import json

        if isinstance(value, MaskRecipe):
            return value
        if value is None or value == "":
            value = DEFAULT_PRESET
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("{"):
                try:
                    value = json.loads(text)
                except json.JSONDecodeError as e:
                    raise ValueError(f"mask recipe is not valid JSON: {e}") from None
            else:
                return preset(text)
        if not isinstance(value, dict):
            raise ValueError(f"mask recipe must be a preset name or a JSON object, not {type(value).__name__}")
        names = {f.name for f in fields(cls)}
        value = {k: v for k, v in value.items() if k != "beats_source"}  # derived, recorded by to_json
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f"unknown mask recipe field(s) {unknown}; known: {sorted(names - {'preset'})}")
        base = asdict(preset(value["preset"])) if value.get("preset") else {}
        base.update(value)
        return cls(**base)

    def to_json(self) -> dict:
        data = asdict(self)
        for optional in ("compression", "grid", "grid_rle", "preset", "beats_s", "downbeats_s"):
            if data[optional] is None:
                del data[optional]
        if self.beat_after_s > 0:
            data["beats_source"] = self.beats_source
        return data

    @property
    def beats_source(self) -> str:
        """Where the beat term's beats come from: "given" (beats_s/downbeats_s) or "detected"."""
        return "given" if self.beats_s is not None or self.downbeats_s is not None else "detected"

    @property
    def uses_audio(self) -> bool:
        return self.grid is None and self.grid_rle is None and (
            self.onset_mask_width > 0 or (self.beat_after_s > 0 and self.beats_source == "detected"))

    # -- building --
    def build(self, shape, generator=None, audio=None, sample_rate: int = SAMPLE_RATE,
              hop_length: int = HOP_LENGTH) -> torch.Tensor:
        """The (B, C, T) 0/1 mask for a grid of `shape`. `audio`: the preprocessed mono signal
        (numpy, at `sample_rate`), needed only for onset- and beat-driven recipes."""
        B, C, T = shape
        if self.grid is not None or self.grid_rle is not None:
            return self._painted(shape)
        if self.compression is not None:
            return compression_mask(shape, self.compression)

        def frames(seconds):
            return seconds_to_frames(seconds, sample_rate, hop_length)

        mask = random_mask(shape, self.rand_mask_intensity, generator)
        mask = mask_and(mask, inpaint_mask(shape, frames(self.prefix_s), frames(self.suffix_s)))
        mask = mask_and(mask, periodic_mask(shape, self.periodic_prompt, self.periodic_prompt_width,
                                            self.periodic_offset, generator))
        if self.uses_audio and audio is None:
            raise ValueError("this mask recipe is onset- or beat-driven and needs the audio it is built for")
        if self.onset_mask_width > 0:
            onsets = detect_onsets(audio, hop_length)
            mask = mask_and(mask, frames_near_events(shape, onsets, self.onset_mask_width, self.onset_mask_width))
        if self.beat_after_s > 0:
            if self.beats_source == "given":
                given = sorted({*(self.beats_s or []), *(self.downbeats_s or [])})
                beats = [int(t * sample_rate / hop_length) for t in given if 0 <= t * sample_rate / hop_length < T]
            else:
                beats = detect_beats(audio, sample_rate, hop_length)
            mask = mask_and(mask, frames_near_events(shape, beats, frames(self.beat_before_s),
                                                     frames(self.beat_after_s)))
        if self.blocks_s:
            blocks = empty_mask(shape)
            for start_s, end_s in self.blocks_s:
                blocks = mask_or(blocks, block_mask(shape, int(start_s * sample_rate / hop_length),
                                                    frames(end_s)))
            mask = mask_and(mask, blocks)
        if self.strided > 0:
            mask = mask_and(mask, strided_mask(shape, self.strided, self.strided_offset))
        if self.dropout > 0:
            mask = dropout_mask(mask, self.dropout, generator)
        mask = keep_lowest_codebooks(mask, self.keep_lowest)
        return codebook_mask(mask, self.upper_codebook_mask)

    def _painted(self, shape):
        B, C, T = shape
        if self.grid is not None:
            rows = [[int(ch) for ch in row] if isinstance(row, str) else [int(v) for v in row] for row in self.grid]
        else:
            rows = [[v for count, v in row for _ in range(int(count))] for row in self.grid_rle]
        if len(rows) != C or any(len(r) != T for r in rows):
            sizes = f"{len(rows)} x {sorted({len(r) for r in rows})}"
            raise ValueError(f"painted mask is {sizes} but the clip's token grid is {C} x {T}: repaint it for this clip")
        grid = torch.tensor(rows, dtype=torch.long)
        if not ((grid == 0) | (grid == 1)).all():
            raise ValueError("painted mask cells must be 0 (keep) or 1 (regenerate)")
        return grid.unsqueeze(0).expand(B, C, T).clone()


def grid_to_rle(mask_row) -> list:
    """One codebook row of 0/1 -> [[count, value], ...] for compact JSON."""
    out = []
    for v in (int(x) for x in mask_row):
        if out and out[-1][1] == v:
            out[-1][0] += 1
        else:
            out.append([1, v])
    return out


# --- presets (the seed notebooks' practical settings) ---------------------------------------------

PRESETS = {
    "subtle": MaskRecipe(rand_mask_intensity=0.3, periodic_prompt=7, upper_codebook_mask=2, preset="subtle"),
    "balanced": MaskRecipe(rand_mask_intensity=0.5, periodic_prompt=7, upper_codebook_mask=3, preset="balanced"),
    "creative": MaskRecipe(rand_mask_intensity=0.7, periodic_prompt=10, upper_codebook_mask=4, preset="creative"),
    # Periodic prompt aligned to the beat: keep ~75 ms after every detected beat.
    "rhythm": MaskRecipe(rand_mask_intensity=1.0, periodic_prompt=0, beat_after_s=0.075,
                         upper_codebook_mask=3, preset="rhythm"),
}
DEFAULT_PRESET = "balanced"


def preset(name: str) -> MaskRecipe:
    if name not in PRESETS:
        raise ValueError(f"unknown mask preset {name!r}; choose one of {sorted(PRESETS)}")
    return MaskRecipe(**asdict(PRESETS[name]))
