"""What an image is, read from its first bytes: type and size in pixels, no imaging library.

A figure travels as bytes (base64 in a display bundle, a ``data:`` URL in a request), and what
the person and the offline model are told about it — ``640×480 PNG`` — comes from its header:
PNG's ``IHDR``, GIF's logical screen, JPEG's start-of-frame marker, WebP's ``VP8``/``VP8L``/
``VP8X`` chunk. Pillow is not a dependency of hermes_nb, and none of this needs it.
"""

from __future__ import annotations

import base64
import binascii
import struct
from dataclasses import dataclass

__all__ = ["ImageInfo", "decode_base64", "image_info"]

# JPEG start-of-frame markers (baseline, progressive, lossless, …), not DHT/JPG/DAC.
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


@dataclass(frozen=True)
class ImageInfo:
    """An image's format (``PNG``, ``JPEG``, ``GIF``, ``WebP``), MIME type, pixel size (0 when
    the header does not say) and size in bytes."""

    kind: str
    mime: str
    width: int
    height: int
    size: int

    def describe(self) -> str:
        """``640×480 PNG`` (``PNG`` alone when the size is unknown)."""
        if self.width and self.height:
            return f"{self.width}×{self.height} {self.kind}"
        return self.kind


def decode_base64(data: str | bytes) -> bytes | None:
    """The bytes of base64 ``data`` (line breaks allowed); None if it is not base64."""
    try:
        return base64.b64decode(data, validate=False)
    except (binascii.Error, ValueError):
        return None


def image_info(data: bytes) -> ImageInfo | None:
    """The format and pixel size of ``data``; None when it is no PNG, JPEG, GIF or WebP."""
    size = len(data)
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return ImageInfo("PNG", "image/png", width, height, size)
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        width, height = struct.unpack("<HH", data[6:10])
        return ImageInfo("GIF", "image/gif", width, height, size)
    if data[:3] == b"\xff\xd8\xff":
        width, height = _jpeg_size(data)
        return ImageInfo("JPEG", "image/jpeg", width, height, size)
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        width, height = _webp_size(data)
        return ImageInfo("WebP", "image/webp", width, height, size)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """Walk the JPEG markers to the first start-of-frame; (0, 0) if there is none."""
    at = 2
    while at + 9 <= len(data):
        if data[at] != 0xFF:
            return 0, 0
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length field
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2 : at + 4])
        if marker in _SOF:
            height, width = struct.unpack(">HH", data[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return 0, 0


def _webp_size(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30:
        width, height = struct.unpack("<HH", data[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(data) >= 25:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return width, height
    return 0, 0
