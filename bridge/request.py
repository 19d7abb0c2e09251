"""`VampRequest`: one "make N variations of this region" request, the same for CLI, OSC and GUI.

Plain data with validation. Every problem raises `RequestError`, whose `field` and `code` (the
stable error codes of docs/osc.md) say what was wrong, and whose message says what to do.
"""

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .engine.prompts import MaskRecipe
from .engine.sampler import SamplingOptions

MAX_VARIATIONS = 64
SAMPLING_DEFAULTS = {"sampling_steps": 36}  # the authors' app; the library default is 12
C2F_STEPS_DEFAULT = 2
# Stereo: how a multi-channel source becomes engine rows and back (docs/formats.md, "stereo").
STEREO_MODES = ("mid_side", "coupled", "per_channel", "mono")
STEREO_DEFAULT = "mid_side"  # measured: benchmarks/README.md "Stereo"
CHANNELS = ("all", "left", "right", "mono")  # which source channel(s) the take plays

class RequestError(ValueError):
    def __init__(self, field_name: str, message: str, code: str = "bad_argument"):
        super().__init__(message)
        self.field = field_name
        self.code = code


def load_json_argument(value, what: str):
    """JSON text, `@path/to/file.json` (must hold JSON), a plain word such as a preset name, or an
    already-parsed value. Errors never quote a referenced file's content."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("@"):
        from .inputs import InputError, read_json_file  # regular files of at most 1 MB only
        try:
            return read_json_file(os.path.expanduser(text[1:]), what)
        except InputError as e:
            raise RequestError(what, str(e), e.code) from None
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise RequestError(what, f"{what} is not valid JSON ({e})", "bad_request") from None
    return text


def check_output_dir(path) -> Path:
    """The checked, created output folder: the one rule of `bridge.output_folder`."""
    from .output_folder import check_output_dir as check

    return check(path)


@dataclass
class VampRequest:
    source_path: str
    start_s: float = 0.0
    length_s: float | None = None  # None: to the end of the file
    playrate: float = 1.0  # the DAW take's playback rate; recorded, the render stays in source time
    sample_rate: int | None = None  # output rate; None: the source's
    channels: int | None = None  # output channels; None: the source's
    mask: object = "balanced"  # preset name, recipe dict or JSON text (see MaskRecipe)
    sampling: dict = field(default_factory=dict)  # SamplingOptions fields + c2f_sampling_steps
    fx: object = "none"  # effect chain: preset name, list or {"chain": [...], "tail_s": s}
    n_variations: int = 1
    seed: int | None = None  # variation k uses seed + k; None: chosen when the job starts
    output_dir: str | None = None  # None: the default render folder
    item_guid: str = ""
    take_guid: str = ""
    per_channel: bool = False  # each source channel as its own variation (same as stereo="per_channel")
    bit_depth: object = 24  # 24 or "float32"
    # time and channels (docs/formats.md): a selection inside the region to regenerate alone
    # (source-file seconds), the region as a loop, the stereo mode, the channel(s) vamped
    regen_start_s: float | None = None
    regen_length_s: float | None = None
    loop: bool = False
    stereo: str | None = None  # None: STEREO_DEFAULT
    channel: str = "all"

    # -- conversions --
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "VampRequest":
        if not isinstance(data, dict):
            raise RequestError("request", "a request must be a JSON object", "bad_request")
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise RequestError(unknown[0], f"unknown request field(s) {unknown}", "bad_request")
        if "source_path" not in data:
            raise RequestError("source_path", "a request needs source_path", "bad_request")
        request = cls(**data)
        request.check_values()
        return request

    @property
    def stereo_mode(self) -> str:
        """The stereo mode in force: `stereo`, or per_channel's, or the default."""
        return self.stereo or ("per_channel" if self.per_channel else STEREO_DEFAULT)

    @property
    def selection_s(self) -> tuple[float, float] | None:
        """(start, end) of the selection in source seconds, or None for the whole region."""
        if self.regen_start_s is None:
            return None
        return self.regen_start_s, self.regen_start_s + self.regen_length_s

    # -- validation --
    def mask_recipe(self) -> MaskRecipe:
        try:
            return MaskRecipe.from_json(load_json_argument(self.mask, "mask"))
        except ValueError as e:
            if isinstance(e, RequestError):
                raise
            raise RequestError("mask", str(e), "bad_mask") from None

    def sampling_options(self) -> tuple[SamplingOptions, int]:
        """(coarse options, coarse-to-fine steps); the request's values over our defaults."""
        values = dict(SAMPLING_DEFAULTS)
        given = load_json_argument(self.sampling, "sampling") or {}
        if not isinstance(given, dict):  # e.g. from a crafted recipe
            raise RequestError("sampling", "sampling must be a JSON object of sampling options, "
                               f"got a {type(given).__name__}")
        values.update(given)
        c2f_steps = values.pop("c2f_sampling_steps", C2F_STEPS_DEFAULT)
        try:
            if not isinstance(c2f_steps, int) or not 1 <= c2f_steps <= 100:
                raise ValueError(f"sampling option c2f_sampling_steps={c2f_steps!r} must be an integer from 1 to 100")
            return SamplingOptions.from_dict(values), c2f_steps
        except (TypeError, ValueError) as e:
            raise RequestError("sampling", str(e), "bad_argument") from None

    def fx_chain(self):
        """The effect chain, built once per request (a VST3 can take seconds to load), so
        `validate()` and the pipeline share it; rebuilt if `fx` changes."""
        from .fx import FxChain

        key = json.dumps(self.fx, sort_keys=True)
        built = self.__dict__.get("_fx_built")
        if built is not None and built[0] == key:
            return built[1]
        try:
            chain = FxChain.from_json(load_json_argument(self.fx, "fx"))
        except ValueError as e:
            raise RequestError("fx", str(e), getattr(e, "code", "bad_fx")) from None
        self.__dict__["_fx_built"] = (key, chain)
        return chain

    def check_values(self):
        """Cheap checks of the numbers and formats (no file access)."""
        def number(name, value, minimum=None, allow_none=False):
            if value is None and allow_none:
                return
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RequestError(name, f"{name} must be a finite number, got {value!r}")
            if minimum is not None and value < minimum:
                raise RequestError(name, f"{name} must be >= {minimum}, got {value!r}")

        if not isinstance(self.source_path, str) or not self.source_path:
            raise RequestError("source_path", "source_path must be a non-empty path", "bad_request")
        number("start_s", self.start_s, 0)
        number("length_s", self.length_s, allow_none=True)
        if self.length_s is not None and self.length_s <= 0:
            raise RequestError("length_s", f"length_s must be > 0 seconds, got {self.length_s}", "bad_region")
        number("playrate", self.playrate)
        if self.playrate <= 0:
            raise RequestError("playrate", f"playrate must be > 0, got {self.playrate}")
        for name in ("sample_rate", "channels"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise RequestError(name, f"{name} must be a positive integer or null, got {value!r}")
        if self.sample_rate is not None and not 8000 <= self.sample_rate <= 384000:
            raise RequestError("sample_rate", f"sample_rate {self.sample_rate} Hz is outside 8000..384000")
        if self.channels is not None and self.channels > 64:
            raise RequestError("channels", f"channels {self.channels} is more than 64")
        if not isinstance(self.n_variations, int) or not 1 <= self.n_variations <= MAX_VARIATIONS:
            raise RequestError("n_variations", f"n_variations must be 1..{MAX_VARIATIONS}, got {self.n_variations!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)
                                      or not 0 <= self.seed < 2**31):
            raise RequestError("seed", f"seed must be an integer in 0..2^31-1 or null, got {self.seed!r}")
        if self.bit_depth not in (24, "float32"):
            raise RequestError("bit_depth", f"bit_depth must be 24 or \"float32\", got {self.bit_depth!r}")
        self._check_time_and_channels(number)
        self.mask_recipe()
        self.sampling_options()

    def _check_time_and_channels(self, number):
        if (self.regen_start_s is None) != (self.regen_length_s is None):
            raise RequestError("regen_start_s" if self.regen_start_s is None else "regen_length_s",
                               "a selection needs both regen_start_s and regen_length_s (or neither, for "
                               "the whole region)", "bad_region")
        if self.regen_start_s is not None:
            number("regen_start_s", self.regen_start_s, 0)
            number("regen_length_s", self.regen_length_s)
            if self.regen_length_s <= 0:
                raise RequestError("regen_length_s", f"regen_length_s must be > 0 seconds, got {self.regen_length_s}",
                                   "bad_region")
            start, end = self.selection_s
            region_end = None if self.length_s is None else self.start_s + self.length_s
            if start < self.start_s - 1e-9 or (region_end is not None and end > region_end + 1e-6):
                shown = f"{self.start_s}..{region_end if region_end is not None else 'end of file'}"
                raise RequestError("regen_start_s", f"the selection (regen_start_s, regen_length_s) {start}..{end} s "
                                   f"is not inside the region {shown} s; select inside the item", "bad_region")
        if not isinstance(self.loop, bool):
            raise RequestError("loop", f"loop must be true or false, got {self.loop!r}")
        if self.stereo is not None and self.stereo not in STEREO_MODES:
            raise RequestError("stereo", f"unknown stereo mode {self.stereo!r}; choose one of {list(STEREO_MODES)}")
        if self.per_channel and self.stereo not in (None, "per_channel"):
            raise RequestError("per_channel", f"per_channel contradicts stereo={self.stereo!r}; send only stereo")
        if self.channel not in CHANNELS:
            raise RequestError("channel", f"unknown channel {self.channel!r}; choose one of {list(CHANNELS)}")

    def validate(self):
        """Everything `check_values` does, plus the source file, the output folder and the fx chain."""
        from .audio import AudioError, probe

        from .inputs import InputError, check_source_file

        self.check_values()
        try:  # absolute, a regular file, not under /proc or /dev: never guessed, never a device
            check_source_file(self.source_path)
        except InputError as e:
            raise RequestError(e.field, str(e), e.code) from None
        path = Path(self.source_path)
        try:
            info = probe(path)
        except AudioError as e:
            raise RequestError("source_path", str(e), "source_unreadable") from None
        if self.start_s >= info.duration_s:
            raise RequestError("start_s", f"start_s {self.start_s} s is at or past the end of {path} "
                               f"({info.duration_s:.3f} s long)", "bad_region")
        if self.length_s is not None and self.start_s + self.length_s > info.duration_s + 1e-6:
            raise RequestError("length_s", f"the region {self.start_s}..{self.start_s + self.length_s} s runs "
                               f"past the end of {path} ({info.duration_s:.3f} s)", "bad_region")
        if self.selection_s is not None and self.selection_s[1] > info.duration_s + 1e-6:
            raise RequestError("regen_length_s", f"the selection {self.selection_s[0]}..{self.selection_s[1]} s "
                               f"runs past the end of {path} ({info.duration_s:.3f} s)", "bad_region")
        if self.output_dir:
            check_output_dir(self.output_dir)
        self.fx_chain()
        return info
