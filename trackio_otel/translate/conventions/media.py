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

from trackio_otel.translate import pdata
from trackio_otel.translate.model import Batch, Log, MediaClaim, Span

MIB = 1 << 20
MAX_IMAGE_BYTES = 8 * MIB
"""Larger inline images are replaced by a text part saying so (never dropped silently)."""
MAX_REQUEST_MEDIA_BYTES = 32 * MIB
"""Inline images one request may carry in all; a span or log whose images would go past
it is rejected (partial success naming the image). The per-project quota is the writer's
(``store.media_quota``)."""
MIN_IMAGE_BYTES = 4096
"""What a tiny image counts for: a file costs at least a file-system block, so a flood of
one-pixel images is bounded too."""
IMAGE_TYPE = "trackio.image"
_DATA_URL = re.compile(r"^(?i:data):(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?);base64,")
"""``;base64,`` in lower case, as every encoder writes it, so text without it holds no data
URL that can become a file (``inline_images`` relies on it)."""
_ESCAPED_ASCII = re.compile(r"\\u00[2-7][0-9a-fA-F]")
"""A JSON escape of a printable ASCII character: the only way JSON text can spell
``;base64,`` or ``"blob"`` without containing it (``\\u00b0`` and other escapes of
non-ASCII text, which Python's ``json.dumps`` writes by default, cannot)."""
_ESCAPED_ASCII_BYTES = re.compile(_ESCAPED_ASCII.pattern.encode())
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


def admit(batch: Batch, where: str, record: Span | Log, sources: dict[str, dict[str, Any]]) -> bool:
    """Count ``record``'s inline images against the request's ``MAX_REQUEST_MEDIA_BYTES``.
    ``sources``: name → values to search, e.g. ``{"attributes": its attributes}``. Past the
    limit the record is rejected, naming the image, and False returned; otherwise it is
    listed in ``batch.media`` for the project's quota."""
    images = [image for name, values in sources.items() for image in inline_images(name, values)]
    if not images:
        return True
    total = batch.media_bytes
    for name, size in images:
        total += size
        if total > MAX_REQUEST_MEDIA_BYTES:
            batch.reject(
                where,
                f"{name} ({size / MIB:.1f} MiB) refused: the request's inline images would "
                f"total {total / MIB:.1f} MiB, over the {MAX_REQUEST_MEDIA_BYTES // MIB} MiB "
                "limit per request",
            )
            return False
    batch.media_bytes = total
    batch.media.append(MediaClaim(where, record, images))
    return True


def may_hold_images(payload: bytes) -> bool:
    """Whether an OTLP request's bytes could carry an inline image: one scan of the request
    instead of one per attribute (protobuf carries strings as they are; a ``blob`` part
    may also be a map, where its type is the bare string)."""
    return (
        b";base64," in payload
        or b"blob" in payload
        or _ESCAPED_ASCII_BYTES.search(payload) is not None
    )


def _may_hold(text: str) -> bool:
    """Whether text, or the JSON it encodes, could hold an inline image."""
    return ";base64," in text or '"blob"' in text or _ESCAPED_ASCII.search(text) is not None


def inline_images(name: str, values: dict[str, Any]) -> list[tuple[str, int]]:
    """(``name[key] image n``, decoded bytes) of every inline image ``place`` could write
    from ``values``: data URLs and base64 ``blob`` parts, as values or in JSON text. An
    upper bound (one image sent twice counts twice); images over ``MAX_IMAGE_BYTES`` are
    never written, so they do not count."""
    found: list[tuple[str, int]] = []
    for key, value in values.items():
        kind = value.__class__
        if kind is str:
            if not _may_hold(value):
                continue
            value = pdata.parse_json(value)
        elif kind is not list and kind is not dict:
            continue
        sizes: list[int] = []
        _sizes(value, sizes)
        where = f"{name}[{key}]" if name else key
        found += [(f"{where} image {n}", size) for n, size in enumerate(sizes, 1)]
    return found


def _sizes(value: Any, out: list[int]) -> None:
    if isinstance(value, str):
        if match := _DATA_URL.match(value):
            _count(len(value) - match.end(), out)
    elif isinstance(value, list):
        for item in value:
            _sizes(item, out)
    elif isinstance(value, dict):
        content = value.get("content")
        if value.get("type") == "blob" and isinstance(content, str):
            _count(len(content), out)
            return
        for item in value.values():
            _sizes(item, out)


def _count(base64_chars: int, out: list[int]) -> None:
    size = base64_chars * 3 // 4
    if size <= MAX_IMAGE_BYTES:
        out.append(max(size, MIN_IMAGE_BYTES))
