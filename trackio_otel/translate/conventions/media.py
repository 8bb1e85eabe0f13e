"""Inline images (``data:`` URLs from OTel blob parts, OpenInference image contents, OpenAI
``image_url`` items) → Trackio media files, referenced the way Trackio's own ``Trace`` does.

Trackio's Traces page renders a content item ``{"_type": "trackio.image", "file_path": …}``
inline, fetching ``<trackio_dir>/media/<file_path>``. The file path is
``<project>/<run_name>/<step>/<content hash>.<ext>``: the hash makes a retried export write
the same file again instead of a second one. This module stays pure: it returns the bytes
to write and the store writes them. http(s) URLs stay URLs (the browser fetches them).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Any

MAX_IMAGE_BYTES = 8 * 1024 * 1024
"""Larger inline images are replaced by a text part saying so (never dropped silently)."""
IMAGE_TYPE = "trackio.image"
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,", re.I)
_EXTENSIONS = {"image/jpeg": "jpg", "image/svg+xml": "svg", "image/x-icon": "ico"}
_EXTENSION = re.compile(r"[a-z0-9]{1,10}")
_UNSAFE_IN_NAME = re.compile(r"[/\\\0]")


@dataclass(frozen=True, slots=True)
class MediaFile:
    path: str
    """Relative to ``<trackio_dir>/media`` (Trackio's ``MEDIA_DIR``)."""
    data: bytes


def run_dir(project: str, run_name: str, step: int) -> str:
    """``<project>/<run name>/<step>``, Trackio's media layout. The project is already
    canonical (``[alnum_-]``, bounded); the run name comes from the wire, so one that is not
    a single plain path segment (a ``/``, ``\\``, NUL, ``.`` or ``..``) is replaced by a safe
    one, kept distinct by a hash of the name: every file stays under its project's media."""
    segment = run_name
    if _UNSAFE_IN_NAME.search(run_name) or run_name in ("", ".", ".."):
        name_hash = hashlib.blake2b(run_name.encode("utf-8", "surrogatepass"), digest_size=4)
        segment = f"{_UNSAFE_IN_NAME.sub('_', run_name).strip('.')}-{name_hash.hexdigest()}"
    return f"{project}/{segment}/{step}"


def place(value: Any, prefix: str, files: dict[str, MediaFile]) -> Any:
    """``value`` with every inline image swapped for a Trackio image reference under
    ``prefix`` (``<project>/<run_name>/<step>``); the images to write land in ``files``."""
    if isinstance(value, list):
        return [place(item, prefix, files) for item in value]
    if not isinstance(value, dict):
        return value
    url = _image_url(value)
    match = _DATA_URL.match(url) if url else None
    if url and match:
        return _image(url, match, prefix, files)
    return {k: place(v, prefix, files) for k, v in value.items()}


def _image_url(item: dict[str, Any]) -> str | None:
    if item.get("type") not in ("image_url", "input_image", "image"):
        return None
    url = item.get("image_url")
    if isinstance(url, dict):
        url = url.get("url")
    if url is None:
        url = item.get("url")
    return url if isinstance(url, str) else None


def _image(
    url: str, match: re.Match[str], prefix: str, files: dict[str, MediaFile]
) -> dict[str, Any]:
    mime = (match.group("mime") or "image/png").lower()
    payload = url[match.end() :]
    if len(payload) * 3 // 4 > MAX_IMAGE_BYTES + 3:
        return _placeholder(
            f"[image omitted: {len(payload) * 3 // 4 / 2**20:.1f} MiB exceeds the "
            f"{MAX_IMAGE_BYTES // 2**20} MiB limit per image]"
        )
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return _placeholder(f"[image omitted: its {mime} data URL is not valid base64]")
    if len(data) > MAX_IMAGE_BYTES:
        return _placeholder(
            f"[image omitted: {len(data) / 2**20:.1f} MiB exceeds the "
            f"{MAX_IMAGE_BYTES // 2**20} MiB limit per image]"
        )
    ext = _EXTENSIONS.get(mime) or mime.split("/")[-1].split("+")[0]
    ext = ext if _EXTENSION.fullmatch(ext) else "bin"  # the sender's text names no file
    path = f"{prefix}/{hashlib.blake2b(data, digest_size=16).hexdigest()}.{ext}"
    files[path] = MediaFile(path, data)
    return {"_type": IMAGE_TYPE, "file_path": path, "caption": None}


def _placeholder(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}
