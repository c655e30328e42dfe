"""Span records straight to OTLP protobuf bytes, as the SDK's encoder would write them.

The SDK's OTLP encoder builds a protobuf object per span, attribute and value and copies each
into its parent: ~65 µs a span here, ~20 µs more to rebuild the ``ReadableSpan`` it reads. This
writes the wire format directly from a :data:`~sidecar.telemetry.spans.SpanRecord` (a few µs),
field by field in the order the SDK's encoder emits them, so the bytes are the same (the tests
compare them). What it does not handle the same way, it hands back to the SDK, span by span:
values the SDK would clean first (types other than str, bool, int, float, bytes and flat
sequences of them; ints beyond int64; mappings), limits that would drop or truncate something
(``OTEL_*_LIMIT``), empty or non-str keys.

Field numbers: ``opentelemetry/proto/trace/v1/trace.proto`` and ``common/v1/common.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext

from sidecar.telemetry.spans import EventRecord, LinkRecord, SpanRecord, readable_span

_FIXED64 = struct.Struct("<Q")
_FIXED32 = struct.Struct("<I")
_DOUBLE = struct.Struct("<d")
_INT64 = (-(1 << 63), (1 << 63) - 1)
_SMALL = [bytes([i]) for i in range(128)]
_FLAGS_HAS_IS_REMOTE, _FLAGS_IS_REMOTE = 0x100, 0x200  # SpanFlags
CACHE_ENTRIES = 4096


def _varint(value: int) -> bytes:
    if value < 128:
        return _SMALL[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def any_value(value: Any) -> bytes | None:
    """An AnyValue's fields, or None when the SDK must clean or refuse the value first."""
    kind = type(value)
    if kind is str:
        return _delimited(b"\x0a", value.encode())  # string_value = 1
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"  # bool_value = 2
    if kind is int:
        if not _INT64[0] <= value <= _INT64[1]:
            return None
        return b"\x18" + _varint(value & 0xFFFF_FFFF_FFFF_FFFF)  # int_value = 3
    if kind is float:
        return b"\x21" + _DOUBLE.pack(value)  # double_value = 4
    if kind is bytes:
        return _delimited(b"\x3a", value)  # bytes_value = 7
    if kind is tuple or kind is list:
        parts = []
        for item in value:
            if type(item) is tuple or type(item) is list:
                return None
            part = any_value(item)
            if part is None:
                return None
            parts.append(_delimited(b"\x0a", part))  # ArrayValue.values = 1
        return _delimited(b"\x2a", b"".join(parts))  # array_value = 5
    return None


class WireEncoder:
    """Encodes batches of span records into one ``ExportTraceServiceRequest``.

    Every record of a batch shares the resource and instrumentation scope given here, as every
    span of one sidecar process does.
    """

    def __init__(self, resource: Resource, scope: InstrumentationScope, limits: SpanLimits) -> None:
        self.resource, self.scope, self.limits = resource, scope, limits
        self.fast = limits.max_span_attribute_length is None and limits.max_attribute_length is None
        # The envelope as the SDK encodes it, from a span that is then cut out.
        probe = ReadableSpan("probe", SpanContext(1, 1, False), resource=resource,
                             instrumentation_scope=scope)  # fmt: skip
        (resource_spans,) = encode_spans([probe]).resource_spans
        (scope_spans,) = resource_spans.scope_spans
        self._resource = _delimited(b"\x0a", resource_spans.resource.SerializeToString())
        self._resource_schema = (
            _delimited(b"\x1a", resource_spans.schema_url.encode())
            if resource_spans.schema_url
            else b""
        )
        self._scope = _delimited(b"\x0a", scope_spans.scope.SerializeToString())
        self._scope_schema = (
            _delimited(b"\x1a", scope_spans.schema_url.encode()) if scope_spans.schema_url else b""
        )
        self.fallbacks = 0  # spans the SDK encoded (for tests and curiosity)
        self._cache: dict[Any, bytes] = {}

    def request(self, records: Sequence[SpanRecord]) -> bytes:
        spans = b"".join(_delimited(b"\x12", self.span(record)) for record in records)
        scope_spans = self._scope + spans + self._scope_schema
        resource_spans = self._resource + _delimited(b"\x12", scope_spans) + self._resource_schema
        return _delimited(b"\x0a", resource_spans)

    def span(self, record: SpanRecord) -> bytes:
        """One Span message, by hand when possible, else by the SDK's encoder."""
        encoded = None
        if self.fast:
            try:
                encoded = self._span(record)
            except UnicodeEncodeError:  # a lone surrogate: the SDK decides what becomes of it
                encoded = None
        if encoded is None:
            self.fallbacks += 1
            span = readable_span(record, self.resource, self.scope, self.limits)
            message = encode_spans([span]).resource_spans[0].scope_spans[0].spans[0]
            encoded = message.SerializeToString()
        return encoded

    def _span(self, record: SpanRecord) -> bytes | None:
        (name, kind, trace_id, span_id, _, state, parent, start, end, attributes, dropped, events,
         links, status, description) = record  # fmt: skip
        limits = self.limits
        out = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big")]
        if state:
            out.append(_delimited(b"\x1a", ",".join(f"{k}={v}" for k, v in state).encode()))
        if parent is not None:
            out += (b"\x22\x08", parent[0].to_bytes(8, "big"))
        if name:
            out.append(_delimited(b"\x2a", name.encode()))
        out.append(b"\x30" + _varint(kind + 1))  # SpanKind: the API's value + 1
        if start:
            out.append(b"\x39" + _FIXED64.pack(start))
        if end:
            out.append(b"\x41" + _FIXED64.pack(end))
        attrs = _key_values(b"\x4a", attributes, limits.max_span_attributes, self._cache)
        if attrs is None:
            return None
        out.append(attrs)
        if dropped:
            out.append(b"\x50" + _varint(dropped))  # dropped_attributes_count = 10
        if events:
            encoded_events = self._events(events)
            if encoded_events is None:
                return None
            out.append(encoded_events)
        if links:
            encoded_links = self._links(links)
            if encoded_links is None:
                return None
            out.append(encoded_links)
        status_fields = b""
        if description:
            status_fields += _delimited(b"\x12", description.encode())
        if status:
            status_fields += b"\x18" + _varint(status)
        out.append(_delimited(b"\x7a", status_fields))  # always present, as the SDK sets it
        flags = _FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if parent is not None and parent[1] else 0)
        out.append(b"\x85\x01" + _FIXED32.pack(flags))
        return b"".join(out)

    def _events(self, events: Sequence[EventRecord]) -> bytes | None:
        limit = self.limits.max_events
        if limit is not None and len(events) > limit:
            return None
        out = []
        for name, attributes, timestamp in events:
            fields = b"\x09" + _FIXED64.pack(timestamp) if timestamp else b""
            if name:
                fields += _delimited(b"\x12", name.encode())
            attrs = _key_values(b"\x1a", attributes, self.limits.max_event_attributes, self._cache)
            if attrs is None:
                return None
            out.append(_delimited(b"\x5a", fields + attrs))
        return b"".join(out)

    def _links(self, links: Sequence[LinkRecord]) -> bytes | None:
        limit = self.limits.max_links
        if limit is not None and len(links) > limit:
            return None
        out = []
        for trace_id, span_id, remote, _, _, attributes in links:
            fields = b"\x0a\x10" + trace_id.to_bytes(16, "big")
            fields += b"\x12\x08" + span_id.to_bytes(8, "big")
            attrs = _key_values(
                b"\x22", attributes or {}, self.limits.max_link_attributes, self._cache
            )
            if attrs is None:
                return None
            flags = _FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if remote else 0)
            out.append(_delimited(b"\x6a", fields + attrs + b"\x35" + _FIXED32.pack(flags)))
        return b"".join(out)


def _key_values(
    tag: bytes, attributes: Mapping[str, Any], limit: int | None, cache: dict[Any, bytes]
) -> bytes | None:
    """Each attribute as a KeyValue in the repeated field ``tag``; None to leave it to the SDK.

    Most attributes repeat from span to span (method, route, model, provider, operation...):
    their encoding is looked up, keyed by type too (True == 1 == 1.0 in Python).
    """
    if limit is not None and len(attributes) > limit:
        return None
    out: list[bytes] = []
    for key, value in attributes.items():
        kind = type(value)
        cacheable = kind is str or kind is int or kind is bool or kind is float
        if cacheable:
            lookup = (tag, key, kind, value)
            encoded = cache.get(lookup)
            if encoded is not None:
                out.append(encoded)
                continue
        if type(key) is not str or not key:
            return None
        value_fields = any_value(value)
        if value_fields is None:
            return None
        encoded = _delimited(
            tag, _delimited(b"\x0a", key.encode()) + _delimited(b"\x12", value_fields)
        )
        if cacheable:
            if len(cache) >= CACHE_ENTRIES:
                cache.clear()  # unique values (request ids...) churn it; the common ones return
            cache[lookup] = encoded
        out.append(encoded)
    return b"".join(out)
