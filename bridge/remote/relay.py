"""The relay: REAPER's usual local OSC service, with the work done by a remote HTTP service.

`vampbridge serve --remote URL --token T` runs the local `JobService` and `BridgeServer` exactly
as `vampbridge serve` does (same queue, SQLite store, `pending`/`ack` with REAPER), with a
`RemotePipeline` in place of the model. For each job it

1. reads only the region being vamped from the local source file and writes it as a 32-bit
   float WAV (the samples the local pipeline would read, unchanged), named by its SHA-256;
2. uploads it unless the remote already has it (`HEAD`), so a region travels once;
3. submits the job under an id derived from the request, so a resumed or repeated local job
   finds the same remote job instead of starting another;
4. follows the job's event stream; for each finished variation it downloads the recipe, names
   the files as a local run would (the same fingerprint: the local source's hash, the request's
   region, the remote's model hashes) and writes the tokens, the WAV and the recipe with the
   local paths into the local render folder through the code a local run uses
   (`bridge.remote.local_outputs`: the same folder rule, exclusive publish, `-2` names when a
   file of the user's has the name, the created-files record); an earlier render of
   VampBridge's own already there is reused, not downloaded again. Then it reports the variation
   (`result` over OSC) and acknowledges it remotely.

A broken connection is retried with back-off; the stream replays the job's finished variations,
of which only the ones not yet here are fetched. A remote restart leaves the job `interrupted`
there; the relay resumes it. Cancel and shutdown cancel the remote job (its finished variations
stay; a local `resume` resumes it remotely too).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from pathlib import Path

from bridge.jobs.errors import JobError
from bridge.output_folder import OutputFolder
from bridge.paths import default_render_dir
from bridge.remote.http_client import RemoteClient, RemoteError, RemoteUnavailable
from bridge.remote.local_outputs import local_names, write_variation

log = logging.getLogger(__name__)

RETRY_MIN_S, RETRY_MAX_S = 0.2, 5.0
RELAY_CLIENT = "relay"


class RemotePipeline:
    """A pipeline (`run`, `rerender`, `info`) for the local JobService that runs jobs remotely.

    `cache_dir` holds the region file of the running job (cut from the source, named by its
    hash) and keeps the remote's recipes (by remote job and variation; safe to delete).
    `stats` counts uploads and downloads (per file) for tests and benchmarks.
    """

    def __init__(self, url: str, *, token: str = "", cache_dir: Path,
                 client_name: str = RELAY_CLIENT, give_up_s: float | None = None) -> None:
        self.remote = RemoteClient(url, token=token)
        self.cache_dir = Path(cache_dir)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.client_name = client_name
        self.give_up_s = give_up_s  # None: retry a lost connection until the job is cancelled
        self.stats = {"uploads": 0, "upload_bytes": 0, "downloads": {}}
        self._stats_lock = threading.Lock()

    # -- what the JobService calls ------------------------------------------------------------

    def info(self) -> dict:
        """The remote's engine, device and presets (`device` says it is remote)."""
        try:
            hello = self.remote.hello()
        except (RemoteError, RemoteUnavailable) as e:
            raise RuntimeError(f"the remote service {self.remote.url} does not answer: {e}") from None
        return {"engine_version": hello.get("engine_version", ""),
                "device": f"remote {hello.get('device', '')} at {self.remote.url}",
                "models": hello.get("models", []), "presets": hello.get("presets", {})}

    def run(self, request, *, on_progress=None, on_result=None, should_cancel=None,
            only_variations=None, take_suffix: str = "", **_ignored) -> list:
        """Make the request's variations on the remote service; see the module docstring."""
        from bridge.pipeline import Progress

        request.validate()
        if request.seed is None:
            request.seed = int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF
        todo = sorted(set(range(request.n_variations) if only_variations is None else only_variations))
        cancel = should_cancel or (lambda: False)
        if on_progress is not None:
            on_progress(Progress(0.0, "loading", -1))
        # Held for the whole job, as a local run holds it; refused before anything is uploaded.
        with OutputFolder.open(request.output_dir or default_render_dir()) as folder:
            region, region_sha = self._region_file(request)
            try:
                return self._run_remotely(request, folder, region, region_sha, todo, on_progress,
                                          on_result, cancel, take_suffix)
            finally:
                region.unlink(missing_ok=True)  # cut again from the source when needed

    def _run_remotely(self, request, folder: OutputFolder, region: Path, region_sha: str,
                      todo: list[int], on_progress, on_result, cancel, take_suffix: str) -> list:
        from bridge.pipeline import Cancelled, Progress

        remote_job = self._remote_job_id(request, region_sha)
        job = {"job_id": remote_job, "client": self.client_name, "kind": "vamp",
               "priority": "interactive", "region_sha256": region_sha,
               "request": _remote_fields(request)}
        delivered: dict[int, object] = {}
        n_total = request.n_variations
        n_before = n_total - len(todo)

        def progress(data: dict) -> None:
            if on_progress is None:
                return
            run_fraction = (float(data["fraction"]) * n_total - n_before) / max(1, len(todo))
            on_progress(Progress(min(1.0, max(0.0, run_fraction)), str(data["stage"]),
                                 int(data["variation"])))

        def on_remote_result(data: dict) -> None:
            k = int(data["variation"])
            if k not in todo or k in delivered:
                return
            result = self._fetch(request, folder, remote_job, data, take_suffix)
            delivered[k] = result
            if on_result is not None:
                on_result(result)
            self._retrying(lambda: self.remote.ack(remote_job, k), cancel)

        submitted = attached = False
        while True:
            if cancel():
                self._cancel_remote(remote_job)
                raise Cancelled()
            try:
                if not submitted:
                    attached = not self._submit(job, region, region_sha)
                    submitted = True
                state = self._follow(remote_job, progress, on_remote_result, cancel)
            except RemoteUnavailable as e:
                log.warning("remote job %s: %s; retrying", remote_job, e)
                self._wait_for_remote(cancel)
                continue
            except RemoteError as e:  # refused (too large, bad token, ...): the job fails with its code
                raise JobError(e.code, f"the remote service {self.remote.url} refused: {e.message}") from None
            if state == "cancelled_here":
                self._cancel_remote(remote_job)
                raise Cancelled()
            if set(todo) <= set(delivered):
                return [delivered[k] for k in todo]
            if state in ("interrupted", "cancelled") or (state == "failed" and attached):
                attached = False  # a job that failed before this run is retried once
                log.info("remote job %s is %s; resuming it", remote_job, state)
                self._retrying(lambda: self.remote.resume(remote_job), cancel)
                continue
            status = self._retrying(lambda: self.remote.status(remote_job), cancel)
            if status["state"] == "failed":
                raise JobError(status.get("error_code") or "engine_error",
                               f"on the remote service: {status.get('error_message') or 'failed'}")
            if status["state"] == "done":  # done, yet a variation we need is missing
                raise JobError("engine_error", f"the remote job {remote_job} finished without "
                               f"variations {sorted(set(todo) - set(delivered))}")

    def rerender(self, recipe_path, *, fx=None, seed=None, output_dir=None, on_progress=None,
                 should_cancel=None):
        """Rebuild one variation from its local recipe: the recorded request, run remotely."""
        from bridge.pipeline import request_from_recipe

        request, index = request_from_recipe(recipe_path)
        suffix = ""
        if fx is not None:
            request.fx = fx  # the take is named after its new chain, as Pipeline.rerender names it
            suffix = fx if isinstance(fx, str) and fx.strip() and fx.strip()[0] not in "[{@" else "fx"
        if seed is not None:
            request.seed = int(seed) - index
        if output_dir is not None:
            request.output_dir = str(output_dir)
        return self.run(request, on_progress=on_progress, should_cancel=should_cancel,
                        only_variations=[index], take_suffix=suffix)[0]

    # -- steps --------------------------------------------------------------------------------

    def _region_file(self, request) -> tuple[Path, str]:
        """The region's samples as a float32 WAV in the cache, and its SHA-256."""
        from bridge.audio import read_region, sha256_file, write_audio_atomic

        audio, sample_rate = read_region(request.source_path, request.start_s, request.length_s)
        scratch = self.cache_dir / f"region-{os.getpid()}-{threading.get_ident()}.wav"
        write_audio_atomic(scratch, audio, sample_rate, bit_depth="float32")
        sha = sha256_file(scratch)
        final = self.cache_dir / f"{sha}.wav"
        os.replace(scratch, final)
        return final, sha

    def _remote_job_id(self, request, region_sha: str) -> str:
        """The same request (seed included) on the same region: the same remote job."""
        key = json.dumps({"client": self.client_name, "region": region_sha,
                          "request": _remote_fields(request)}, sort_keys=True, default=str)
        return f"{self.client_name}-{hashlib.sha256(key.encode()).hexdigest()[:32]}"

    def _submit(self, job: dict, region: Path, region_sha: str) -> bool:
        """Upload the region if needed and submit; False if the remote job already existed."""
        if not self.remote.has_region(region_sha):
            self.remote.upload_region(region_sha, region)
            with self._stats_lock:
                self.stats["uploads"] += 1
                self.stats["upload_bytes"] += region.stat().st_size
        try:
            self.remote.submit(job)
        except RemoteError as e:
            if e.code != "job_exists":
                raise
            return False  # submitted before (a retry, a resume, the same request): follow it
        return True

    def _follow(self, remote_job: str, progress, on_result, cancel) -> str:
        """Read the job's events until `done`; returns the remote state, or `cancelled_here`."""
        for name, data in self.remote.events(remote_job):
            if cancel():
                return "cancelled_here"
            if name == "progress":
                progress(data)
            elif name == "result":
                on_result(data)
            elif name == "done":
                return str(data["state"])
        raise RemoteUnavailable("the event stream ended without `done`")

    def _fetch(self, request, folder: OutputFolder, remote_job: str, data: dict, take_suffix: str):
        """One finished variation in the local render folder, named and written as locally."""
        from bridge.atomic import atomic_file
        from bridge.pipeline import VariationResult
        from bridge.variation_files import earlier_render

        k = int(data["variation"])
        remote_recipe_path = self.cache_dir / "recipes" / f"{remote_job}-{k}.json"
        if not remote_recipe_path.is_file():  # kept: a repeated or resumed job needs it again
            with atomic_file(remote_recipe_path, "wb") as f:  # the relay's own cache
                self._download(remote_job, k, "recipe", f)
        remote_recipe = json.loads(remote_recipe_path.read_text())
        names = local_names(request, model_files=remote_recipe["models"]["files"],
                            seed=int(remote_recipe["seed"]), precision=remote_recipe.get("precision", "fp32"))
        take_name = (str(remote_recipe.get("take_name", data.get("take_name", ""))) + " "
                     + take_suffix).strip()
        earlier = earlier_render(folder, names.stem, names.fingerprint)
        if earlier is not None:
            audio_path, recipe_path = (folder.path / name for name in earlier)
            return VariationResult(k, int(data["seed"]), str(audio_path), str(recipe_path), take_name,
                                   reused=True)
        audio_path, recipe_path = write_variation(
            folder, request, names, recipe=remote_recipe, take_name=take_name,
            write_audio=lambda f: self._download(remote_job, k, "audio", f),
            write_tokens=lambda f: self._download(remote_job, k, "tokens", f))
        return VariationResult(k, int(data["seed"]), str(audio_path), str(recipe_path), take_name)

    def _download(self, remote_job: str, k: int, kind: str, f) -> None:
        """The variation's file `kind` into the new binary file `f`, retried from the start
        while the remote is unreachable."""
        deadline = None if self.give_up_s is None else time.monotonic() + self.give_up_s
        delay = RETRY_MIN_S
        while True:
            try:
                self.remote.download_into(remote_job, k, kind, f)
                break
            except RemoteUnavailable as e:
                if deadline is not None and time.monotonic() > deadline:
                    raise JobError("engine_error", f"cannot download from the remote service: {e}") from None
                f.seek(0)
                f.truncate()
                time.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)
        with self._stats_lock:
            key = f"{remote_job}/{k}/{kind}"
            self.stats["downloads"][key] = self.stats["downloads"].get(key, 0) + 1

    def _cancel_remote(self, remote_job: str) -> None:
        try:
            self.remote.cancel(remote_job)
        except (RemoteError, RemoteUnavailable) as e:
            log.info("could not cancel remote job %s: %s", remote_job, e)

    def _retrying(self, call, cancel):
        """`call()`, retried while the remote is unreachable (until cancelled or `give_up_s`)."""
        from bridge.pipeline import Cancelled

        deadline = None if self.give_up_s is None else time.monotonic() + self.give_up_s
        delay = RETRY_MIN_S
        while True:
            try:
                return call()
            except RemoteError as e:
                raise JobError(e.code, f"the remote service {self.remote.url} refused: {e.message}") from None
            except RemoteUnavailable as e:
                if cancel():
                    raise Cancelled() from None
                if deadline is not None and time.monotonic() > deadline:
                    raise JobError("engine_error", f"the remote service is unreachable: {e}") from None
                time.sleep(delay)
                delay = min(RETRY_MAX_S, delay * 2)

    def _wait_for_remote(self, cancel) -> None:
        self._retrying(self.remote.hello, cancel)


def _remote_fields(request) -> dict:
    """The request as the remote runs it: on the uploaded region (which starts at 0 and is
    wholly vamped), without local paths; `regen_start_s` (source seconds) moves with the region."""
    fields = request.to_dict()
    for name in ("source_path", "output_dir"):
        fields.pop(name, None)
    fields["start_s"], fields["length_s"] = 0.0, None
    if fields.get("regen_start_s") is not None:
        fields["regen_start_s"] = fields["regen_start_s"] - request.start_s
    for name in ("mask", "fx", "sampling"):  # `@file` arguments are read here, not remotely
        from bridge.request import load_json_argument

        fields[name] = load_json_argument(fields[name], name)
    return fields
