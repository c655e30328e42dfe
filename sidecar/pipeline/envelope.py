"""Turns every error raised below it into the OpenAI error envelope."""

from __future__ import annotations

import asyncio
import logging

from sidecar.errors import ErrorCode, SidecarError
from sidecar.exchange import Exchange, Reply
from sidecar.pipeline.base import Next

log = logging.getLogger(__name__)


def error_reply(ex: Exchange, err: SidecarError) -> Reply:
    ex.error_code = err.code.value
    ex.error_reason = err.reason
    return Reply(status=err.status, headers=err.headers(), body=err.body(ex.request_id))


class ErrorEnvelope:
    async def __call__(self, ex: Exchange, call_next: Next) -> Reply:
        try:
            return await call_next(ex)
        except SidecarError as err:
            return error_reply(ex, err)
        except asyncio.CancelledError:
            raise
        except Exception:
            # A bug of ours: log it with the request id, answer without leaking internals.
            log.exception("unexpected error handling request %s", ex.request_id)
            internal = SidecarError(
                ErrorCode.INTERNAL, f"internal sidecar error (request id {ex.request_id})"
            )
            return error_reply(ex, internal)
