"""Load on loopback: 50 jobs from 5 clients, every result delivered exactly once, none lost."""

import collections
import threading
from pathlib import Path

from bridge.osc.client import OscClient
from test_service_support import InProcessBridge, vamp_args, write_test_wav

N_CLIENTS, JOBS_PER_CLIENT = 5, 10


class AckingClient:
    """Submits its jobs, then acknowledges every `result` as it arrives until all are done."""

    def __init__(self, port: int, name: str, source: Path, out: Path) -> None:
        self.osc = OscClient(port=port, name=name)
        self.name, self.source, self.out = name, source, out
        self.job_ids: list[str] = []
        self.live = collections.Counter()  # (job, variation) -> times received
        self.done: dict[str, tuple] = {}
        self.errors: list = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for _ in range(JOBS_PER_CLIENT):
            self.job_ids.append(self.osc.request(
                "vamp", *vamp_args(self.source, client=self.name, output_dir=self.out)))
        while len(self.done) < JOBS_PER_CLIENT:
            r = self.osc.wait_for(where=lambda r: r.name in ("result", "done", "error"),
                                  timeout_s=300)
            if r.name == "result":
                self.live[(r.id, r.args[1])] += 1
                self.osc.request("ack", r.id, r.args[1])
            elif r.name == "done":
                self.done[r.id] = r.args[1:]
            else:
                self.errors.append(r.args)
                if r.id in self.job_ids:
                    self.done[r.id] = ("error",)

    def settle(self) -> collections.Counter:
        """Wait for the acks; recover anything lost via `pending`; return all deliveries."""
        acks = sum(self.live.values())
        for _ in range(acks):
            self.osc.wait_for("acked", timeout_s=30)
        delivered = collections.Counter(self.live)
        rid = self.osc.request("pending", self.name)
        recovered = self.osc.wait_for("pending", rid, timeout_s=30).args[1]
        for r in self.osc.drain():
            if r.name == "result":
                delivered[(r.id, r.args[1])] += 1
                self.osc.request("ack", r.id, r.args[1])
                self.osc.wait_for("acked", timeout_s=30)
        assert recovered == 0 or sum(delivered.values()) == len(delivered)
        return delivered


def test_fifty_jobs_from_five_clients_deliver_every_result_exactly_once(tmp_path, tiny_models):
    source = write_test_wav(tmp_path / "media" / "loop.wav")
    out = tmp_path / "renders"
    with InProcessBridge(tmp_path / "data", tiny_models) as bridge:
        clients = [AckingClient(bridge.port, f"bounce-{i}" if i % 2 else f"reaper:{i}", source,
                                out) for i in range(N_CLIENTS)]
        try:
            for c in clients:
                c.thread.start()
            for c in clients:
                c.thread.join(600)
                assert not c.thread.is_alive(), f"{c.name} did not see all its jobs finish"
            for c in clients:
                assert c.errors == []
                assert set(c.done) == set(c.job_ids)
                assert all(d == (1, 0, "done") for d in c.done.values())
                delivered = c.settle()
                assert set(delivered) == {(j, 0) for j in c.job_ids}  # none lost
                assert set(delivered.values()) == {1}  # each exactly once
                again = c.osc.wait_for("pending", c.osc.request("pending", c.name))
                assert again.args[1] == 0  # everything acknowledged
        finally:
            for c in clients:
                c.osc.close()
        statuses = bridge.service.status(limit=100)
        assert len(statuses) == N_CLIENTS * JOBS_PER_CLIENT
        assert {s.state for s in statuses} == {"done"}
    files = sorted(p.name for p in out.iterdir() if p.suffix == ".wav")
    assert len(files) == N_CLIENTS * JOBS_PER_CLIENT == len(set(files))
