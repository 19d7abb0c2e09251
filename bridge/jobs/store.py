"""Durable job state: jobs, finished variations and their delivery, in one SQLite file.

The store is the service's memory across crashes. Every change is one short transaction, so a
process killed at any instant (even `kill -9`) leaves either the old or the new state, never half:

- a job row is written before the job is acknowledged to the client (`accepted`);
- a variation row and its delivery row are written together, after the pipeline has put the
  variation's files on disk and before the `result` message is sent;
- `recover()` at start-up turns jobs left `queued` or `running` by a dead process into
  `interrupted`, which `resume` can pick up again.

The database runs in WAL mode with `synchronous=NORMAL`: a committed transaction survives a crash
of the process; after a power cut the last few commits may be lost but the file stays consistent.
The store is thread-safe (one connection behind a lock); it knows nothing of OSC or the pipeline.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SCHEMA_VERSION = 1

#: Job states. `queued` and `running` only exist while a service process is alive.
QUEUED, RUNNING, DONE, CANCELLED, FAILED, INTERRUPTED = (
    "queued", "running", "done", "cancelled", "failed", "interrupted")
ACTIVE_STATES = (QUEUED, RUNNING)
RESUMABLE_STATES = (INTERRUPTED, CANCELLED, FAILED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    job_id        TEXT PRIMARY KEY,
    seq           INTEGER NOT NULL,          -- submission order
    client        TEXT NOT NULL,
    kind          TEXT NOT NULL,             -- 'vamp' or 'rerender'
    request_json  TEXT NOT NULL,             -- the request, seed included
    priority      INTEGER NOT NULL,          -- 0 interactive, 1 batch
    state         TEXT NOT NULL,
    n_total       INTEGER NOT NULL,
    source_path   TEXT NOT NULL,
    item_guid     TEXT NOT NULL,
    take_guid     TEXT NOT NULL,
    error_code    TEXT,
    error_message TEXT,
    created_at    REAL NOT NULL,             -- seconds since the epoch
    updated_at    REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state);
CREATE TABLE IF NOT EXISTS variations (
    job_id      TEXT NOT NULL REFERENCES jobs(job_id),
    idx         INTEGER NOT NULL,
    seed        INTEGER NOT NULL,
    audio_path  TEXT NOT NULL,
    recipe_path TEXT NOT NULL,
    take_name   TEXT NOT NULL,
    finished_at REAL NOT NULL,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS deliveries (
    job_id      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    client      TEXT NOT NULL,
    sends       INTEGER NOT NULL DEFAULT 0,  -- how many times the result was sent
    acked_at    REAL,                        -- NULL until the client acknowledged it
    PRIMARY KEY (job_id, idx),
    FOREIGN KEY (job_id, idx) REFERENCES variations(job_id, idx)
);
CREATE INDEX IF NOT EXISTS deliveries_unacked ON deliveries(client) WHERE acked_at IS NULL;
"""


@dataclass(frozen=True)
class JobRecord:
    """One job as stored. `request` is the request's `to_dict()`, with the seed filled in."""

    job_id: str
    seq: int
    client: str
    kind: str
    request: dict
    priority: int
    state: str
    n_total: int
    n_finished: int
    source_path: str
    item_guid: str
    take_guid: str
    error_code: str | None
    error_message: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class VariationRecord:
    """A finished variation: its files are on disk. `seed` is the seed that made it."""

    job_id: str
    index: int
    seed: int
    audio_path: str
    recipe_path: str
    take_name: str
    client: str
    item_guid: str
    take_guid: str
    acked: bool


class JobStore:
    """SQLite-backed store of jobs, variations and deliveries (see the module docstring)."""

    def __init__(self, path: str | Path, *, exclusive: bool = True) -> None:
        """Open (or create) the database at `path`.

        With `exclusive`, a lock file `<path>.lock` keeps a second service (say the companion
        and `vampbridge serve`) off the same database: it would take the first one's running
        jobs for interrupted ones. Raises RuntimeError when another process holds it.
        """
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _ProcessLock(self.path.with_name(self.path.name + ".lock")) \
            if exclusive else None
        try:
            self._open()
        except BaseException:
            if self._lock_file is not None:
                self._lock_file.release()
            raise

    def _open(self) -> None:
        self._lock = threading.RLock()
        # isolation_level=None: we open transactions ourselves with BEGIN IMMEDIATE.
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False,
                                     isolation_level=None, timeout=10.0)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._create_schema()

    # -- plumbing ---------------------------------------------------------------------------

    def _create_schema(self) -> None:
        with self._lock:
            self._conn.executescript(_SCHEMA)
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._conn.execute("INSERT INTO meta(key, value) VALUES('schema', ?)",
                                   (str(SCHEMA_VERSION),))
            elif int(row["value"]) != SCHEMA_VERSION:
                raise RuntimeError(
                    f"job database {self.path} has schema {row['value']}, this VampBridge "
                    f"expects {SCHEMA_VERSION}; move the file away to start with an empty one")

    class _Tx:
        def __init__(self, store: "JobStore") -> None:
            self.store = store

        def __enter__(self) -> sqlite3.Connection:
            self.store._lock.acquire()
            self.store._conn.execute("BEGIN IMMEDIATE")
            return self.store._conn

        def __exit__(self, exc_type, exc, tb) -> None:
            try:
                self.store._conn.execute("COMMIT" if exc_type is None else "ROLLBACK")
            finally:
                self.store._lock.release()

    def _transaction(self) -> "JobStore._Tx":
        return JobStore._Tx(self)

    def _query(self, sql: str, params: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()
        if self._lock_file is not None:
            self._lock_file.release()

    # -- jobs -------------------------------------------------------------------------------

    def add_job(self, *, job_id: str, client: str, kind: str, request: dict, priority: int,
                n_total: int, source_path: str, item_guid: str = "",
                take_guid: str = "") -> JobRecord:
        """Insert a new job in state `queued`. Raises KeyError if `job_id` already exists."""
        now = time.time()
        with self._transaction() as c:
            if c.execute("SELECT 1 FROM jobs WHERE job_id=?", (job_id,)).fetchone():
                raise KeyError(job_id)
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            c.execute(
                "INSERT INTO jobs(job_id, seq, client, kind, request_json, priority, state,"
                " n_total, source_path, item_guid, take_guid, created_at, updated_at)"
                " VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job_id, seq, client, kind, json.dumps(request), int(priority), QUEUED,
                 int(n_total), source_path, item_guid, take_guid, now, now))
        return self.get_job(job_id)  # type: ignore[return-value]

    def get_job(self, job_id: str) -> JobRecord | None:
        rows = self._query(_JOB_SELECT + " WHERE j.job_id=? GROUP BY j.job_id", (job_id,))
        return _job_from_row(rows[0]) if rows else None

    def jobs(self, *, limit: int | None = None) -> list[JobRecord]:
        """Jobs, newest first; `limit` keeps only the newest ones."""
        sql = _JOB_SELECT + " GROUP BY j.job_id ORDER BY j.seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_job_from_row(r) for r in self._query(sql)]

    def jobs_in_state(self, *states: str) -> list[JobRecord]:
        marks = ",".join("?" * len(states))
        rows = self._query(_JOB_SELECT + f" WHERE j.state IN ({marks}) GROUP BY j.job_id"
                           " ORDER BY j.seq", tuple(states))
        return [_job_from_row(r) for r in rows]

    def set_state(self, job_id: str, state: str, *, error_code: str | None = None,
                  error_message: str | None = None) -> None:
        with self._transaction() as c:
            c.execute("UPDATE jobs SET state=?, error_code=?, error_message=?, updated_at=?"
                      " WHERE job_id=?", (state, error_code, error_message, time.time(), job_id))

    def recover(self) -> list[str]:
        """Mark jobs a dead process left `queued` or `running` as `interrupted`; return their ids."""
        with self._transaction() as c:
            ids = [r[0] for r in c.execute(
                "SELECT job_id FROM jobs WHERE state IN (?, ?) ORDER BY seq", ACTIVE_STATES)]
            c.execute("UPDATE jobs SET state=?, updated_at=? WHERE state IN (?, ?)",
                      (INTERRUPTED, time.time(), *ACTIVE_STATES))
        return ids

    def prune(self, older_than_s: float) -> int:
        """Forget jobs that ended more than `older_than_s` seconds ago; return how many.

        Only jobs with nothing left to do go: `done`, `cancelled` or `failed`, untouched for that
        long, every result acknowledged by its client. Their audio and recipe files stay where
        they are (Reaper projects use them); only the rows go, so the database stays small.
        """
        cutoff = time.time() - older_than_s
        with self._transaction() as c:
            ids = [r[0] for r in c.execute(
                "SELECT job_id FROM jobs j WHERE state IN (?, ?, ?) AND updated_at < ? AND NOT EXISTS"
                " (SELECT 1 FROM deliveries d WHERE d.job_id = j.job_id AND d.acked_at IS NULL)",
                (DONE, CANCELLED, FAILED, cutoff))]
            for table in ("deliveries", "variations", "jobs"):
                c.executemany(f"DELETE FROM {table} WHERE job_id=?", [(i,) for i in ids])
        return len(ids)

    # -- variations and deliveries ------------------------------------------------------------

    def add_variation(self, job_id: str, index: int, *, seed: int, audio_path: str,
                      recipe_path: str, take_name: str) -> VariationRecord:
        """Record a finished variation and make it pending for the job's client.

        Re-recording the same variation (a re-run after a crash rewrote the same files) replaces
        the row and makes it pending again.
        """
        with self._transaction() as c:
            client = c.execute("SELECT client FROM jobs WHERE job_id=?", (job_id,)).fetchone()
            if client is None:
                raise KeyError(job_id)
            c.execute("INSERT OR REPLACE INTO variations(job_id, idx, seed, audio_path,"
                      " recipe_path, take_name, finished_at) VALUES(?,?,?,?,?,?,?)",
                      (job_id, index, seed, audio_path, recipe_path, take_name, time.time()))
            c.execute("INSERT OR REPLACE INTO deliveries(job_id, idx, client, sends, acked_at)"
                      " VALUES(?,?,?,0,NULL)", (job_id, index, client[0]))
            c.execute("UPDATE jobs SET updated_at=? WHERE job_id=?", (time.time(), job_id))
        return self.variation(job_id, index)  # type: ignore[return-value]

    def variation(self, job_id: str, index: int) -> VariationRecord | None:
        rows = self._query(_VARIATION_SELECT + " WHERE v.job_id=? AND v.idx=?", (job_id, index))
        return _variation_from_row(rows[0]) if rows else None

    def variations(self, job_id: str) -> list[VariationRecord]:
        rows = self._query(_VARIATION_SELECT + " WHERE v.job_id=? ORDER BY v.idx", (job_id,))
        return [_variation_from_row(r) for r in rows]

    def finished_indices(self, job_id: str) -> set[int]:
        return {r[0] for r in self._query("SELECT idx FROM variations WHERE job_id=?", (job_id,))}

    def pending(self, client: str | None = None) -> list[VariationRecord]:
        """Unacknowledged variations of `client` (None: of every client), oldest job first."""
        sql = _VARIATION_SELECT + " WHERE d.acked_at IS NULL"
        params: tuple = ()
        if client is not None:
            sql += " AND d.client=?"
            params = (client,)
        sql += " ORDER BY j.seq, v.idx"
        return [_variation_from_row(r) for r in self._query(sql, params)]

    def mark_sent(self, records: list[VariationRecord]) -> None:
        """Count one more send of each record (for `status` and debugging)."""
        with self._transaction() as c:
            c.executemany("UPDATE deliveries SET sends=sends+1 WHERE job_id=? AND idx=?",
                          [(r.job_id, r.index) for r in records])

    def ack(self, job_id: str, index: int) -> bool:
        """Mark a variation delivered. Returns False if there is no such finished variation."""
        with self._transaction() as c:
            cur = c.execute("UPDATE deliveries SET acked_at=COALESCE(acked_at, ?)"
                            " WHERE job_id=? AND idx=?", (time.time(), job_id, index))
            return cur.rowcount == 1


class _ProcessLock:
    """An exclusive lock on a file, held until `release()` or the process ends (even by SIGKILL)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "a+b")
        try:
            if sys.platform == "win32":
                import msvcrt
                self._file.seek(0)
                msvcrt.locking(self._file.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl
                fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._file.close()
            raise RuntimeError(f"another VampBridge service is using the job database next to "
                               f"{path}; stop it first (or give this one another --data-dir)") \
                from None

    def release(self) -> None:
        if not self._file.closed:
            self._file.close()  # closing drops the lock


_JOB_SELECT = (
    "SELECT j.*, COUNT(v.idx) AS n_finished FROM jobs j"
    " LEFT JOIN variations v ON v.job_id = j.job_id")

_VARIATION_SELECT = (
    "SELECT v.*, d.client AS d_client, d.acked_at, j.item_guid, j.take_guid, j.seq"
    " FROM variations v JOIN deliveries d ON d.job_id=v.job_id AND d.idx=v.idx"
    " JOIN jobs j ON j.job_id=v.job_id")


def _job_from_row(r: sqlite3.Row) -> JobRecord:
    return JobRecord(
        job_id=r["job_id"], seq=r["seq"], client=r["client"], kind=r["kind"],
        request=json.loads(r["request_json"]), priority=r["priority"], state=r["state"],
        n_total=r["n_total"], n_finished=r["n_finished"], source_path=r["source_path"],
        item_guid=r["item_guid"], take_guid=r["take_guid"], error_code=r["error_code"],
        error_message=r["error_message"], created_at=r["created_at"], updated_at=r["updated_at"])


def _variation_from_row(r: sqlite3.Row) -> VariationRecord:
    return VariationRecord(
        job_id=r["job_id"], index=r["idx"], seed=r["seed"], audio_path=r["audio_path"],
        recipe_path=r["recipe_path"], take_name=r["take_name"], client=r["d_client"],
        item_guid=r["item_guid"], take_guid=r["take_guid"], acked=r["acked_at"] is not None)
