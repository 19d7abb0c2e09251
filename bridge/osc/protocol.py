"""The VampBridge OSC protocol, version 1 (`docs/osc.md`): addresses, argument checks, replies.

This module turns datagrams into plain `Command`s (address name, header, checked arguments) and
plain request objects (`VampRequest`, `RerenderRequest`, `OpenRequest`), and builds reply
datagrams. It does no I/O. Every refusal is a `ProtocolError` with a stable code.
"""

from __future__ import annotations

import json
import math
import re
import struct
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder

PROTOCOL_VERSION = 1
PREFIX = "/vampbridge/"
#: Datagrams above this many bytes are refused (`too_large`), never processed truncated.
MAX_DATAGRAM_BYTES = 65_000
#: Replies are kept below this many bytes (a `status` list is shortened to fit).
MAX_REPLY_BYTES = 60_000
MAX_ID_CHARS = 200
MAX_BUNDLE_DEPTH = 4


class ProtocolError(Exception):
    """A message the service refuses; `code` is a stable error code of `docs/osc.md`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- argument kinds -----------------------------------------------------------------------------

STR, INT, NUM = "s", "i", "d"  # string; int32 (from i/h/f/d if integral); finite number (i/f/d)
_KIND_NAMES = {STR: "a string (s)", INT: "an integer (i)", NUM: "a number (d, f or i)"}

_HEADER = (("id", STR), ("reply_port", INT), ("token", STR))

_REGION = (("client", STR), ("source_path", STR), ("start_s", NUM), ("length_s", NUM),
           ("playrate", NUM), ("sample_rate", INT), ("channels", INT), ("item_guid", STR),
           ("take_guid", STR))

#: address name -> (required arguments after the header, optional trailing arguments)
REQUESTS: dict[str, tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]] = {
    "hello": ((), ()),
    "ping": ((), ()),
    "vamp": (_REGION + (("mask", STR), ("sampling", STR), ("fx", STR), ("n_variations", INT),
                        ("seed", INT), ("output_dir", STR)), (("priority", STR), ("options", STR))),
    "rerender": ((("client", STR), ("recipe_path", STR), ("fx", STR), ("seed", INT),
                  ("output_dir", STR), ("item_guid", STR), ("take_guid", STR)),
                 (("priority", STR),)),
    "cancel": ((("job_id", STR),), ()),
    "resume": ((("job_id", STR),), ()),
    "status": ((("job_id", STR),), ()),
    "pending": ((("client", STR),), ()),
    "ack": ((("job_id", STR), ("variation", INT)), ()),
    "open": (_REGION, (("beats", STR),)),
}

#: reply name -> OSC type tags of its arguments (the first is always the request id).
REPLIES: dict[str, str] = {
    "hello": "sissssss",
    "pong": "s",
    "accepted": "si",
    "progress": "sfsi",
    "result": "sisssssi",
    "done": "siis",
    "error": "sss",
    "cancelled": "ss",
    "status": "ssiss",
    "pending": "si",
    "acked": "ssi",
    "opened": "s",
}


@dataclass(frozen=True)
class Header:
    """The three arguments every request starts with."""

    request_id: str
    reply_port: int
    token: str


@dataclass(frozen=True)
class Command:
    """A checked request: `name` is the address without the prefix, `args` by argument name."""

    name: str
    header: Header
    args: dict[str, Any]


@dataclass(frozen=True)
class OpenRequest:
    """`open`: show this region in the companion's mask editor."""

    client: str
    source_path: str
    start_s: float
    length_s: float | None
    playrate: float
    sample_rate: int | None
    channels: int | None
    item_guid: str
    take_guid: str
    #: Reaper's tempo-map beats and downbeats, seconds from the region start (None: not sent)
    beats_s: tuple[float, ...] | None = None
    downbeats_s: tuple[float, ...] | None = None


# -- datagrams --------------------------------------------------------------------------------

def split_packet(data: bytes) -> list[OscMessage]:
    """The OSC messages in a datagram (one message, or the messages of a bundle).

    Raises ProtocolError `bad_request` for anything that is not well-formed OSC.
    """
    messages: list[OscMessage] = []
    _split(bytes(data), 0, messages)
    return messages


def _split(data: bytes, depth: int, out: list[OscMessage]) -> None:
    if data.startswith(b"#bundle\x00"):
        if depth >= MAX_BUNDLE_DEPTH:
            raise ProtocolError("bad_request", f"bundles nested deeper than {MAX_BUNDLE_DEPTH}")
        index = 16  # "#bundle\0" and the 8-byte time tag
        if len(data) < index:
            raise ProtocolError("bad_request", "truncated bundle header")
        while index < len(data):
            if index + 4 > len(data):
                raise ProtocolError("bad_request", "truncated bundle element size")
            (size,) = struct.unpack(">i", data[index:index + 4])
            index += 4
            if size <= 0 or size % 4 or index + size > len(data):
                raise ProtocolError("bad_request", f"bad bundle element size {size}")
            _split(data[index:index + size], depth + 1, out)
            index += size
        return
    if not data.startswith(b"/"):
        raise ProtocolError("bad_request", "not an OSC message (no address)")
    _check_type_tags(data)
    try:
        out.append(OscMessage(data))
    except Exception as e:  # python-osc raises ParseError, and others on hostile input
        raise ProtocolError("bad_request", f"malformed OSC message: {e}") from None


#: OSC type tags the service accepts (python-osc would log a warning for others).
_KNOWN_TAGS = frozenset("ifdshbTFNmrt[]")


def _check_type_tags(data: bytes) -> None:
    """Refuse a message whose type tag string holds tags python-osc does not know."""
    end = data.find(b"\x00")
    start = (end + 4) & ~3 if end >= 0 else len(data)
    if start >= len(data):
        return  # no type tags: a message without arguments
    stop = data.find(b"\x00", start)
    tags = data[start:stop if stop >= 0 else len(data)]
    if not tags.startswith(b","):
        raise ProtocolError("bad_request", "OSC type tags must start with ','")
    unknown = set(tags[1:].decode("latin-1")) - _KNOWN_TAGS
    if unknown:
        raise ProtocolError("bad_request", f"unsupported OSC type tags {sorted(unknown)}")


def reply_address_of(params: list) -> tuple[str, int] | None:
    """(request id, reply port) if the first two arguments look like them, else None.

    Used to answer `error` for a message whose header is otherwise broken.
    """
    if len(params) >= 2 and isinstance(params[0], str) and len(params[0]) <= MAX_ID_CHARS:
        try:
            port = _coerce("reply_port", INT, params[1])
        except ProtocolError:
            return None
        if 1 <= port <= 65535:
            return params[0], port
    return None


def decode(address: str, params: list) -> Command:
    """Check a message against the address table; raises ProtocolError."""
    if not address.startswith(PREFIX) or address[len(PREFIX):] not in REQUESTS:
        raise ProtocolError("unknown_address",
                            f"unknown address {address[:80]!r}; the service understands "
                            + ", ".join(PREFIX + name for name in REQUESTS))
    name = address[len(PREFIX):]
    required, optional = REQUESTS[name]
    spec = _HEADER + required
    if not len(spec) <= len(params) <= len(spec) + len(optional):
        names = ", ".join(n for n, _ in spec)
        raise ProtocolError("bad_request",
                            f"{address} takes {len(spec)} arguments ({names}), got {len(params)}")
    values = {n: _coerce(n, kind, v) for (n, kind), v in zip(spec + optional, params)}
    if len(values["id"]) > MAX_ID_CHARS:
        raise ProtocolError("bad_argument", f"id is longer than {MAX_ID_CHARS} characters")
    if not 1 <= values["reply_port"] <= 65535:
        raise ProtocolError("bad_argument", f"reply_port {values['reply_port']} is not 1..65535")
    header = Header(values.pop("id"), values.pop("reply_port"), values.pop("token"))
    return Command(name, header, values)


def _coerce(name: str, kind: str, value: Any) -> Any:
    """Convert one argument to its kind; raises ProtocolError naming it."""
    if kind == STR:
        if isinstance(value, str):
            if "\x00" in value:
                raise ProtocolError("bad_argument", f"{name} contains a NUL character")
            return value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise ProtocolError("bad_argument", f"{name} is {value}; send a finite number")
        if kind == NUM:
            return float(value)
        if value != int(value):
            raise ProtocolError("bad_argument", f"{name} must be a whole number, got {value}")
        if not -2**31 <= int(value) < 2**31:
            raise ProtocolError("bad_argument", f"{name} {int(value)} is outside int32")
        return int(value)
    shown = repr(value) if not isinstance(value, (bytes, list, tuple)) else type(value).__name__
    raise ProtocolError("bad_request", f"{name} must be {_KIND_NAMES[kind]}, got {shown[:60]}")


# -- request objects --------------------------------------------------------------------------

def parse_json(name: str, text: str) -> Any:
    """A JSON-valued argument; raises ProtocolError `bad_request` naming it."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ProtocolError("bad_request", f"{name} is not valid JSON ({e}): {text[:60]!r}") from None


def _maybe_json(name: str, text: str) -> Any:
    """Preset names stay strings; `{...}` / `[...]` are parsed as JSON; `@/path.json` is read
    now, so a resumed job uses what the file held when the job was submitted."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        return parse_json(name, stripped)
    if stripped.startswith("@"):
        from bridge.inputs import InputError, check_path_text
        from bridge.request import RequestError, load_json_argument
        try:  # never resolved against the service's working folder, never `~`
            check_path_text(stripped[1:], f"{name} file", code="bad_request")
            value = load_json_argument(stripped, name)  # its errors never quote the file's content
        except (RequestError, InputError) as e:
            raise ProtocolError(e.code, str(e)) from None
        except RecursionError:
            value = None
        if isinstance(value, (dict, list)):
            return value
        raise ProtocolError("bad_request", f"{name} file {stripped[1:]!r} does not hold a JSON "
                            "object or list")
    return stripped


_FILE_NOUNS = {"mask": "mask recipe (docs/formats.md)", "fx": "effect chain (docs/formats.md)"}


@contextmanager
def file_content_hidden(cmd: Command):
    """Errors about a `mask`/`fx` argument given as `@file` name the file and where the problem
    is, never the values or keys the file holds (it may be any file the service can read)."""
    files = {name: cmd.args[name].strip()[1:] for name in _FILE_NOUNS
             if str(cmd.args.get(name, "")).strip().startswith("@")}
    try:
        yield
    except ValueError as e:
        field, code = getattr(e, "field", None), getattr(e, "code", None)
        if field not in files or code is None:
            raise
        entry = re.match(r"effect chain entry (\d+)", str(e))
        where = f" (the problem is in chain entry {entry.group(1)})" if entry else ""
        if code == "plugin_not_allowed":
            where += ": a plugin outside the plugin folders (see --plugin-dir)"
        raise ProtocolError(code, f"{field} file {files[field][:200]!r} does not hold a valid "
                            f"{_FILE_NOUNS[field]}{where}; its content is not repeated here: "
                            "check the file, or send its JSON inline to see the details") from None


def _region_fields(a: dict) -> dict:
    return {
        "source_path": a["source_path"],
        "start_s": a["start_s"],
        "length_s": a["length_s"] if a["length_s"] > 0 else None,
        "playrate": a["playrate"],
        "sample_rate": a["sample_rate"] or None,
        "channels": a["channels"] or None,
        "item_guid": a["item_guid"],
        "take_guid": a["take_guid"],
    }


def vamp_request(cmd: Command):
    """The `VampRequest` of a `vamp` command (validated by `VampRequest.from_dict`)."""
    from bridge.request import VampRequest

    a = cmd.args
    d = _region_fields(a)
    if a["mask"].strip():
        d["mask"] = _maybe_json("mask", a["mask"])
    if a["sampling"].strip():
        sampling = parse_json("sampling", a["sampling"])
        if not isinstance(sampling, dict):
            raise ProtocolError("bad_request", "sampling must be a JSON object, e.g. "
                                '{"temperature": 1.0}')
        d["sampling"] = sampling
    d["fx"] = _maybe_json("fx", a["fx"]) if a["fx"].strip() else "none"
    d["n_variations"] = a["n_variations"]
    d["seed"] = _seed(a["seed"])
    d["output_dir"] = _output_dir(a["output_dir"])
    d.update(vamp_options(a.get("options", "")))
    return VampRequest.from_dict(d)


#: `vamp`'s `options` keys (docs/osc.md), all request fields of the same name
VAMP_OPTIONS = ("regen_start_s", "regen_length_s", "loop", "stereo", "channel")


def vamp_options(text: str) -> dict:
    """The `options` argument of `vamp`: "" or a JSON object of VAMP_OPTIONS keys."""
    if not text.strip():
        return {}
    options = parse_json("options", text)
    if not isinstance(options, dict):
        raise ProtocolError("bad_request", 'options must be a JSON object, e.g. {"loop": true}')
    unknown = sorted(set(options) - set(VAMP_OPTIONS))
    if unknown:
        raise ProtocolError("bad_argument", f"unknown option {unknown[0]!r} in options; known: {list(VAMP_OPTIONS)}")
    return options


def rerender_request(cmd: Command):
    """The `RerenderRequest` of a `rerender` command."""
    from bridge.jobs.requests import RerenderRequest

    a = cmd.args
    _checked_path(a["recipe_path"], "recipe_path", "source_missing")
    return RerenderRequest(recipe_path=a["recipe_path"],
                           fx=_maybe_json("fx", a["fx"]) if a["fx"].strip() else None,
                           seed=_seed(a["seed"]), output_dir=_output_dir(a["output_dir"]),
                           item_guid=a["item_guid"], take_guid=a["take_guid"])


def _checked_path(text: str, field: str, code: str) -> str:
    """`text` if it can name a file at all (absolute, no NUL, names of at most 255 bytes);
    else ProtocolError `code`. The file itself is checked where it is used."""
    from bridge.inputs import InputError, check_path_text
    try:
        check_path_text(text, field, code=code)
    except InputError as e:
        raise ProtocolError(e.code, str(e)) from None
    return text


def _output_dir(text: str) -> str | None:
    return _checked_path(text, "output_dir", "bad_output_dir") if text else None


def open_request(cmd: Command) -> OpenRequest:
    from bridge.inputs import InputError, check_source_file

    a = cmd.args
    try:
        check_source_file(a["source_path"])
    except InputError as e:
        raise ProtocolError(e.code, str(e)) from None
    return OpenRequest(client=a["client"], **_region_fields(a), **open_beats(a.get("beats", "")))


def open_beats(text: str) -> dict:
    """`open`'s `beats` argument: "" (none) or `{"beats_s": [...], "downbeats_s": [...]}`,
    seconds >= 0 from the region start; anything else is `bad_argument` naming the field."""
    if not text.strip():
        return {}
    try:
        beats = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise ProtocolError("bad_argument", f"beats is not valid JSON ({e}): {text[:60]!r}") from None
    if not isinstance(beats, dict) or "beats_s" not in beats:
        raise ProtocolError("bad_argument", 'beats must be a JSON object {"beats_s": [...], '
                            '"downbeats_s": [...]} (seconds from the region start), or "" for none')
    unknown = sorted(set(beats) - {"beats_s", "downbeats_s"})
    if unknown:
        raise ProtocolError("bad_argument", f"unknown key {unknown[0]!r} in beats; known: beats_s, downbeats_s")
    out = {}
    for field in ("beats_s", "downbeats_s"):
        times = beats.get(field, [])
        if not isinstance(times, list) or not all(
                isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t >= 0
                for t in times):
            raise ProtocolError("bad_argument", f"beats.{field} must be a list of seconds >= 0 from "
                                f"the region start: {json.dumps(times)[:60]}")
        out[field] = tuple(sorted(float(t) for t in times))
    return out


def priority_of(cmd: Command):
    """The explicit priority of a `vamp`/`rerender` command, or None (decide by client name)."""
    from bridge.jobs.queue import Priority

    try:
        return Priority.parse(cmd.args.get("priority", ""))
    except ValueError as e:
        raise ProtocolError("bad_argument", str(e)) from None


def _seed(seed: int) -> int | None:
    if seed == -1:
        return None
    if seed < 0:
        raise ProtocolError("bad_argument", f"seed {seed} must be >= 0, or -1 to pick one")
    return seed


# -- replies ----------------------------------------------------------------------------------

def encode_reply(name: str, *args: Any) -> bytes:
    """The datagram of reply `name` (see REPLIES for its argument types)."""
    types = REPLIES[name]
    if len(args) != len(types):
        raise ValueError(f"reply {name} takes {len(types)} arguments, got {len(args)}")
    builder = OscMessageBuilder(PREFIX + name)
    for tag, value in zip(types, args):
        if tag == "s":
            builder.add_arg(str(value), "s")
        elif tag == "i":
            builder.add_arg(int(value), "i")
        elif tag == "f":
            builder.add_arg(float(value), "f")
        else:
            raise ValueError(f"unsupported reply type {tag!r}")
    return builder.build().dgram


def fit_json_list(items: list, budget_bytes: int = MAX_REPLY_BYTES - 1000) -> str:
    """`items` as a JSON list, dropping items from the end until it fits `budget_bytes`."""
    text = json.dumps(items)
    n = len(items)
    while len(text.encode()) > budget_bytes and n > 0:
        n = n * 3 // 4 if n > 4 else n - 1
        text = json.dumps(items[:n])
    return text
