"""Beyond one machine: the job service over HTTP, the relay that forwards REAPER's jobs to it,
and bounces spread over a Ray cluster.

- `regions.py`: the remote service's content-addressed store of uploaded source regions;
- `http_service.py`: `vampbridge serve --http HOST:PORT` (aiohttp), beside the OSC service, on
  the same `JobService` and SQLite store;
- `http_client.py`: a small blocking client of that HTTP API (the relay, tests, benchmarks);
- `relay.py`: `RemotePipeline`, a pipeline for the local `JobService` that runs each job on the
  remote service and writes its files locally, so `vampbridge serve --remote URL` looks to REAPER
  exactly like a local service;
- `ray_bounce.py`: `vampbridge bounce --ray`, one model-holding actor per GPU (or CPU worker);
- `local_outputs.py`: a variation made elsewhere (remote, Ray) written into a local folder by the
  local run's own code (`bridge.variation_files`), so the relay and the Ray bounce write exactly
  the files a local run writes, never over a file VampBridge did not create.

Layering: this package sits beside `bridge/osc/` (a front end of `bridge/jobs/`); the engine,
the pipeline and the job service know nothing of it.
"""
