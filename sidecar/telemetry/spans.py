"""Compact spans: the request path keeps a span as a few fields and hands a tuple on at the end.

The OpenTelemetry SDK's span costs ~45 µs per span on this class of machine (a lock, attribute
cleaning and copying into ``BoundedAttributes``, a ``ReadableSpan`` copy at the end) and the
sidecar makes two per request. :class:`CompactTracer` implements the same API (``start_span``;
``set_attribute(s)``, ``add_event``, ``add_link``, ``set_status``, ``record_exception``, ``end``
on the span) with the SDK's sampler and id generator, so trace ids, span ids, trace flags and
the ``traceparent`` sent upstream are what the SDK would produce. What the SDK does at each call
(cleaning values, applying ``OTEL_*_LIMIT``, building events and links) is done later, in
:func:`readable_span`, from the :data:`SpanRecord` the span becomes when it ends: in the export
process for OTLP, or in process for span processors (tests, benchmarks). The result is the
``ReadableSpan`` the SDK would have built, so the OTLP exporters encode the same protobuf.

A SpanRecord is a plain tuple (cheap to build and to pickle)::

    (name, kind, trace_id, span_id, trace_flags, trace_state, parent,
     start_ns, end_ns, attributes, dropped_attributes, events, links, status_code,
     status_description)

``kind`` and ``status_code`` are the enums' values, ``trace_state`` a tuple of (key, value) or
None, ``parent`` None or ``(span_id, is_remote, trace_flags, trace_state)`` (same trace id),
``events`` None or ``[(name, attributes, timestamp_ns)]``, ``links`` None or
``[(trace_id, span_id, is_remote, trace_flags, trace_state, attributes)]``. The span attribute
count limit is applied as attributes are set (which key goes depends on the order of the calls),
the rest of the limits and the value cleaning later.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Mapping, Sequence
from time import time_ns
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanLimits, SpanProcessor
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import DEFAULT_ON, Decision, Sampler
from opentelemetry.sdk.util import BoundedList
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_STACKTRACE,
    EXCEPTION_TYPE,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace import TraceFlags as Flags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState
from opentelemetry.util import types
from typing_extensions import override

if TYPE_CHECKING:
    from opentelemetry.util._decorator import _AgnosticContextManager

log = logging.getLogger(__name__)

StateItems = tuple[tuple[str, str], ...] | None
ParentRecord = tuple[int, bool, int, StateItems]
EventRecord = tuple[str, Mapping[str, Any], int]
LinkRecord = tuple[int, int, bool, int, StateItems, Mapping[str, Any] | None]
SpanRecord = tuple[
    str,  # name
    int,  # kind
    int,  # trace_id
    int,  # span_id
    int,  # trace_flags
    StateItems,
    ParentRecord | None,
    int,  # start_ns
    int,  # end_ns
    dict[str, Any],  # attributes
    int,  # attributes dropped by the count limit
    list[EventRecord] | None,
    list[LinkRecord] | None,
    int,  # status code
    str | None,  # status description
]
RecordSink = Callable[[SpanRecord], None]

_UNSET = StatusCode.UNSET.value
# The trace flags of a new span, by (sampled, random trace id): made once, not per span.
_FLAGS = {
    (sampled, random): Flags(
        (Flags.SAMPLED if sampled else Flags.DEFAULT) | (Flags.RANDOM_TRACE_ID if random else 0)
    )
    for sampled in (False, True)
    for random in (False, True)
}
_KINDS = {kind: kind.value for kind in SpanKind}
EXCEPTION_ESCAPED = "exception.escaped"  # deprecated in semconv, still set by the SDK


def _shed(span: trace.Span, context: SpanContext) -> bool:
    """A local, sampled parent that records nothing: one this tracer shed."""
    return not (context.is_remote or span.is_recording()) and context.trace_flags.sampled


def _state(trace_state: TraceState) -> StateItems:
    if trace_state is DEFAULT_TRACE_STATE:  # most spans: no need to ask its length
        return None
    return tuple(trace_state.items()) if trace_state else None


class Backlog(Protocol):
    """The one sink spans go to, when it can tell that it would drop a span recorded now."""

    def full(self) -> bool: ...

    def shed(self) -> None:
        """Count a sampled span that was not recorded as dropped."""


class CompactTracer(trace.Tracer):
    """``start_span`` as the SDK's tracer does it, making :class:`CompactSpan` s.

    Sampled spans are handed to every ``sink`` when they end. Spans the sampler records but does
    not sample are recorded and then discarded, as the SDK's span processors discard them.

    With a ``backlog`` (the only sink), a sampled span that it would drop anyway (it is full)
    is not recorded at all, nor are the children of such a span: each is counted as dropped
    there, and the trace context (ids, sampled flag) still goes upstream unchanged. At
    saturation the request path then stops paying for spans that cannot be exported.
    """

    def __init__(
        self,
        sinks: Sequence[RecordSink],
        sampler: Sampler,
        id_generator: IdGenerator | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self.sinks = tuple(sinks)
        self.backlog = backlog
        self.sampler = sampler
        # The default sampler's decision needs no call: sample a root, follow a parent.
        # (OTEL_TRACES_SAMPLER unset or parentbased_always_on gives this very object)
        self.follows_parent = sampler is DEFAULT_ON
        self.ids = id_generator or RandomIdGenerator()
        self.max_attributes = SpanLimits().max_span_attributes  # OTEL_*ATTRIBUTE_COUNT_LIMIT

    @override
    def start_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> trace.Span:
        parent_span = trace.get_current_span(context)
        parent: SpanContext | None = parent_span.get_span_context()
        if parent is None or not parent.is_valid:
            parent = None
            trace_id = self.ids.generate_trace_id()
            random_id = self.ids.is_trace_id_random()
        else:
            trace_id = parent.trace_id
            random_id = parent.trace_flags.random_trace_id
        links = links or ()
        if self.follows_parent:  # what ParentBased(ALWAYS_ON).should_sample would answer
            decision = (
                Decision.RECORD_AND_SAMPLE
                if parent is None or parent.trace_flags.sampled
                else Decision.DROP
            )
            trace_state = None if parent is None else parent.trace_state
        else:
            result = self.sampler.should_sample(context, trace_id, name, kind, attributes, links)
            decision, trace_state = result.decision, result.trace_state
            attributes = result.attributes
        flags = _FLAGS[decision is Decision.RECORD_AND_SAMPLE, bool(random_id)]
        span_context = SpanContext(
            trace_id,
            self.ids.generate_span_id(),
            is_remote=False,
            trace_flags=flags,
            trace_state=trace_state,
        )
        if decision is Decision.DROP:
            return trace.NonRecordingSpan(span_context)
        if self.backlog is not None and (
            self.backlog.full() or (parent is not None and _shed(parent_span, parent))
        ):
            self.backlog.shed()
            return trace.NonRecordingSpan(span_context)
        return CompactSpan(
            name,
            span_context,
            parent=parent,
            kind=kind,
            attributes=attributes or {},
            max_attributes=self.max_attributes,
            links=links,
            start_ns=start_time if start_time is not None else time_ns(),
            sinks=self.sinks if flags.sampled else (),
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        )

    @override
    def start_as_current_span(
        self,
        name: str,
        context: context_api.Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = (),
        start_time: int | None = None,
        record_exception: bool = True,
        set_status_on_exception: bool = True,
        end_on_exit: bool = True,
    ) -> _AgnosticContextManager[trace.Span]:
        span = self.start_span(
            name, context, kind, attributes, links, start_time,
            record_exception, set_status_on_exception,
        )  # fmt: skip
        return trace.use_span(
            span,
            end_on_exit=end_on_exit,
            record_exception=record_exception,
            set_status_on_exception=set_status_on_exception,
        )


class CompactSpan(trace.Span):
    """A recording span that keeps plain fields and becomes a :data:`SpanRecord` at ``end``."""

    __slots__ = (
        "_attributes", "_context", "_dropped", "_end", "_events", "_kind", "_limit", "_links",
        "_name", "_parent",
        "_record_exception", "_set_status_on_exception", "_sinks", "_start", "_status",
        "_status_description",
    )  # fmt: skip

    def __init__(
        self,
        name: str,
        context: SpanContext,
        *,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any],
        max_attributes: int | None = None,
        links: Sequence[Link],
        start_ns: int,
        sinks: Sequence[RecordSink],
        record_exception: bool = True,
        set_status_on_exception: bool = True,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._limit = max_attributes
        self._dropped = 0
        if max_attributes is None or len(attributes) <= max_attributes:
            self._attributes = dict(attributes)
        else:
            self._attributes = {}
            self._set(attributes)
        self._events: list[EventRecord] | None = None
        self._links: list[LinkRecord] | None = None
        self._start = start_ns
        self._end = 0
        self._sinks = sinks
        for link in links:
            self.add_link(link.context, link.attributes)
        self._status = _UNSET
        self._status_description: str | None = None
        self._record_exception = record_exception
        self._set_status_on_exception = set_status_on_exception

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return not self._end

    def _ended(self, what: str) -> bool:
        if self._end:
            log.warning("Tried calling %s on an ended span.", what)
        return bool(self._end)

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if not self._ended("set_attribute"):
            self._set({key: value})

    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if not self._ended("set_attributes"):
            self._set(attributes)

    def _set(self, attributes: Mapping[str, types.AnyValue]) -> None:
        """As ``BoundedAttributes``: a key set again moves last; past the count limit the
        oldest goes (and is counted); a list is kept as a tuple, safe from later changes."""
        own, limit = self._attributes, self._limit
        for key, value in attributes.items():
            if key in own:
                del own[key]
            elif limit is not None and len(own) >= limit:
                self._dropped += 1
                if not limit:
                    continue
                del own[next(iter(own))]
            own[key] = tuple(value) if isinstance(value, list) else value

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._ended("add_event"):
            return
        event = (
            name,
            dict(attributes) if attributes else {},
            time_ns() if timestamp is None else timestamp,
        )
        if self._events is None:
            self._events = [event]
        else:
            self._events.append(event)

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if not (context.is_valid or attributes or context.trace_state):
            return  # the SDK's validity rule for links
        if self._ended("add_link"):
            return
        link = (
            context.trace_id,
            context.span_id,
            context.is_remote,
            int(context.trace_flags),
            _state(context.trace_state),
            dict(attributes) if attributes else None,
        )
        if self._links is None:
            self._links = [link]
        else:
            self._links.append(link)

    def update_name(self, name: str) -> None:
        if not self._ended("update_name"):
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._ended("set_status") or self._status == StatusCode.OK.value:
            return  # OK is final, as in the SDK
        if isinstance(status, Status):
            if status.status_code is StatusCode.UNSET:
                return
            if description is not None:
                log.warning(
                    "Description %s ignored. Use either `Status` or `(StatusCode, Description)`",
                    description,
                )
            self._status, self._status_description = status.status_code.value, status.description
        elif status is not StatusCode.UNSET:
            checked = Status(status, description)  # warns, as the SDK does, on a misplaced text
            self._status, self._status_description = status.value, checked.description

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        event: dict[str, types.AnyValue] = {
            EXCEPTION_TYPE: f"{module}.{qualname}" if module and module != "builtins" else qualname,
            EXCEPTION_MESSAGE: str(exception),
            EXCEPTION_STACKTRACE: "".join(traceback.format_exception(exception)),
            EXCEPTION_ESCAPED: str(escaped),
        }
        if attributes:
            event.update(attributes)
        self.add_event("exception", event, timestamp)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        if exc_val is not None and self.is_recording():
            if self._record_exception:
                self.record_exception(exc_val, escaped=True)
            if self._set_status_on_exception:
                self.set_status(Status(StatusCode.ERROR, f"{type(exc_val).__name__}: {exc_val}"))
        super().__exit__(exc_type, exc_val, exc_tb)

    def end(self, end_time: int | None = None) -> None:
        if self._ended("end"):
            return
        self._end = end_time if end_time is not None else time_ns()
        if not self._sinks:
            return
        context, parent = self._context, self._parent
        record: SpanRecord = (
            self._name,
            _KINDS[self._kind],
            context.trace_id,
            context.span_id,
            int(context.trace_flags),
            _state(context.trace_state),
            None
            if parent is None
            else (
                parent.span_id,
                parent.is_remote,
                int(parent.trace_flags),
                _state(parent.trace_state),
            ),
            self._start,
            self._end,
            self._attributes,
            self._dropped,
            self._events,
            self._links,
            self._status,
            self._status_description,
        )
        for sink in self._sinks:
            sink(record)


def readable_span(
    record: SpanRecord, resource: Resource, scope: InstrumentationScope, limits: SpanLimits
) -> ReadableSpan:
    """The ``ReadableSpan`` the SDK would have built for this span (values cleaned, limits
    applied and counted), for span processors and the OTLP encoders."""
    (name, kind, trace_id, span_id, flags, state, parent, start, end, attributes, dropped, events,
     links, status, description) = record  # fmt: skip
    context = SpanContext(trace_id, span_id, False, Flags(flags), _trace_state(state))
    parent_context = None
    if parent is not None:
        parent_id, remote, parent_flags, parent_state = parent
        parent_context = SpanContext(
            trace_id, parent_id, remote, Flags(parent_flags), _trace_state(parent_state)
        )
    bounded = BoundedAttributes(
        limits.max_span_attributes,
        attributes,
        immutable=True,
        max_value_len=limits.max_span_attribute_length,
    )
    bounded.dropped += dropped
    return ReadableSpan(
        name=name,
        context=context,
        parent=parent_context,
        resource=resource,
        attributes=bounded,
        events=_events(events or (), limits),
        links=_links(links or (), limits),
        kind=SpanKind(kind),
        status=Status(StatusCode(status), description),
        start_time=start,
        end_time=end,
        instrumentation_scope=scope,
    )


def _trace_state(items: StateItems) -> TraceState | None:
    return TraceState(list(items)) if items else None


def _events(events: Sequence[EventRecord], limits: SpanLimits) -> BoundedList[Event]:
    bounded: BoundedList[Event] = BoundedList(limits.max_events)
    for name, attributes, timestamp in events:
        values = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        bounded.append(Event(name, values, timestamp))
    return bounded


def _links(links: Sequence[LinkRecord], limits: SpanLimits) -> BoundedList[Link]:
    built = [
        Link(
            SpanContext(trace_id, span_id, remote, Flags(flags), _trace_state(state)),
            BoundedAttributes(
                limits.max_link_attributes,
                attributes,
                max_value_len=limits.max_attribute_length,
                immutable=True,
            ),
        )
        for trace_id, span_id, remote, flags, state, attributes in links
    ]
    return BoundedList.from_seq(limits.max_links, built)


class LocalSpans:
    """A record sink that hands the SDK's ``ReadableSpan`` to span processors in this process
    (in-memory exporters in tests, benchmarks), as the SDK's span would at ``end``."""

    def __init__(
        self, processors: Sequence[SpanProcessor], resource: Resource, scope: InstrumentationScope
    ) -> None:
        self.processors = tuple(processors)
        self.resource, self.scope = resource, scope
        self.limits = SpanLimits()

    def __call__(self, record: SpanRecord) -> None:
        span = readable_span(record, self.resource, self.scope, self.limits)
        for processor in self.processors:
            processor.on_end(span)

    def shutdown(self) -> None:
        for processor in self.processors:
            processor.shutdown()
