"""An MCP ``CallToolResult`` as the tool loop's :class:`~hermes_nb.engine.tools.ToolResult`.

Text blocks are the text; an embedded resource gives its text (a binary one is named, not
sent); structured content is JSON when no text block says it; ``isError`` makes an error
result. Images (PNG, JPEG, GIF, WebP, at most :data:`IMAGE_LIMIT` bytes each) travel beside the
text — the view shows them, a model with ``vision`` is sent them — and the text names each one,
so a transcript (and a model without vision) knows one was there. Audio and other blobs are named
and left out.
"""

from __future__ import annotations

import json
from typing import Any

from ..tools import ToolImage, ToolResult

__all__ = ["IMAGE_LIMIT", "IMAGE_TYPES", "convert"]

#: The image types a result may carry to the view and the model.
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
#: The largest image (decoded bytes) a result carries; a larger one is named and left out.
IMAGE_LIMIT = 5 << 20


def convert(result: Any) -> ToolResult:
    """``result`` (an ``mcp.types.CallToolResult``) as text, error flag and images."""
    parts: list[str] = []
    images: list[ToolImage] = []
    texts = 0
    for block in result.content or ():
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
            texts += 1
        elif kind == "image":
            image = ToolImage(mime=str(block.mime_type).lower(), data=str(block.data))
            kb = f"{image.size / 1024:,.1f} KB"
            if image.mime not in IMAGE_TYPES:
                parts.append(f"[an image of type {image.mime} ({kb}) was left out]")
            elif image.size > IMAGE_LIMIT:
                parts.append(
                    f"[an image ({image.mime}, {kb}) was left out: larger than "
                    f"{IMAGE_LIMIT >> 20} MB]"
                )
            else:
                images.append(image)
                parts.append(f"[image {len(images)}: {image.mime}, {kb}]")
        elif kind == "resource":
            resource = block.resource
            text = getattr(resource, "text", None)
            if isinstance(text, str):
                parts.append(text)
                texts += 1
            else:
                mime = getattr(resource, "mime_type", None) or "binary"
                parts.append(f"[the resource {resource.uri} ({mime}) was left out]")
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        else:
            parts.append(f"[a {kind or 'content'} block was left out]")
    structured = getattr(result, "structured_content", None)
    if structured is not None and not texts:
        parts.append(json.dumps(structured, ensure_ascii=False))
    text = "\n".join(parts)
    if not text:
        text = "The tool returned nothing." if not result.is_error else "The tool failed."
    return ToolResult(text=text, error=bool(result.is_error), images=tuple(images))
