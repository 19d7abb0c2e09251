"""Job requests the service accepts besides `bridge.request.VampRequest`."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from bridge.jobs.errors import JobError


@dataclass
class RerenderRequest:
    """Render a recorded variation again from its recipe, with other effects, seed or folder.

    `fx` None keeps the recorded chain; `seed` None keeps the recorded seed.
    """

    recipe_path: str
    fx: object = None
    seed: int | None = None
    output_dir: str | None = None
    item_guid: str = ""
    take_guid: str = ""

    n_variations = 1  # a rerender makes exactly one variation

    @property
    def source_path(self) -> str:
        return self.recipe_path

    def validate(self) -> None:
        """The recipe exists and is a VampBridge recipe whose source is still there, and the fx
        parse. Raises JobError or `bridge.request.RequestError`."""
        path = Path(self.recipe_path)
        if not self.recipe_path or not path.is_absolute():
            raise _error("recipe_path", "source_missing",
                         f"recipe_path {self.recipe_path!r} must be an absolute path to a recipe "
                         "JSON file written next to a variation")
        if not path.is_file():
            raise _error("recipe_path", "source_missing",
                         f"recipe_path {self.recipe_path!r} does not exist")
        if not os.access(path, os.R_OK):
            raise _error("recipe_path", "source_unreadable",
                         f"recipe_path {self.recipe_path!r} is not readable")
        if self.seed is not None and not 0 <= int(self.seed) < 2**31:
            raise _error("seed", "bad_argument", f"seed {self.seed} must be in 0..2147483647")
        self.recorded_request().validate()  # RequestError: the source moved, bad fx, ...

    def recorded_request(self):
        """The `VampRequest` the recipe records, with this request's fx. Raises RequestError."""
        from bridge.pipeline import request_from_recipe

        request, _ = request_from_recipe(self.recipe_path)
        if self.fx is not None:
            request.fx = self.fx
        return request

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RerenderRequest":
        return cls(**d)



def _error(field: str, code: str, message: str) -> JobError:
    err = JobError(code, message)
    err.field = field  # type: ignore[attr-defined]
    return err
