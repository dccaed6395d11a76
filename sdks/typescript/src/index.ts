export { Untrace, getDefaultClient, parseRetryAfter } from "./client.js";
export type { UntraceOptions, UntraceStats, UntraceError } from "./client.js";
export { Span, normaliseUsage } from "./span.js";
export type { SpanFields, SpanKind, SpanRecord, TagValue, Usage } from "./span.js";
export { currentSpan, withSpan } from "./context.js";
export { traceparent, fromTraceparent } from "./traceparent.js";
export type { RemoteParent } from "./traceparent.js";
export { wrapOpenAI } from "./openai.js";
export type { WrapOpenAIOptions } from "./openai.js";
