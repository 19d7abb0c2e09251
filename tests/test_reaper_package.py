"""The ReaPack packaging of reaper_scripts/: headers, @provides and index.xml agree with the files."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "reaper_scripts" / "VampBridge"
MAIN_PACKAGE = SCRIPTS / "VampBridge - Vamp selected items.lua"


def header(path: Path) -> dict[str, str]:
    """ReaPack tags of a script's leading comment block: tag -> text (multi-line tags joined)."""
    tags, current = {}, None
    for line in path.read_text().splitlines():
        if not line.startswith("--"):
            break
        body = line[2:].strip()
        match = re.match(r"@(\w+)\s*(.*)", body)
        if match:
            current = match.group(1)
            tags[current] = match.group(2)
        elif current:
            tags[current] += "\n" + body
    return tags


def actions() -> list[Path]:
    return sorted(SCRIPTS.glob("VampBridge - *.lua"))


def libraries() -> list[Path]:
    return sorted(SCRIPTS.glob("vampbridge_*.lua"))


def test_every_action_has_a_reapack_header():
    assert [p.name for p in actions()] == [
        "VampBridge - Listener.lua", "VampBridge - Open selected item in editor.lua",
        "VampBridge - Re-render selected takes.lua", "VampBridge - Settings.lua",
        "VampBridge - Vamp selected items.lua"]
    for path in actions():
        tags = header(path)
        for tag in ("description", "version", "author", "about", "changelog"):
            assert tags.get(tag, "").strip(), f"{path.name} lacks @{tag}"
        assert tags["version"] == header(MAIN_PACKAGE)["version"]


def test_the_package_provides_every_other_file():
    provides = header(MAIN_PACKAGE)["provides"].splitlines()
    entries = {line.split("] ", 1)[1]: line.split("]")[0].strip("[ ") for line in provides if line.strip()}
    for path in actions():
        if path != MAIN_PACKAGE:
            assert entries.pop(path.name) == "main"
            assert "noindex" in header(path)  # part of the package, not a package of its own
    for path in libraries():
        assert entries.pop(path.name) == "nomain"
        assert "noindex" in header(path)
    assert entries == {}


def test_index_lists_every_file_with_its_role():
    index = ET.parse(ROOT / "reaper_scripts" / "index.xml").getroot()
    (category,) = index.findall("category")
    assert category.get("name") == "VampBridge"
    (package,) = category.findall("reapack")
    assert package.get("name") == MAIN_PACKAGE.name and package.get("type") == "script"
    (version,) = package.findall("version")
    assert version.get("name") == header(MAIN_PACKAGE)["version"]
    sources = {s.get("file"): s for s in version.findall("source")}
    assert set(sources) == {p.name for p in actions() + libraries()}
    for name, source in sources.items():
        assert (source.get("main") == "main") == name.startswith("VampBridge - ")
        assert unquote(source.text).endswith("/reaper_scripts/VampBridge/" + name)


@pytest.mark.skipif(shutil.which("luac5.4") is None and shutil.which("lua5.4") is None, reason="no Lua 5.4")
def test_every_script_compiles_under_lua_5_4():
    lua = shutil.which("lua5.4")
    for path in actions() + libraries():
        check = f"assert(loadfile({str(path)!r}))"
        subprocess.run([lua, "-e", check], check=True, timeout=20)
