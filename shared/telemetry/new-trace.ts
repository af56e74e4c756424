import {
  type Attributes,
  type Link,
  type Span,
  type SpanContext,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  trace,
} from '@opentelemetry/api';

/**
 * New root spans for work that must not grow an existing trace without bound (a long
 * backfill's chain of chunks): the new trace links back to where it came from, so Jaeger
 * still leads from one to the other.
 */

const tracer = trace.getTracer('adfleet.telemetry');
const TRACE_ID = /^[0-9a-f]{32}$/;
const SPAN_ID = /^[0-9a-f]{16}$/;

/** A link to a recorded span (e.g. a job's trace and span id kept in the database); undefined if the ids are not valid. */
export function linkTo(
  traceId: string | null | undefined,
  spanId: string | null | undefined,
  attributes?: Attributes,
): Link | undefined {
  if (traceId == null || spanId == null || !TRACE_ID.test(traceId) || !SPAN_ID.test(spanId)) {
    return undefined;
  }
  const context: SpanContext = { traceId, spanId, traceFlags: TraceFlags.SAMPLED, isRemote: true };
  return attributes === undefined ? { context } : { context, attributes };
}

/** A link to the span active right now, if any. */
export function linkToActiveSpan(attributes?: Attributes): Link | undefined {
  const span = trace.getActiveSpan();
  if (span === undefined || !trace.isSpanContextValid(span.spanContext())) return undefined;
  const { traceId, spanId } = span.spanContext();
  return linkTo(traceId, spanId, attributes);
}

/** Runs `work` inside a NEW root span (a new trace) that carries `links`. */
export function inNewTrace<T>(
  name: string,
  options: { links?: ReadonlyArray<Link | undefined>; attributes?: Attributes; kind?: SpanKind },
  work: (span: Span) => Promise<T>,
): Promise<T> {
  const links = (options.links ?? []).filter((link): link is Link => link !== undefined);
  return tracer.startActiveSpan(
    name,
    {
      root: true,
      kind: options.kind ?? SpanKind.INTERNAL,
      links,
      ...(options.attributes === undefined ? {} : { attributes: options.attributes }),
    },
    async (span) => {
      try {
        return await work(span);
      } catch (error) {
        span.recordException(error as Error);
        span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}
