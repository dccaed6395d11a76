import { newSpanId, newTraceId, nowMs } from "./ids.js";
import type { RemoteParent } from "./traceparent.js";

export type SpanKind = "llm" | "embedding" | "chain" | "agent" | "tool" | "retrieval" | "span";

/** Token counts; camelCase and the providers' snake_case names are both accepted. */
export interface Usage {
  promptTokens?: number;
  completionTokens?: number;
  totalTokens?: number;
  prompt_tokens?: number;
  completion_tokens?: number;
  total_tokens?: number;
  input_tokens?: number;
  output_tokens?: number;
}

export type TagValue = string | number | boolean;

/** What a span can be started with; everything can also be set later through the setters. */
export interface SpanFields {
  kind?: SpanKind;
  /** The parent span: a local span, a remote one from `fromTraceparent()`, or null for a new trace. Defaults to the current span. */
  parent?: Span | RemoteParent | null;
  input?: unknown;
  metadata?: Record<string, unknown>;
  tags?: Record<string, TagValue>;
  userId?: string;
  sessionId?: string;
  model?: string;
  provider?: string;
  parameters?: Record<string, unknown>;
  attributes?: Record<string, unknown>;
  /** Epoch milliseconds or a Date; defaults to now. */
  startTime?: number | Date;
}

/** A span as sent to Untrace (the canonical span, snake_case). */
export interface SpanRecord {
  id: string;
  trace_id: string;
  parent_id: string | null;
  name: string;
  kind: SpanKind;
  start_time: number;
  end_time?: number;
  session_id?: string;
  user_id?: string;
  provider?: string;
  model?: string;
  request?: Record<string, unknown>;
  response?: Record<string, unknown>;
  metadata?: Record<string, unknown>;
  metrics?: Record<string, number>;
  error?: { type: string; message: string; stack?: string; [key: string]: unknown } | null;
  attributes?: Record<string, unknown>;
}

/** Where ended spans go (the Untrace client). */
export interface SpanSink {
  enqueue(record: SpanRecord): void;
}

function isMessages(value: unknown): value is Record<string, unknown>[] {
  return (
    Array.isArray(value) &&
    value.length > 0 &&
    value.every((m) => m !== null && typeof m === "object" && !Array.isArray(m) && "role" in m)
  );
}

function toMs(value: number | Date): number {
  return value instanceof Date ? value.getTime() : value;
}

function count(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined;
}

/** Normalise any usage shape to `{prompt_tokens, completion_tokens, total_tokens}`. */
export function normaliseUsage(usage: Usage | Record<string, unknown>): Record<string, number> {
  const u = usage as Record<string, unknown>;
  const prompt = count(u.promptTokens ?? u.prompt_tokens ?? u.input_tokens);
  const completion = count(u.completionTokens ?? u.completion_tokens ?? u.output_tokens);
  let total = count(u.totalTokens ?? u.total_tokens);
  if (total === undefined && prompt !== undefined && completion !== undefined) total = prompt + completion;
  const out: Record<string, number> = {};
  if (prompt !== undefined) out.prompt_tokens = prompt;
  if (completion !== undefined) out.completion_tokens = completion;
  if (total !== undefined) out.total_tokens = total;
  return out;
}

/**
 * One unit of work in a trace. Create spans with `untrace.span()` or
 * `untrace.startSpan()`; a span is sent when `end()` is called (once).
 */
export class Span {
  readonly id: string;
  readonly traceId: string;
  readonly parentId: string | null;
  name: string;
  kind: SpanKind;
  readonly startTime: number;
  endTime: number | undefined;
  userId: string | undefined;
  sessionId: string | undefined;
  model: string | undefined;
  provider: string | undefined;
  private request: Record<string, unknown> = {};
  private response: Record<string, unknown> = {};
  private metadata: Record<string, unknown> = {};
  private tags: Record<string, string> = {};
  private metrics: Record<string, number> = {};
  private attributes: Record<string, unknown> = {};
  private error: SpanRecord["error"] = null;
  private readonly sink: SpanSink;

  constructor(sink: SpanSink, name: string, fields: SpanFields = {}) {
    this.sink = sink;
    this.name = name;
    this.kind = fields.kind ?? "span";
    const parent = fields.parent ?? null;
    if (parent instanceof Span) {
      this.traceId = parent.traceId;
      this.parentId = parent.id;
      this.userId = parent.userId;
      this.sessionId = parent.sessionId;
    } else if (parent) {
      this.traceId = parent.traceId;
      this.parentId = parent.spanId;
    } else {
      this.traceId = newTraceId();
      this.parentId = null;
    }
    this.id = newSpanId();
    this.startTime = fields.startTime === undefined ? nowMs() : toMs(fields.startTime);
    if (fields.userId !== undefined) this.userId = fields.userId;
    if (fields.sessionId !== undefined) this.sessionId = fields.sessionId;
    this.model = fields.model;
    this.provider = fields.provider;
    if (fields.input !== undefined) this.setInput(fields.input);
    if (fields.parameters) this.setParameters(fields.parameters);
    if (fields.metadata) this.setMetadata(fields.metadata);
    if (fields.tags) this.setTags(fields.tags);
    if (fields.attributes) this.setAttributes(fields.attributes);
  }

  /** True once `end()` was called; later changes are ignored. */
  get ended(): boolean {
    return this.endTime !== undefined;
  }

  /** The input: chat messages (`[{role, content}]`), a prompt string, or any JSON value. */
  setInput(input: unknown): this {
    if (isMessages(input)) this.request.messages = input;
    else if (typeof input === "string") this.request.prompt = input;
    else this.request.input = input;
    return this;
  }

  /** The output: a string, messages, or any JSON value. */
  setOutput(output: unknown): this {
    if (typeof output === "string") this.response.content = output;
    else if (isMessages(output)) this.response.messages = output;
    else this.response.output = output;
    return this;
  }

  /** Request parameters (temperature, max_tokens, ...), merged. */
  setParameters(parameters: Record<string, unknown>): this {
    this.request.parameters = { ...((this.request.parameters as object) ?? {}), ...parameters };
    return this;
  }

  /** Free-form metadata, merged; `environment` and `version` are strings, `tags` go through `setTags`. */
  setMetadata(metadata: Record<string, unknown>): this {
    const { tags, ...rest } = metadata;
    Object.assign(this.metadata, rest);
    if (tags && typeof tags === "object") this.setTags(tags as Record<string, TagValue>);
    return this;
  }

  /** Tags (string values; numbers and booleans are converted), merged. */
  setTags(tags: Record<string, TagValue>): this {
    for (const [key, value] of Object.entries(tags)) {
      if (value !== undefined && value !== null) this.tags[key] = String(value);
    }
    return this;
  }

  setUser(userId: string | undefined): this {
    this.userId = userId;
    return this;
  }

  setSession(sessionId: string | undefined): this {
    this.sessionId = sessionId;
    return this;
  }

  setModel(model: string | undefined): this {
    this.model = model;
    return this;
  }

  setProvider(provider: string | undefined): this {
    this.provider = provider;
    return this;
  }

  setKind(kind: SpanKind): this {
    this.kind = kind;
    return this;
  }

  setUsage(usage: Usage | Record<string, unknown>): this {
    const normalised = normaliseUsage(usage);
    if (Object.keys(normalised).length) this.response.usage = normalised;
    return this;
  }

  setFinishReason(reason: string | null | undefined): this {
    if (typeof reason === "string") this.response.finish_reason = reason;
    return this;
  }

  /** Timings and cost: `latency_ms`, `time_to_first_token_ms`, `estimated_cost`, ... (merged). */
  setMetrics(metrics: Record<string, number>): this {
    for (const [key, value] of Object.entries(metrics)) {
      if (typeof value === "number" && Number.isFinite(value) && value >= 0) this.metrics[key] = value;
    }
    return this;
  }

  setAttribute(key: string, value: unknown): this {
    this.attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Record<string, unknown>): this {
    Object.assign(this.attributes, attributes);
    return this;
  }

  /** Record an error on the span (it is not thrown). */
  recordError(error: unknown): this {
    if (error instanceof Error) {
      const recorded: NonNullable<SpanRecord["error"]> = {
        type: error.constructor?.name && error.constructor.name !== "Error" ? error.constructor.name : error.name,
        message: error.message,
      };
      if (error.stack) recorded.stack = error.stack;
      const status = (error as { status?: unknown }).status;
      if (typeof status === "number") recorded.status = status;
      const code = (error as { code?: unknown }).code;
      if (typeof code === "string" || typeof code === "number") recorded.code = code;
      this.error = recorded;
    } else {
      this.error = { type: typeof error, message: String(error) };
    }
    return this;
  }

  /** End the span and queue it for sending; calling it again does nothing. */
  end(endTime?: number | Date): void {
    if (this.ended) return;
    this.endTime = endTime === undefined ? nowMs() : toMs(endTime);
    this.sink.enqueue(this.toJSON());
  }

  /** The canonical span as sent. */
  toJSON(): SpanRecord {
    const record: SpanRecord = {
      id: this.id,
      trace_id: this.traceId,
      parent_id: this.parentId,
      name: this.name,
      kind: this.kind,
      start_time: this.startTime,
    };
    if (this.endTime !== undefined) record.end_time = this.endTime;
    if (this.userId !== undefined) record.user_id = this.userId;
    if (this.sessionId !== undefined) record.session_id = this.sessionId;
    if (this.provider !== undefined) record.provider = this.provider;
    if (this.model !== undefined) record.model = this.model;
    if (Object.keys(this.request).length) record.request = { ...this.request };
    if (Object.keys(this.response).length) record.response = { ...this.response };
    const metadata: Record<string, unknown> = { ...this.metadata };
    if (Object.keys(this.tags).length) metadata.tags = { ...this.tags };
    if (Object.keys(metadata).length) record.metadata = metadata;
    if (Object.keys(this.metrics).length) record.metrics = { ...this.metrics };
    if (this.error) record.error = this.error;
    if (Object.keys(this.attributes).length) record.attributes = { ...this.attributes };
    return record;
  }
}
