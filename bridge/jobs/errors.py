"""Errors the job service raises, each with a stable code from `docs/osc.md`."""

from __future__ import annotations


class JobError(Exception):
    """A request the job service refuses, e.g. an unknown job id or a bad output folder.

    `code` is one of the stable error codes of `docs/osc.md` (`unknown_job`, `bad_output_dir`,
    `bad_argument`, ...); the message names the bad value and what to do next.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
