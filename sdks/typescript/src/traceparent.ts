import { currentSpan } from "./context.js";
import type { Span } from "./span.js";

/** A remote parent read from a `traceparent` header; pass it as `parent` when starting a span. */
export interface RemoteParent {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * The W3C `traceparent` header for a span (the current one by default), or
 * undefined when there is no span. Send it with outgoing requests so the
 * callee's spans join the same trace.
 */
export function traceparent(span?: Span | RemoteParent): string | undefined {
  const target = span ?? currentSpan();
  if (!target) return undefined;
  const spanId = "spanId" in target ? target.spanId : target.id;
  if (!/^[0-9a-f]{32}$/.test(target.traceId) || !/^[0-9a-f]{16}$/.test(spanId)) return undefined;
  return `00-${target.traceId}-${spanId}-01`;
}

/**
 * Parse a W3C `traceparent` header. Returns undefined for a missing or invalid
 * header (wrong shape, version `ff`, all-zero ids), so the result can be passed
 * straight to `{ parent }`: an invalid header just starts a new trace.
 */
export function fromTraceparent(header: string | string[] | null | undefined): RemoteParent | undefined {
  const value = Array.isArray(header) ? header[0] : header;
  if (typeof value !== "string") return undefined;
  const match = TRACEPARENT.exec(value.trim().toLowerCase());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match;
  if (version === "ff" || (version === "00" && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId!) || /^0+$/.test(spanId!)) return undefined;
  return { traceId: traceId!, spanId: spanId!, sampled: (parseInt(flags!, 16) & 1) === 1 };
}
