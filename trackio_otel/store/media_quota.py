"""The per-project media quota: how many bytes of inline images one project's Trackio media
directory (``<trackio_dir>/media/<project>``) may hold.

A sender picks how many images it sends, so without a bound one client could fill the
disk that every project shares. Before a request is stored, the writer checks the images
it carries (``Batch.media``, counted by ``conventions.media.admit``) against what the
project already holds; a span or log that would take the project past its quota is
rejected with a partial success naming the image, and the rest of the request is kept.

Usage is measured from the disk, then counted up as this process admits images, and
measured again every ``RESCAN_S`` (other writer processes add files too, and retried
requests are counted twice until then), so the quota can be overshot by what the writer
processes admit within that interval.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

from trackio_otel.translate.conventions.media import MIB
from trackio_otel.translate.model import Batch

QUOTA_ENV = "TRACKIO_OTEL_PROJECT_MEDIA_MIB"
DEFAULT_QUOTA_MIB = 4096
RESCAN_S = 30.0


def quota_bytes() -> int:
    """``TRACKIO_OTEL_PROJECT_MEDIA_MIB`` (default 4096 MiB) in bytes."""
    raw = os.environ.get(QUOTA_ENV) or str(DEFAULT_QUOTA_MIB)
    try:
        mib = int(raw)
    except ValueError:
        raise ValueError(f"{QUOTA_ENV} must be a whole number of MiB, got {raw!r}") from None
    return mib * MIB


class MediaQuota:
    def __init__(self, media_dir: Path, limit_bytes: int | None = None) -> None:
        self.media_dir = media_dir
        self.limit_bytes = quota_bytes() if limit_bytes is None else limit_bytes
        self._used: dict[str, tuple[int, float]] = {}
        """project → (bytes, when they were measured from disk)."""
        self._lock = threading.Lock()

    def admit(self, batch: Batch) -> None:
        """Reject the batch's records whose images would take their project past the quota."""
        if not batch.media:
            return
        refused: set[int] = set()
        with self._lock:
            for claim in batch.media:
                project = claim.record.run.project
                used, measured = self._usage(project)
                total = used
                for name, size in claim.images:
                    total += size
                    if total > self.limit_bytes:
                        batch.reject(claim.where, self._refusal(name, size, project, total))
                        refused.add(id(claim.record))
                        break
                else:
                    self._used[project] = (total, measured)
        batch.media = [c for c in batch.media if id(c.record) not in refused]
        if refused:
            batch.spans = [s for s in batch.spans if id(s) not in refused]
            gone = {log.uid for log in batch.logs if id(log) in refused}
            batch.logs = [log for log in batch.logs if id(log) not in refused]
            batch.scalars = [s for s in batch.scalars if s.log_id not in gone]

    def _usage(self, project: str) -> tuple[int, float]:
        used = self._used.get(project)
        if used is None or time.monotonic() - used[1] > RESCAN_S:
            used = (_disk_usage(self.media_dir / project), time.monotonic())
            self._used[project] = used
        return used

    def _refusal(self, name: str, size: int, project: str, total: int) -> str:
        return (
            f"{name} ({size / MIB:.1f} MiB) refused: project {project!r} would hold "
            f"{total / MIB:.1f} MiB of media, over its quota of {self.limit_bytes / MIB:.0f} "
            f"MiB ({QUOTA_ENV})"
        )


def _disk_usage(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(OSError):  # removed meanwhile
                total += os.lstat(os.path.join(folder, name)).st_size
    return total
