"""Where the service may write: the request's output folder, or the default render folder.

The rule is `bridge.output_folder.check_output_dir`, the same for every request kind and for the
CLI (absolute; not a system folder nor a shared root such as `/tmp`, `/home` or the home folder
itself; checked before anything is created). The service never deletes, and never writes over a
file it did not create (`bridge.output_folder.OutputFolder` publishes exclusively).
"""

from __future__ import annotations

from pathlib import Path

from bridge.output_folder import check_output_dir as check_folder
from bridge.output_folder import is_system_folder

__all__ = ["check_output_dir", "is_system_folder"]


def check_output_dir(output_dir: str | None, default_dir: Path) -> Path:
    """The folder a job writes into, created if needed.

    `output_dir` None or "" means `default_dir` (the default render folder). Raises
    `bridge.request.RequestError` with code `bad_output_dir`.
    """
    return check_folder(output_dir or str(default_dir))
