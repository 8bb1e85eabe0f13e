"""Stores: where translated batches become rows. ``sqlite`` writes Trackio's own database.

This module stays light (no SQLAlchemy) because processes that never open a database
import it: the collector's receiver and the training process that runs the SDK.
"""

from __future__ import annotations

import os
from pathlib import Path


class Unavailable(Exception):
    """The database could not be written now (locked past the timeout, disk full or
    failing): nothing of the batch was committed, and the same batch may be retried."""


def default_trackio_dir() -> Path:
    """Trackio's own resolution: ``TRACKIO_DIR``, else ``$HF_HOME/trackio``, else the HF cache."""
    if os.environ.get("TRACKIO_DIR"):
        return Path(os.environ["TRACKIO_DIR"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface"
    )
    return Path(hf_home) / "trackio"
