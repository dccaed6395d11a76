import { promisify } from "node:util";
import { gzip as gzipCallback } from "node:zlib";
import { currentSpan, withSpan } from "./context.js";
import { Span, type SpanFields, type SpanRecord, type SpanSink } from "./span.js";

const gzip = promisify(gzipCallback);

export interface UntraceOptions {
  /** API key with the `ingest` scope (and `read` for `getTrace`); defaults to `UNTRACE_API_KEY`. */
  apiKey?: string;
  /** Where Untrace runs; defaults to `UNTRACE_BASE_URL`, then `http://127.0.0.1:8000`. */
  baseUrl?: string;
  /** Spans per request (at most 1000, the server's limit). Default 100. */
  batchSize?: number;
  /** How often queued spans are sent. Default 1000 ms. */
  flushIntervalMs?: number;
  /** Spans kept in memory; when full the oldest is dropped (and counted). Default 10000. */
  maxQueue?: number;
  /** Retries of a batch after a 429, a 5xx or a network error. Default 5. */
  maxRetries?: number;
  /** First backoff step; the delay is random in [0, min(retryMaxDelayMs, base * 2^attempt)]. Default 250 ms. */
  retryBaseDelayMs?: number;
  /** Longest wait between two attempts, Retry-After included. Default 30000 ms. */
  retryMaxDelayMs?: number;
  /** Timeout of one request. Default 10000 ms. */
  timeoutMs?: number;
  /** Bodies at least this large are gzip-compressed; 0 always, `false` never. Default 1024 bytes. */
  gzipThresholdBytes?: number | false;
  /** Set to false to record nothing (spans still run your code). Default true. */
  enabled?: boolean;
  /** Flush queued spans when the process is about to exit. Default true. */
  flushOnExit?: boolean;
  /** Called when spans are dropped or a batch is rejected; never required. */
  onError?: (error: UntraceError) => void;
  /** Extra headers on every request. */
  headers?: Record<string, string>;
}

/** Why spans were not stored (reported to `onError`, never thrown). */
export interface UntraceError {
  reason: "queue_full" | "send_failed" | "rejected";
  message: string;
  spans: number;
  status?: number;
  details?: unknown;
}

/** Counters since the client was created. */
export interface UntraceStats {
  /** Spans waiting to be sent. */
  queued: number;
  /** Spans Untrace accepted. */
  sent: number;
  /** Spans lost: the queue was full (oldest dropped), or sending failed after every retry. */
  dropped: number;
  /** Of `dropped`, those pushed out of a full queue. */
  droppedQueueFull: number;
  /** Of `dropped`, those whose batch could not be delivered. */
  droppedSendFailed: number;
  /** Spans Untrace refused as invalid (400, or the rejected part of a 207). */
  rejected: number;
  /** HTTP requests made, retries included. */
  requests: number;
  /** Attempts that were retried. */
  retries: number;
}

const MAX_BATCH = 1000;
const RETRYABLE = new Set([408, 425, 429, 500, 502, 503, 504]);

let defaultClient: Untrace | undefined;

/** The first `Untrace` created (or the last passed to `setDefault`), used by `wrapOpenAI` without a client. */
export function getDefaultClient(): Untrace | undefined {
  return defaultClient;
}

function envValue(name: string): string | undefined {
  const value = typeof process !== "undefined" ? process.env[name] : undefined;
  return value ? value : undefined;
}

function positive(value: number | undefined, fallback: number): number {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : fallback;
}

function safeStringify(value: unknown): string | undefined {
  const seen = new WeakSet<object>();
  try {
    return JSON.stringify(value, (_key, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[Circular]";
        seen.add(v);
      }
      return v;
    });
  } catch {
    return undefined;
  }
}

/** Seconds or an HTTP date, as milliseconds from now; undefined when absent or unreadable. */
export function parseRetryAfter(header: string | null): number | undefined {
  if (!header) return undefined;
  const seconds = Number(header.trim());
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  if (Number.isFinite(date)) return Math.max(0, date - Date.now());
  return undefined;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

type Outcome = { kind: "done" } | { kind: "retry"; delayMs?: number; message: string; status?: number } | { kind: "split" };

/**
 * The Untrace client: makes spans and sends them in the background.
 *
 * Spans wait in a bounded in-memory queue and are sent in batches to
 * `POST /v1/traces/batch` on a timer that does not keep the process alive.
 * Nothing here throws into your code because Untrace is slow, down or refusing.
 */
export class Untrace implements SpanSink {
  readonly apiKey: string | undefined;
  readonly baseUrl: string;
  readonly batchSize: number;
  readonly flushIntervalMs: number;
  readonly maxQueue: number;
  readonly enabled: boolean;
  private readonly maxRetries: number;
  private readonly retryBaseDelayMs: number;
  private readonly retryMaxDelayMs: number;
  private readonly timeoutMs: number;
  private readonly gzipThreshold: number | false;
  private readonly onError: ((error: UntraceError) => void) | undefined;
  private readonly headers: Record<string, string>;
  private queue: SpanRecord[] = [];
  private draining: Promise<void> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private exitHandler: (() => void) | undefined;
  private closed = false;
  private readonly counters = {
    sent: 0,
    droppedQueueFull: 0,
    droppedSendFailed: 0,
    rejected: 0,
    requests: 0,
    retries: 0,
  };

  constructor(options: UntraceOptions = {}) {
    this.apiKey = options.apiKey ?? envValue("UNTRACE_API_KEY");
    this.baseUrl = (options.baseUrl ?? envValue("UNTRACE_BASE_URL") ?? "http://127.0.0.1:8000").replace(/\/+$/, "");
    this.batchSize = Math.min(MAX_BATCH, Math.floor(positive(options.batchSize, 100)));
    this.flushIntervalMs = positive(options.flushIntervalMs, 1000);
    this.maxQueue = Math.floor(positive(options.maxQueue, 10_000));
    this.maxRetries = options.maxRetries !== undefined && options.maxRetries >= 0 ? Math.floor(options.maxRetries) : 5;
    this.retryBaseDelayMs = positive(options.retryBaseDelayMs, 250);
    this.retryMaxDelayMs = positive(options.retryMaxDelayMs, 30_000);
    this.timeoutMs = positive(options.timeoutMs, 10_000);
    this.gzipThreshold = options.gzipThresholdBytes === false ? false : Math.max(0, options.gzipThresholdBytes ?? 1024);
    this.enabled = options.enabled ?? true;
    this.onError = options.onError;
    this.headers = { ...(options.headers ?? {}) };

    if (this.enabled) {
      this.timer = setInterval(() => void this.kick(), this.flushIntervalMs);
      this.timer.unref?.();
      if ((options.flushOnExit ?? true) && typeof process !== "undefined" && typeof process.on === "function") {
        this.exitHandler = () => {
          if (this.queue.length && !this.draining) void this.flush();
        };
        process.on("beforeExit", this.exitHandler);
      }
    }
    defaultClient ??= this;
  }

  /** Make this client the one `wrapOpenAI` uses when none is given. */
  setDefault(): this {
    defaultClient = this;
    return this;
  }

  get stats(): UntraceStats {
    const c = this.counters;
    return {
      queued: this.queue.length,
      sent: c.sent,
      dropped: c.droppedQueueFull + c.droppedSendFailed,
      droppedQueueFull: c.droppedQueueFull,
      droppedSendFailed: c.droppedSendFailed,
      rejected: c.rejected,
      requests: c.requests,
      retries: c.retries,
    };
  }

  /** The span active in the current async context, if any. */
  currentSpan(): Span | undefined {
    return currentSpan();
  }

  /**
   * Start a span without making it current; call `span.end()` when done.
   * Its parent is `fields.parent`, else the current span.
   */
  startSpan(name: string, fields: SpanFields = {}): Span {
    const parent = "parent" in fields ? fields.parent : currentSpan();
    return new Span(this, name, { ...fields, parent });
  }

  /**
   * Run `fn` inside a new span (current for everything `fn` calls, sync or
   * async). The span ends when `fn` returns or its promise settles; an error
   * is recorded on the span and rethrown.
   */
  span<T>(name: string, fn: (span: Span) => T, fields: SpanFields = {}): T {
    const span = this.startSpan(name, fields);
    let result: T;
    try {
      result = withSpan(span, () => fn(span));
    } catch (error) {
      span.recordError(error);
      span.end();
      throw error;
    }
    if (result !== null && typeof result === "object" && typeof (result as { then?: unknown }).then === "function") {
      return (result as unknown as PromiseLike<unknown>).then(
        (value) => {
          span.end();
          return value;
        },
        (error: unknown) => {
          span.recordError(error);
          span.end();
          throw error;
        },
      ) as T;
    }
    span.end();
    return result;
  }

  /** Run `fn` with `span` as the current span. */
  withSpan<T>(span: Span, fn: () => T): T {
    return withSpan(span, fn);
  }

  /** Queue a finished span (spans call this on `end()`); a full queue drops its oldest span. */
  enqueue(record: SpanRecord): void {
    if (!this.enabled || this.closed) return;
    try {
      this.queue.push(record);
      if (this.queue.length > this.maxQueue) {
        const over = this.queue.length - this.maxQueue;
        this.queue.splice(0, over);
        this.counters.droppedQueueFull += over;
        this.report({ reason: "queue_full", message: `queue full (${this.maxQueue}): dropped the oldest span`, spans: over });
      }
      if (this.queue.length >= this.batchSize && !this.draining) void this.kick();
    } catch {
      // never into the app
    }
  }

  /** Send everything queued now; resolves when the queue is empty (never rejects). */
  async flush(): Promise<void> {
    try {
      while (this.queue.length || this.draining) await this.kick();
    } catch {
      // never into the app
    }
  }

  /** Stop the timer, send what is queued, and stop accepting spans. */
  async shutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.exitHandler) process.removeListener("beforeExit", this.exitHandler);
    this.exitHandler = undefined;
    await this.flush();
    this.closed = true;
    if (defaultClient === this) defaultClient = undefined;
  }

  /**
   * Read a trace back: `GET /v1/traces/{traceId}` (the span tree with totals).
   * Needs a key with the `read` scope; resolves to undefined for an unknown trace.
   */
  async getTrace(traceId: string): Promise<Record<string, unknown> | undefined> {
    const response = await fetch(`${this.baseUrl}/v1/traces/${encodeURIComponent(traceId)}`, {
      headers: this.requestHeaders(),
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    if (response.status === 404) return undefined;
    if (!response.ok) throw new Error(`GET /v1/traces/${traceId} answered ${response.status}: ${await response.text()}`);
    return (await response.json()) as Record<string, unknown>;
  }

  private kick(): Promise<void> {
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
    });
    return this.draining;
  }

  private async drain(): Promise<void> {
    while (this.queue.length) {
      const batch = this.queue.splice(0, this.batchSize);
      try {
        await this.sendBatch(batch);
      } catch (error) {
        this.counters.droppedSendFailed += batch.length;
        this.report({ reason: "send_failed", message: String(error), spans: batch.length });
      }
    }
  }

  private requestHeaders(): Record<string, string> {
    const headers: Record<string, string> = { ...this.headers };
    if (this.apiKey) headers["X-Untrace-Key"] = this.apiKey;
    return headers;
  }

  private async sendBatch(batch: SpanRecord[]): Promise<void> {
    const items: string[] = [];
    for (const record of batch) {
      const json = safeStringify(record);
      if (json === undefined) {
        this.counters.rejected += 1;
        this.report({ reason: "rejected", message: "span could not be serialised to JSON", spans: 1 });
      } else items.push(json);
    }
    if (!items.length) return;
    let body: Uint8Array = Buffer.from(`{"traces":[${items.join(",")}]}`);
    const headers: Record<string, string> = { ...this.requestHeaders(), "Content-Type": "application/json" };
    if (this.gzipThreshold !== false && body.length >= this.gzipThreshold) {
      body = await gzip(body);
      headers["Content-Encoding"] = "gzip";
    }

    for (let attempt = 0; ; attempt++) {
      const outcome = await this.attempt(body, headers, items.length);
      if (outcome.kind === "done") return;
      if (outcome.kind === "split") {
        if (batch.length < 2) {
          this.counters.rejected += batch.length;
          this.report({ reason: "rejected", message: "span larger than the server accepts", spans: batch.length, status: 413 });
          return;
        }
        const half = Math.ceil(batch.length / 2);
        await this.sendBatch(batch.slice(0, half));
        await this.sendBatch(batch.slice(half));
        return;
      }
      if (attempt >= this.maxRetries) {
        this.counters.droppedSendFailed += items.length;
        this.report({
          reason: "send_failed",
          message: `gave up after ${attempt + 1} attempts: ${outcome.message}`,
          spans: items.length,
          ...(outcome.status !== undefined ? { status: outcome.status } : {}),
        });
        return;
      }
      this.counters.retries += 1;
      const ceiling = Math.min(this.retryMaxDelayMs, this.retryBaseDelayMs * 2 ** attempt);
      const jitter = Math.random() * ceiling; // full jitter
      const delay = outcome.delayMs !== undefined ? Math.min(this.retryMaxDelayMs, outcome.delayMs) : jitter;
      await sleep(delay);
    }
  }

  private async attempt(body: Uint8Array, headers: Record<string, string>, spans: number): Promise<Outcome> {
    let response: Response;
    this.counters.requests += 1;
    try {
      response = await fetch(`${this.baseUrl}/v1/traces/batch`, {
        method: "POST",
        headers,
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      return { kind: "retry", message: cause?.code ?? cause?.message ?? String(error) };
    }
    let payload: unknown;
    try {
      const text = await response.text();
      payload = text ? JSON.parse(text) : undefined;
    } catch {
      payload = undefined;
    }
    const status = response.status;
    if (status === 202 || status === 200) {
      this.counters.sent += spans;
      return { kind: "done" };
    }
    if (status === 207) {
      const errors = (payload as { errors?: unknown[] } | undefined)?.errors ?? [];
      const accepted = (payload as { accepted?: unknown[] } | undefined)?.accepted;
      const rejected = errors.length;
      this.counters.sent += Array.isArray(accepted) ? accepted.length : spans - rejected;
      this.counters.rejected += rejected;
      this.report({ reason: "rejected", message: "some spans were rejected", spans: rejected, status, details: errors });
      return { kind: "done" };
    }
    if (status === 413) return { kind: "split" };
    if (RETRYABLE.has(status)) {
      const delayMs = parseRetryAfter(response.headers.get("retry-after"));
      return { kind: "retry", message: `HTTP ${status}`, status, ...(delayMs !== undefined ? { delayMs } : {}) };
    }
    // 400 (none valid), 401/403 (key), 415 ...: sending the same batch again cannot help.
    this.counters.rejected += spans;
    this.report({ reason: "rejected", message: `HTTP ${status}`, spans, status, details: payload });
    return { kind: "done" };
  }

  private report(error: UntraceError): void {
    if (!this.onError) return;
    try {
      this.onError(error);
    } catch {
      // a failing handler is not our caller's problem either
    }
  }
}
