"""What the sidecar takes from a client request before the pipeline: its request id, and its
path below ``/v1`` normalised once (SPEC "HTTP surface")."""

from __future__ import annotations

import os
import re
from urllib.parse import quote, unquote_to_bytes

from aiohttp import web

from sidecar.errors import ErrorCode, SidecarError
from sidecar.openai_api import MODEL_ENDPOINTS


def new_request_id() -> str:
    """128 random bits as 32 hex digits, like a uuid4 hex but without building a UUID."""
    return os.urandom(16).hex()


# SPEC: a client's X-Request-Id is kept (echoed, logged, sent upstream) only when it is a short
# token that is safe in any header, log line or span; anything else gets a new id.
_CLIENT_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_for(request: web.BaseRequest) -> str:
    offered = request.headers.get("X-Request-Id")
    if offered is not None and _CLIENT_REQUEST_ID.fullmatch(offered):
        return offered
    return new_request_id()


# --- the path below /v1 ---------------------------------------------------------------------

# The paths nearly every request uses, already in their normalised form.
_COMMON_PATHS = {f"/v1/{path}": path for path in (*MODEL_ENDPOINTS, "models")}
# Also normalised as sent: no percent-escapes, no dot or empty segments, nothing that needs care.
_PLAIN_PATH = re.compile(r"/v1/((?:[\w~:@-][\w.~:@-]*)(?:/[\w~:@-][\w.~:@-]*)*)?", re.ASCII)
# Refused once decoded: control characters (a NUL cuts C strings short) and the backslash that
# some servers read as a separator.
_UNSAFE_IN_PATH = re.compile(r"[\x00-\x1f\x7f\\]")
# Left unescaped when re-encoding a segment (besides letters, digits and "-._~"): what yarl,
# which builds the upstream URL, would unescape anyway. "/", "%", "?" and "#" are escaped.
_PATH_SAFE = "!$&'()*+,;=:@"


def upstream_path(raw_path: str) -> str:
    """The path below ``/v1`` to forward, from the path as the client sent it (still escaped).

    Percent-escapes are decoded exactly once (``%2F`` is a separator like ``/``), then dot
    segments are resolved (RFC 3986 5.2.4) and empty ones dropped, so what the pipeline
    classifies is what the upstream serves. Each segment is escaped again, so the upstream
    decodes it to the same text: an escape in the decoded text (``%2e``) stays text and can
    never become a dot segment or a separator there. A path that resolves outside ``/v1`` is
    refused (400): it would leave the provider's base path.
    """
    if (common := _COMMON_PATHS.get(raw_path)) is not None:
        return common
    if plain := _PLAIN_PATH.fullmatch(raw_path):
        return plain[1] or ""
    try:
        decoded = unquote_to_bytes(raw_path).decode()
    except UnicodeDecodeError:
        raise _bad_path(raw_path, "is not UTF-8 once percent-decoded") from None
    if _UNSAFE_IN_PATH.search(decoded):
        raise _bad_path(raw_path, "contains a control character or a backslash")
    segments: list[str] = []
    for segment in decoded.split("/"):
        if segment == "..":
            if not segments:
                raise _bad_path(raw_path, "leaves /v1 once its dot segments are resolved")
            segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    if not segments or segments[0] != "v1":
        raise _bad_path(raw_path, "leaves /v1 once its dot segments are resolved")
    return "/".join(quote(segment, safe=_PATH_SAFE) for segment in segments[1:])


def _bad_path(raw_path: str, why: str) -> SidecarError:
    return SidecarError(
        ErrorCode.INVALID_INPUT,
        f"The path {shown(raw_path)!r} {why}; the sidecar forwards only paths under /v1/.",
        reason="bad_path",
    )


def shown(text: str, limit: int = 200) -> str:
    """Client text fit to quote in a message: bounded, and undecodable bytes as escapes."""
    return text[:limit].encode("utf-8", "backslashreplace").decode()
