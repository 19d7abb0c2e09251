"""Effect chains: a JSON list of pedalboard effects (or VST3 / Audio Unit plugins) run in order.

A chain entry names a pedalboard effect class and its parameters, with pedalboard's own keyword
names and units:

    [{"plugin": "Compressor", "threshold_db": -18, "ratio": 3},
     {"plugin": "Reverb", "room_size": 0.6, "wet_level": 0.25}]

or an external plugin, loaded with `pedalboard.load_plugin`:

    {"plugin": "vst3", "path": "/path/Plugin.vst3", "plugin_name": "...",  (only for bundles)
     "state": "<base64 of the plugin's raw_state>", "parameters": {"mix": 0.5}}

A chain may also be written `{"chain": [...], "tail_s": 2.0}`: `tail_s` seconds of silence are
appended before processing so reverbs and delays ring out. Named presets live in
`bridge/presets/fx/<name>.json`.

Everything is validated when the chain is built (`FxChain.from_json`), before any audio is
processed; problems are `FxError`s naming the entry index (0-based, as in the JSON list) and
the plugin.
"""

import base64
import binascii
import difflib
import json
import math
import os
from pathlib import Path

import numpy as np
import pedalboard

PRESET_FOLDER = Path(__file__).parent / "presets" / "fx"
MAX_TAIL_S = 60.0

# The pedalboard effects a chain may use, with the keyword parameters each one takes. Kept
# explicit so a chain can never reach other attributes; tests check it against pedalboard.
BUILTIN_PARAMETERS = {
    "Bitcrush": ("bit_depth",),
    "Chorus": ("rate_hz", "depth", "centre_delay_ms", "feedback", "mix"),
    "Clipping": ("threshold_db",),
    "Compressor": ("threshold_db", "ratio", "attack_ms", "release_ms"),
    "Delay": ("delay_seconds", "feedback", "mix"),
    "Distortion": ("drive_db",),
    "Gain": ("gain_db",),
    "HighShelfFilter": ("cutoff_frequency_hz", "gain_db", "q"),
    "HighpassFilter": ("cutoff_frequency_hz",),
    "Invert": (),
    "LadderFilter": ("mode", "cutoff_hz", "resonance", "drive"),
    "Limiter": ("threshold_db", "release_ms"),
    "LowShelfFilter": ("cutoff_frequency_hz", "gain_db", "q"),
    "LowpassFilter": ("cutoff_frequency_hz",),
    "MP3Compressor": ("vbr_quality",),
    "NoiseGate": ("threshold_db", "ratio", "attack_ms", "release_ms"),
    "PeakFilter": ("cutoff_frequency_hz", "gain_db", "q"),
    "Phaser": ("rate_hz", "depth", "centre_frequency_hz", "feedback", "mix"),
    "PitchShift": ("semitones",),
    "Reverb": ("room_size", "damping", "wet_level", "dry_level", "width", "freeze_mode"),
}
EXTERNAL_KINDS = ("vst3", "au")
_EXTERNAL_KEYS = ("plugin", "path", "plugin_name", "state", "parameters")
_CHAIN_KEYS = ("chain", "tail_s", "description")


class FxError(ValueError):
    """An effect chain that cannot be built or run; the message names the entry and plugin.

    `code` is the docs/osc.md error code: `bad_fx`, or `plugin_not_allowed` for a plugin outside
    the plugin folders."""

    code = "bad_fx"


class PluginNotAllowed(FxError):
    code = "plugin_not_allowed"


# --- where plugins may load from -----------------------------------------------------------
# Loading a plugin runs its native code as this user, so a path an OSC message names is never
# enough: the plugin must sit in a standard plugin folder of the platform or in a folder the
# user named when starting the service (`serve --plugin-dir`, the companion's settings).

_extra_plugin_folders: list[Path] = []


def standard_plugin_folders(kind):
    """The platform's standard folders for `kind` ("vst3" or "au"), whether or not they exist."""
    home = Path.home()
    if kind == "au":
        return [home / "Library/Audio/Plug-Ins/Components", Path("/Library/Audio/Plug-Ins/Components")]
    folders = [home / ".vst3", Path("/usr/lib/vst3"), Path("/usr/local/lib/vst3"),
               home / "Library/Audio/Plug-Ins/VST3", Path("/Library/Audio/Plug-Ins/VST3")]
    for variable in ("COMMONPROGRAMFILES", "COMMONPROGRAMFILES(X86)"):
        if os.environ.get(variable):
            folders.append(Path(os.environ[variable]) / "VST3")
    return folders


def set_extra_plugin_folders(folders):
    """Also allow plugins under `folders` (absolute paths), for this process; replaces the last
    call's list. Called for `--plugin-dir` (`vampbridge serve`, `gui`, `vamp`, ...), never for
    a request."""
    resolved = []
    for folder in folders:
        folder = Path(os.path.expanduser(str(folder)))
        if not folder.is_absolute():
            raise ValueError(f"plugin folder {str(folder)!r} must be an absolute path")
        resolved.append(folder.resolve())
    _extra_plugin_folders[:] = resolved


def plugin_folders(kind):
    """Every folder a plugin of `kind` may load from, symlinks resolved."""
    return [folder.resolve() for folder in standard_plugin_folders(kind)] + list(_extra_plugin_folders)


def allowed_plugin_path(index, kind, path):
    """`path` with symlinks resolved, if that lies inside a plugin folder; else PluginNotAllowed.

    Checked before the plugin is looked at or loaded, on the resolved path (a link in a plugin
    folder pointing elsewhere is refused), and the resolved path is what gets loaded."""
    resolved = None
    if "\x00" not in path and os.path.isabs(path):  # a relative path: relative to what?
        try:
            resolved = Path(path).resolve()
        except (OSError, RuntimeError, ValueError):
            pass
    folders = plugin_folders(kind)
    if resolved is not None and any(resolved != folder and folder in resolved.parents
                                    for folder in folders):
        return str(resolved)
    raise PluginNotAllowed(
        f"effect chain entry {index} ({kind}): refusing to load {path[:200]!r}: plugins load only "
        f"from an absolute path in the plugin folders ({', '.join(str(f) for f in folders)}); install it there or "
        "start the service (or the command) with --plugin-dir FOLDER")


# --- validation helpers --------------------------------------------------------------------

def _entry_error(index, name, problem):
    return FxError(f"effect chain entry {index} ({name}): {problem}")


def _unknown_name_problem(kind, name, known):
    problem = f"unknown {kind} {name!r} (known: {', '.join(known) if known else 'none'})"
    close = difflib.get_close_matches(str(name), known, n=1)
    if close:
        problem += f"; did you mean {close[0]!r}?"
    return problem


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_builtin_value(index, name, parameter, value):
    """Refuse non-numbers, NaN/inf and values pedalboard would accept but cannot mean anything."""
    if name == "LadderFilter" and parameter == "mode":
        modes = list(pedalboard.LadderFilter.Mode.__members__)
        if value not in modes:
            raise _entry_error(index, name, f"bad value mode={value!r} (use one of: {', '.join(modes)})")
        return
    if not _is_number(value) or not math.isfinite(value):
        raise _entry_error(index, name, f"bad value {parameter}={value!r} (expected a finite number)")
    if parameter.endswith("_hz") and value <= 0:
        raise _entry_error(index, name, f"bad value {parameter}={value!r} (a frequency must be > 0 Hz)")
    if parameter.endswith(("_ms", "_seconds")) and value < 0:
        raise _entry_error(index, name, f"bad value {parameter}={value!r} (a time must be >= 0)")


def _build_builtin(index, entry):
    """A pedalboard effect instance from a validated built-in entry."""
    name = entry["plugin"]
    known = BUILTIN_PARAMETERS[name]
    parameters = {key: value for key, value in entry.items() if key != "plugin"}
    for parameter, value in parameters.items():
        if parameter not in known:
            raise _entry_error(index, name, _unknown_name_problem("parameter", parameter, list(known)))
        _check_builtin_value(index, name, parameter, value)
    if name == "LadderFilter" and "mode" in parameters:
        parameters["mode"] = pedalboard.LadderFilter.Mode.__members__[parameters["mode"]]
    try:
        return getattr(pedalboard, name)(**parameters)
    except (ValueError, TypeError, RuntimeError) as error:
        shown = ", ".join(f"{key}={value!r}" for key, value in entry.items() if key != "plugin")
        raise _entry_error(index, name, f"bad value in {shown} ({error})") from error


def _build_external(index, entry):
    """A VST3 / Audio Unit plugin instance from an external entry, with its state and parameters."""
    kind = entry["plugin"]
    for key in entry:
        if key not in _EXTERNAL_KEYS:
            raise _entry_error(index, kind, _unknown_name_problem("key", key, list(_EXTERNAL_KEYS)))
    path = entry.get("path")
    if not isinstance(path, str) or not path:
        raise _entry_error(index, kind, "missing 'path' (the plugin file or bundle to load)")
    path = allowed_plugin_path(index, kind, path)  # before the file is even looked at
    if not os.path.exists(path):
        raise _entry_error(index, kind, f"plugin not found: {path}; check the path")
    if kind == "au" and not hasattr(pedalboard, "AudioUnitPlugin"):
        raise _entry_error(index, kind, f"Audio Unit plugins load only on macOS; cannot load {path}")
    plugin_class = pedalboard.VST3Plugin if kind == "vst3" else pedalboard.AudioUnitPlugin
    try:
        plugin = plugin_class(path, plugin_name=entry.get("plugin_name"))
    except Exception as error:  # pedalboard raises ImportError/RuntimeError/ValueError here
        raise _entry_error(index, kind, f"cannot load plugin {path} ({error})") from error
    if entry.get("state"):
        _restore_state(index, kind, plugin, entry["state"])
    _set_external_parameters(index, kind, plugin, entry.get("parameters") or {})
    return plugin


def _restore_state(index, kind, plugin, state_base64):
    try:
        raw_state = base64.b64decode(state_base64, validate=True)
    except (binascii.Error, TypeError, ValueError) as error:
        raise _entry_error(index, kind, f"'state' is not valid base64 ({error})") from error
    try:
        plugin.raw_state = raw_state
    except Exception as error:
        raise _entry_error(index, kind, f"plugin refused its saved 'state' ({error})") from error


def _set_external_parameters(index, kind, plugin, parameters):
    if not isinstance(parameters, dict):
        raise _entry_error(index, kind, f"'parameters' must be an object, got {parameters!r}")
    known = list(plugin.parameters)
    for parameter, value in parameters.items():
        if parameter not in known:
            raise _entry_error(index, kind, _unknown_name_problem("parameter", parameter, known))
        try:
            setattr(plugin, parameter, value)
        except Exception as error:
            raise _entry_error(index, kind, f"bad value {parameter}={value!r} ({error})") from error


def _build_plugin(index, entry):
    if not isinstance(entry, dict):
        raise FxError(f"effect chain entry {index}: expected an object like "
                      f'{{"plugin": "Reverb", ...}}, got {entry!r}')
    name = entry.get("plugin")
    if name in EXTERNAL_KINDS:
        return _build_external(index, entry)
    if name not in BUILTIN_PARAMETERS:
        known = sorted(BUILTIN_PARAMETERS) + list(EXTERNAL_KINDS)
        raise _entry_error(index, name, _unknown_name_problem("plugin", name, known))
    return _build_builtin(index, entry)


def _check_tail_s(tail_s):
    if not _is_number(tail_s) or not math.isfinite(tail_s) or not 0 <= tail_s <= MAX_TAIL_S:
        raise FxError(f"effect chain tail_s={tail_s!r} must be seconds between 0 and {MAX_TAIL_S:g}")
    return float(tail_s)


# --- the chain -----------------------------------------------------------------------------

class FxChain:
    """A validated effect chain: its JSON entries, the plugins built from them, and `tail_s`.

    Plugins keep state while processing, so use one FxChain per thread.
    """

    def __init__(self, entries=(), tail_s=0.0, description=""):
        """Build and validate the chain; prefer `FxChain.from_json` for JSON input."""
        if not isinstance(entries, (list, tuple)):
            raise FxError(f"effect chain must be a list of entries, got {entries!r}")
        self.entries = [dict(entry) if isinstance(entry, dict) else entry for entry in entries]
        self.tail_s = _check_tail_s(tail_s)
        self.description = str(description)
        self.plugins = [_build_plugin(index, entry) for index, entry in enumerate(self.entries)]

    @classmethod
    def from_json(cls, value):
        """A chain from a preset name, JSON text, a list of entries, or {"chain": [...], "tail_s": s}.

        `None` and "" give the empty chain.
        """
        if value is None or isinstance(value, FxChain):
            return value if value is not None else cls()
        if isinstance(value, str):
            return cls._from_text(value)
        if isinstance(value, (list, tuple)):
            return cls(value)
        if isinstance(value, dict):
            return cls._from_dict(value)
        raise FxError(f"effect chain must be a preset name, JSON, a list or an object; got {value!r}")

    @classmethod
    def _from_text(cls, text):
        text = text.strip()
        if not text:
            return cls()
        if text[0] in "[{":
            try:
                return cls.from_json(json.loads(text))
            except json.JSONDecodeError as error:
                raise FxError(f"effect chain is not valid JSON ({error}): {text[:80]!r}") from error
        presets = _preset_files()
        if text not in presets:
            raise FxError(
                f"unknown effect preset {text!r} (known: {', '.join(sorted(presets))}); "
                "or pass a chain as JSON"
            )
        return _load_preset_file(presets[text])

    @classmethod
    def _from_dict(cls, value):
        for key in value:
            if key not in _CHAIN_KEYS:
                raise FxError("effect chain object: " + _unknown_name_problem("key", key, list(_CHAIN_KEYS)))
        if "chain" not in value:
            raise FxError('effect chain object needs a "chain" list, e.g. {"chain": [], "tail_s": 0}')
        return cls(value["chain"], value.get("tail_s", 0.0), value.get("description", ""))

    def to_dict(self):
        """The chain as a JSON-ready dict {"chain": [...], "tail_s": s} (plus "description")."""
        result = {"chain": [dict(entry) for entry in self.entries], "tail_s": self.tail_s}
        if self.description:
            result["description"] = self.description
        return result

    def to_json(self):
        """The chain as JSON text; `FxChain.from_json` reads it back to an equal chain."""
        return json.dumps(self.to_dict())

    def __eq__(self, other):
        return isinstance(other, FxChain) and self.to_dict() == other.to_dict()

    def __len__(self):
        return len(self.plugins)

    def __repr__(self):
        names = ", ".join(entry["plugin"] for entry in self.entries)
        return f"FxChain([{names}], tail_s={self.tail_s:g})"

    def tail_samples(self, sample_rate):
        """Length of the rendered tail in samples at `sample_rate` Hz: round(tail_s * rate)."""
        return int(round(self.tail_s * sample_rate))

    def process(self, audio, sample_rate):
        """Run the chain over `audio` (channels, samples) at `sample_rate` Hz.

        When `tail_s` > 0, `tail_s` seconds of silence are appended first, so the result is
        `tail_samples(sample_rate)` longer than the input; the caller decides what to keep.
        Returns float32 (channels, samples + tail).
        """
        audio = np.asarray(audio, dtype=np.float32)
        if audio.ndim == 1:
            audio = audio[np.newaxis, :]
        tail = np.zeros((audio.shape[0], self.tail_samples(sample_rate)), np.float32)
        audio = np.ascontiguousarray(np.concatenate([audio, tail], axis=1))
        for index, (entry, plugin) in enumerate(zip(self.entries, self.plugins)):
            try:
                audio = plugin(audio, sample_rate, reset=True)
            except Exception as error:
                raise _entry_error(
                    index, entry["plugin"],
                    f"failed on {audio.shape[0]}-channel audio at {sample_rate} Hz ({error})",
                ) from error
        return np.asarray(audio, dtype=np.float32)


# --- presets -------------------------------------------------------------------------------

def _preset_files():
    """{preset name: path} for every JSON file in PRESET_FOLDER."""
    return {path.stem: path for path in sorted(PRESET_FOLDER.glob("*.json"))}


def _load_preset_file(path):
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
        return FxChain.from_json(value)
    except (OSError, json.JSONDecodeError, FxError) as error:
        raise FxError(f"effect preset file {path} is broken: {error}") from error


def fx_presets():
    """Every shipped effect preset: {name: FxChain}, sorted by name."""
    return {name: _load_preset_file(path) for name, path in _preset_files().items()}
