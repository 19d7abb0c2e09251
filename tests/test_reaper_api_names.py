"""Every REAPER function the scripts call exists in REAPER's documented API (a misspelt or invented
name would only fail inside REAPER, on a user's machine), and the test double implements exactly
such functions: every one the scripts call, and none that REAPER lacks.

The names come from tests/lua/reaper_api_names.txt, written from REAPER's ReaScript documentation."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "reaper_scripts" / "VampBridge"
NAMES_FILE = ROOT / "tests" / "lua" / "reaper_api_names.txt"
LUA = shutil.which("lua5.4")

REAPER_CALL = re.compile(r"\breaper\.([A-Za-z_][A-Za-z0-9_]*)")
GFX_CALL = re.compile(r"\bgfx\.([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def documented() -> tuple[set[str], set[str]]:
    """(reaper.* names, gfx.* names) of the documented API."""
    lines = [line.strip() for line in NAMES_FILE.read_text().splitlines()]
    names = [line for line in lines if line and not line.startswith("#")]
    gfx = {n[len("gfx."):] for n in names if n.startswith("gfx.")}
    return {n for n in names if not n.startswith("gfx.")}, gfx


def strip_comments(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def called(text: str) -> tuple[set[str], set[str]]:
    """The reaper.* and gfx.*() names a Lua text uses (comments left out)."""
    code = strip_comments(text)
    return set(REAPER_CALL.findall(code)), set(GFX_CALL.findall(code))


def unknown_names(text: str) -> list[str]:
    reaper_names, gfx_names = documented()
    used_reaper, used_gfx = called(text)
    return sorted(used_reaper - reaper_names) + sorted("gfx." + n for n in used_gfx - gfx_names)


def script_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(SCRIPTS.glob("*.lua"))}


def test_the_names_file_is_a_plain_list_of_identifiers():
    reaper_names, gfx_names = documented()
    assert len(reaper_names) > 600 and len(gfx_names) > 30
    for name in reaper_names | gfx_names:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name), name
    # Extension functions are not part of a stock REAPER.
    assert not [n for n in reaper_names if re.match(r"(BR|SNM|CF|NF|FNG|ULT|JS|Blink)_", n)]


def test_every_reaper_function_the_scripts_call_is_documented():
    for name, text in script_texts().items():
        assert unknown_names(text) == [], f"{name} calls functions REAPER does not have"


def test_the_check_catches_a_misspelt_or_invented_function():
    text = ('local v = reaper.GetMediaItemTakeInfo_Valu(take, "D_VOL")\n'
            'reaper.BR_GetMediaItemGUID(item) -- an extension\n'
            'gfx.drawstring("x")\n'
            '-- reaper.NotAFunction() in a comment is fine\n')
    assert unknown_names(text) == ["BR_GetMediaItemGUID", "GetMediaItemTakeInfo_Valu", "gfx.drawstring"]


@pytest.mark.skipif(LUA is None, reason="lua5.4 is not installed")
def test_the_double_implements_what_the_scripts_call_and_nothing_reaper_lacks():
    listing = subprocess.run(
        [LUA, "-e", f"""
          package.path = {str(ROOT / 'reaper_scripts' / 'VampBridge')!r} .. "/?.lua;" .. package.path
          local double = dofile({str(ROOT / 'tests' / 'lua' / 'reaper_double.lua')!r})
          for name, value in pairs(double.api) do if type(value) == "function" then print("reaper " .. name) end end
          for name, value in pairs(double.gfx) do if type(value) == "function" then print("gfx " .. name) end end
        """], capture_output=True, text=True, check=True, timeout=20).stdout.split("\n")
    implemented = {tuple(line.split()) for line in listing if line}
    double_reaper = {n for kind, n in implemented if kind == "reaper"}
    double_gfx = {n for kind, n in implemented if kind == "gfx"}
    reaper_names, gfx_names = documented()
    assert sorted(double_reaper - reaper_names) == [], "the double has functions REAPER does not"
    assert sorted(double_gfx - gfx_names) == [], "the double has gfx functions REAPER does not"
    for name, text in script_texts().items():
        used_reaper, used_gfx = called(text)
        assert sorted(used_reaper - double_reaper) == [], f"{name} calls functions the double lacks"
        assert sorted(used_gfx - double_gfx) == [], f"{name} calls gfx functions the double lacks"
