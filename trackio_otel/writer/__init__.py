"""Writers: where OTLP request bytes become committed Trackio rows, in writer processes.

Decoding, translation and trace assembly cost far more CPU than SQLite's inserts, and
Python runs one thread at a time, so the work is spread over writer processes that share
the database: each prepares its rows with no lock held and only holds the project's lock
to commit (see ``store.sqlite``). The collector uses several; the SDK's embedded exporters
use one, which also keeps that work out of the training process.

    pool = WriterPool(trackio_dir, processes=2)
    result = pool.submit("traces", request_bytes).result()   # committed once this returns
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from trackio_otel.writer import protocol
from trackio_otel.writer.core import Inbox, Reply, Request, serve

log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Result:
    """A committed request: its records, how many were rejected, and why (partial success)."""

    records: int
    rejected: int
    errors: list[str]


class WriteError(Exception):
    """A request not committed. ``kind``: ``invalid`` (undecodable, do not retry),
    ``unavailable`` (retry later) or ``internal``."""

    def __init__(self, kind: str, message: str, records: int = 0) -> None:
        super().__init__(message)
        self.kind, self.records = kind, records


def default_processes() -> int:
    return max(1, min(4, os.cpu_count() or 1))


class WriterPool:
    """Writer processes for one Trackio directory (``processes=0``: one thread instead).

    ``submit`` hands a request to the writer with the fewest bytes outstanding; a writer
    (process or thread) that died has failed its requests and is replaced on the next submit.
    """

    def __init__(self, trackio_dir: Path | str, processes: int | None = None) -> None:
        self.trackio_dir = Path(trackio_dir)
        self.processes = default_processes() if processes is None else processes
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._writers: list[_Writer] = []
        self._closed = False

    def start(self) -> WriterPool:
        """Start the writers and wait until they are ready (so startup errors surface here)."""
        with self._lock:
            self._fill()
        return self

    def submit(self, signal: str, payload: bytes, encoding: str = "protobuf") -> Future[Result]:
        with self._lock:
            if self._closed:
                raise WriteError("unavailable", "the writers are shut down")
            try:
                self._fill()
            except OSError as exc:  # a writer that died could not be replaced: retry later
                raise WriteError("unavailable", str(exc)) from exc
            writer = min(self._writers, key=lambda w: w.outstanding)
        # Sent outside the lock: a megabyte into one writer's pipe must not hold up the rest.
        return writer.submit(Request(next(self._ids), signal, payload, encoding))

    @property
    def pids(self) -> list[int]:
        """Process ids of the writer processes (none with ``processes=0``)."""
        return [w.pid for w in self._writers if isinstance(w, _ProcessWriter)]

    def close(self) -> None:
        """Let every writer commit and answer what it holds, then stop it."""
        with self._lock:
            self._closed = True
            writers, self._writers = self._writers, []
        for w in writers:
            w.close()

    def _fill(self) -> None:
        alive: list[_Writer] = []
        for w in self._writers:
            if w.alive:
                alive.append(w)
            else:  # its requests have failed; let go of its database and threads
                w.close()
        self._writers = alive
        new = [
            _ThreadWriter(self.trackio_dir)
            if not self.processes
            else _ProcessWriter(self.trackio_dir)
            for _ in range(max(1, self.processes) - len(self._writers))
        ]
        try:
            for w in new:  # started together, waited for together
                w.wait_ready()
        except OSError:
            for w in new:  # none of this round is kept: the next submit tries again
                w.close()
            raise
        self._writers += new


class _Writer:
    """Bookkeeping shared by both kinds: requests sent and not yet answered."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple[Future[Result], int]] = {}
        self.outstanding = 0
        self._pending_lock = threading.Lock()
        self._gone: str | None = None
        """Why this writer stopped answering; requests sent after that fail at once."""

    @property
    def alive(self) -> bool:
        raise NotImplementedError

    def submit(self, request: Request) -> Future[Result]:
        future: Future[Result] = Future()
        with self._pending_lock:
            if self._gone:
                future.set_exception(WriteError("unavailable", self._gone))
                return future
            self.pending[request.id] = (future, len(request.payload))
            self.outstanding += len(request.payload)
        self._send(request)
        return future

    def wait_ready(self) -> None:
        pass

    def close(self) -> None:
        raise NotImplementedError

    def _send(self, request: Request) -> None:
        raise NotImplementedError

    def _answer(self, request_id: int, reply: Reply) -> None:
        with self._pending_lock:
            future, size = self.pending.pop(request_id)
            self.outstanding -= size
        if "error" in reply:
            future.set_exception(WriteError(reply["error"], reply["message"], reply["records"]))
        else:
            future.set_result(Result(reply["records"], reply["rejected"], reply["errors"]))

    def _fail_pending(self, why: str) -> None:
        with self._pending_lock:
            self._gone = why
            pending, self.pending, self.outstanding = self.pending, {}, 0
        for future, _ in pending.values():
            future.set_exception(WriteError("unavailable", why))


class _ThreadWriter(_Writer):
    """The writer loop on a thread of this process."""

    def __init__(self, trackio_dir: Path) -> None:
        super().__init__()
        # Imported here: with writer processes, this process never opens the database, and
        # SQLAlchemy alone adds ~15 MB to it (the collector's receiver, a training process).
        from trackio_otel.store.sqlite import SQLiteStore

        self._store = SQLiteStore(trackio_dir)
        self._inbox = Inbox()
        self._thread = threading.Thread(target=self._run, name="trackio-otel-writer", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._gone is None and self._thread.is_alive()

    def _run(self) -> None:
        """The loop, and what its end means: after ``close`` it has answered everything;
        otherwise it died, and what it held fails retryably so no caller waits forever."""
        why = "the writer thread stopped"
        try:
            serve(self._store, self._inbox, self._answer)
        except BaseException as exc:  # SystemExit too: sys.exit() on a thread ends it silently
            log.exception("the writer thread died")
            why = f"the writer thread died ({type(exc).__name__}: {exc})"
        finally:
            self._fail_pending(why)

    def _send(self, request: Request) -> None:
        self._inbox.put(request)

    def close(self) -> None:
        self._inbox.close()
        self._thread.join()
        self._store.close()


class _ProcessWriter(_Writer):
    """A ``python -m trackio_otel.writer`` child, spoken to through its stdin and stdout."""

    def __init__(self, trackio_dir: Path) -> None:
        super().__init__()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "trackio_otel.writer", str(trackio_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=_child_env(),
        )
        self._send_lock = threading.Lock()
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="trackio-otel-answers", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return self._proc.poll() is None and self._reader.is_alive()

    def wait_ready(self) -> None:
        if not self._ready.wait(START_TIMEOUT_S) or not self.alive:
            self._proc.kill()
            raise OSError(f"the writer process did not start (exit code {self._proc.poll()})")

    def _send(self, request: Request) -> None:
        assert self._proc.stdin is not None
        # If it died, its reader fails everything pending, this request included.
        with self._send_lock, contextlib.suppress(OSError):
            protocol.send_request(self._proc.stdin, request)

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while (answer := protocol.read_answer(self._proc.stdout)) is not None:
            if answer[0] == protocol.READY:
                self._ready.set()
            else:
                self._answer(*answer)
        code = self._proc.wait()
        self._ready.set()
        if self.pending:
            log.warning("a writer process exited (code %s) with requests in flight", code)
        self._fail_pending(f"the writer process exited (code {code})")

    def close(self) -> None:
        assert self._proc.stdin is not None
        with self._send_lock, contextlib.suppress(OSError):
            self._proc.stdin.close()  # the child commits what it read, answers, exits
        self._reader.join()


def _child_env() -> dict[str, str]:
    """This environment minus OTel auto-instrumentation (the writer must not instrument or
    export itself), plus the directory this package is imported from."""
    env = dict(os.environ)
    env["OTEL_SDK_DISABLED"] = "true"
    here = str(Path(__file__).resolve().parents[2])
    paths = [
        p
        for p in env.get("PYTHONPATH", "").split(os.pathsep)
        if p and not os.path.exists(os.path.join(p, "sitecustomize.py"))
    ]
    env["PYTHONPATH"] = os.pathsep.join([here, *paths])
    return env
