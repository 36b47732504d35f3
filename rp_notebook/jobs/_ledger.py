"""The job ledger: every job this user submits, in SQLite, so a dead kernel loses nothing it paid for.

Runpod keeps a finished job's result for 30 minutes (`/run`) and forgets an unfinished one only
after its TTL; a kernel restart forgets everything at once. So each job is written down when it
is submitted (endpoint, base URL, time, parameters), every status change is recorded, and a
completed result is kept as soon as it arrives: media results (speech, layers) as files in the
results folder, useful on their own; a worker's plain JSON output in the ledger row itself
(`output`), written in the same transaction as the job's end, so 500 ending jobs cost one commit
and no files. After a restart,
`%runpod jobs` lists them and `%runpod attach JOB_ID` (or `JobManager.recover()`) follows the
ones still in flight, within Runpod's retention window, or shows the saved result.

Where: `$RP_NOTEBOOK_DATA_DIR`, else the platform's user data folder (~/.local/share/rp_notebook):
`ledger.sqlite3` and `results/<job id>/` (media results, and JSON outputs over 1 MB). Parameters
are stored without secrets and without media payloads: an `s3Config` (it carries keys) and webhook URLs (they may carry tokens) are never
written; a base64 clip or image is replaced by its size and digest.

SQLite in WAL mode with short transactions: several kernels of the same user can share the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..costs import EndpointRates, JobCost

__all__ = ["DATA_DIR_ENV", "EndpointChange", "Ledger", "LedgerEntry", "data_dir", "safe_parameters"]

DATA_DIR_ENV = "RP_NOTEBOOK_DATA_DIR"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id        TEXT NOT NULL,
    endpoint_id   TEXT NOT NULL,
    base_url      TEXT NOT NULL,
    model         TEXT,
    status        TEXT NOT NULL,
    submitted_at  REAL NOT NULL,
    updated_at    REAL NOT NULL,
    ended_at      REAL,
    parameters    TEXT NOT NULL DEFAULT '{}',
    result_path   TEXT,
    error         TEXT,
    PRIMARY KEY (base_url, endpoint_id, job_id)
);
CREATE INDEX IF NOT EXISTS jobs_by_time ON jobs (submitted_at DESC);
CREATE TABLE IF NOT EXISTS endpoint_changes (
    base_url      TEXT NOT NULL,
    endpoint_id   TEXT NOT NULL,
    changed_at    REAL NOT NULL,
    pools         TEXT NOT NULL,
    gpu_count     INTEGER NOT NULL,
    workers_min   INTEGER NOT NULL,
    idle_timeout_s REAL NOT NULL,
    deleted       INTEGER NOT NULL DEFAULT 0
);
"""
#: Columns added after the first release, with their types: added to an older ledger when opened.
_ADDED_COLUMNS = {
    "notebook": "TEXT",
    "worker_id": "TEXT",
    "delay_s": "REAL",
    "execution_s": "REAL",
    "cost": "TEXT",
    "output": "TEXT",
}
_COLUMNS = (
    "job_id, endpoint_id, base_url, model, status, submitted_at, updated_at, ended_at, parameters,"
    " result_path, error, notebook, worker_id, delay_s, execution_s, cost, output"
)


def data_dir() -> Path:
    """`$RP_NOTEBOOK_DATA_DIR`, else the platform's user data folder for rp_notebook."""
    folder = os.environ.get(DATA_DIR_ENV)
    if not folder:
        from platformdirs import user_data_dir

        folder = user_data_dir("rp_notebook", appauthor=False)
    return Path(folder).expanduser()


@dataclass(frozen=True)
class LedgerEntry:
    job_id: str
    endpoint_id: str
    base_url: str
    model: str | None
    status: str
    submitted_at: float
    updated_at: float
    ended_at: float | None
    parameters: Mapping[str, Any]
    result_path: str | None
    error: str | None
    #: The notebook (Jupyter's session name) or None outside one.
    notebook: str | None = None
    worker_id: str | None = None
    delay_s: float | None = None
    execution_s: float | None = None
    cost: JobCost | None = None
    #: A plain JSON output kept in the ledger itself (as JSON text); media results are in result_path.
    output: str | None = None

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def has_result(self) -> bool:
        """Whether the job's result was kept (in the results folder or in the ledger)."""
        return self.result_path is not None or self.output is not None


@dataclass(frozen=True)
class EndpointChange:
    """An endpoint deployed, scaled or deleted from here: what its workers cost from `changed_at` on."""

    base_url: str
    changed_at: float
    rates: EndpointRates
    deleted: bool = False


def safe_parameters(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs as they may be stored: media payloads summarised, nothing that looks like a secret."""
    safe: dict[str, Any] = {}
    for key, value in inputs.items():
        if isinstance(value, str) and len(value) > 512 and not value.startswith(("http://", "https://")):
            digest = hashlib.sha256(value.encode()).hexdigest()[:12]
            safe[key] = f"<{len(value):,} characters, sha256 {digest}>"
        elif isinstance(value, bytes):
            safe[key] = f"<{len(value):,} bytes, sha256 {hashlib.sha256(value).hexdigest()[:12]}>"
        elif isinstance(value, str | int | float | bool) or value is None:
            safe[key] = value
        else:
            safe[key] = repr(value)[:200]
    return safe


class Ledger:
    """The SQLite ledger and results folder under `root` (default: `data_dir()`)."""

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else data_dir()
        self.root.mkdir(parents=True, exist_ok=True)
        self.results_dir = self.root / "results"
        self.path = self.root / "ledger.sqlite3"
        self._lock = threading.RLock()
        self._depth = 0  # transactions open in the thread holding the lock (a batch holds the outer one)
        self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a kernel crash
        self._db.executescript(_SCHEMA)
        known = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in known:  # a ledger written by an earlier version: keep its rows
                self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def batch(self) -> AbstractContextManager[sqlite3.Connection]:
        """Several records in one transaction, committed once (the recorder's writer groups what is
        queued: a commit per record would make 500 ending jobs wait for 1,500 commits)."""
        return self._transaction()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._db.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._db
            except BaseException:
                self._depth -= 1
                if outer:
                    self._db.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._db.execute("COMMIT")

    # ------------------------------------------------------------------ writing
    def record_submitted(
        self,
        *,
        job_id: str,
        endpoint_id: str,
        base_url: str,
        model: str | None,
        status: str,
        parameters: Mapping[str, Any],
        submitted_at: float | None = None,
        notebook: str | None = None,
        retried: bool = False,
    ) -> None:
        """A job Runpod accepted (again, for one attached or retried). retried: it runs again, so the
        result kept from its first run is forgotten; an attached job keeps what the ledger has."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (job_id, endpoint_id, base_url, model, status, submitted_at, updated_at,"
                " parameters, notebook) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (base_url, endpoint_id, job_id) DO UPDATE SET status = excluded.status,"
                " updated_at = excluded.updated_at, ended_at = NULL, error = NULL,"
                " result_path = CASE WHEN ? THEN NULL ELSE result_path END,"
                " output = CASE WHEN ? THEN NULL ELSE output END",
                (
                    job_id,
                    endpoint_id,
                    base_url,
                    model,
                    status,
                    submitted_at or now,
                    now,
                    json.dumps(safe_parameters(parameters)),
                    notebook,
                    retried,
                    retried,
                ),
            )

    def record_status(
        self,
        *,
        job_id: str,
        endpoint_id: str,
        base_url: str,
        status: str,
        ended: bool = False,
        error: str | None = None,
        result_path: str | os.PathLike[str] | None = None,
        worker_id: str | None = None,
        delay_s: float | None = None,
        execution_s: float | None = None,
        cost: JobCost | None = None,
        output: str | None = None,
    ) -> None:
        """A status change; with ended=True, the job's end, with what it left (output: the
        result's JSON text, when it is kept in the ledger)."""
        now = time.time()
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, updated_at = ?,"
                " ended_at = CASE WHEN ? THEN COALESCE(ended_at, ?) ELSE ended_at END,"
                " error = COALESCE(?, error), result_path = COALESCE(?, result_path),"
                " worker_id = COALESCE(?, worker_id), delay_s = COALESCE(?, delay_s),"
                " execution_s = COALESCE(?, execution_s), cost = COALESCE(?, cost),"
                " output = COALESCE(?, output)"
                " WHERE base_url = ? AND endpoint_id = ? AND job_id = ?",
                (
                    status,
                    now,
                    ended,
                    now,
                    error,
                    str(result_path) if result_path is not None else None,
                    worker_id,
                    delay_s,
                    execution_s,
                    None if cost is None else json.dumps(cost.to_json()),
                    output,
                    base_url,
                    endpoint_id,
                    job_id,
                ),
            )

    def record_cost(self, *, job_id: str, endpoint_id: str, base_url: str, cost: JobCost) -> None:
        """A job's cost, estimated after its end was recorded."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET cost = ? WHERE base_url = ? AND endpoint_id = ? AND job_id = ?",
                (json.dumps(cost.to_json()), base_url, endpoint_id, job_id),
            )

    def record_endpoint_change(self, base_url: str, rates: EndpointRates, *, deleted: bool = False) -> None:
        """An endpoint deployed, scaled or deleted from here (its active workers' cost starts or stops)."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO endpoint_changes (base_url, endpoint_id, changed_at, pools, gpu_count,"
                " workers_min, idle_timeout_s, deleted) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    base_url,
                    rates.endpoint_id,
                    time.time(),
                    ",".join(rates.pools),
                    rates.gpu_count,
                    0 if deleted else rates.workers_min,
                    rates.idle_timeout_s,
                    int(deleted),
                ),
            )

    def endpoint_changes(self) -> list[EndpointChange]:
        """Every endpoint change recorded, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT base_url, endpoint_id, changed_at, pools, gpu_count, workers_min, idle_timeout_s,"
                " deleted FROM endpoint_changes ORDER BY changed_at"
            ).fetchall()
        return [
            EndpointChange(
                base_url=row[0],
                changed_at=row[2],
                rates=EndpointRates(
                    endpoint_id=row[1],
                    pools=tuple(pool for pool in row[3].split(",") if pool),
                    gpu_count=row[4],
                    workers_min=row[5],
                    idle_timeout_s=row[6],
                ),
                deleted=bool(row[7]),
            )
            for row in rows
        ]

    def result_folder(self, job_id: str) -> Path:
        """Where a job's result is saved (created by whoever saves it, see `_saved.save_result`)."""
        return self.results_dir / job_id

    # ------------------------------------------------------------------ reading
    def recent(self, limit: int = 50) -> list[LedgerEntry]:
        return self._select("ORDER BY submitted_at DESC LIMIT ?", (limit,))

    def in_flight(self) -> list[LedgerEntry]:
        """Jobs with no end recorded, oldest first: the ones a restarted kernel should follow again."""
        return self._select("WHERE ended_at IS NULL ORDER BY submitted_at", ())

    def ended_since(self, since: float) -> list[LedgerEntry]:
        """Jobs that ended at or after `since` (a time.time()), oldest end first: what costs are summed from."""
        return self._select("WHERE ended_at >= ? ORDER BY ended_at", (since,))

    def find(self, job_id: str) -> list[LedgerEntry]:
        """Entries with this job id (normally one; ids are unique per endpoint, not globally)."""
        return self._select("WHERE job_id = ? ORDER BY submitted_at DESC", (job_id,))

    def _select(self, clause: str, params: tuple[Any, ...]) -> list[LedgerEntry]:
        query = f"SELECT {_COLUMNS} FROM jobs {clause}"  # noqa: S608 - the clause is ours; values are bound
        with self._lock:
            rows = self._db.execute(query, params).fetchall()
        return [
            LedgerEntry(
                job_id=row[0],
                endpoint_id=row[1],
                base_url=row[2],
                model=row[3],
                status=row[4],
                submitted_at=row[5],
                updated_at=row[6],
                ended_at=row[7],
                parameters=json.loads(row[8] or "{}"),
                result_path=row[9],
                error=row[10],
                notebook=row[11],
                worker_id=row[12],
                delay_s=row[13],
                execution_s=row[14],
                cost=None if row[15] is None else JobCost.from_json(json.loads(row[15])),
                output=row[16],
            )
            for row in rows
        ]
