import { AsyncLocalStorage } from "node:async_hooks";
import type { Span } from "./span.js";

const storage = new AsyncLocalStorage<Span>();

/** The span active in the current async context, if any. */
export function currentSpan(): Span | undefined {
  return storage.getStore();
}

/** Run `fn` with `span` as the current span (its children and wrapped calls nest under it). */
export function withSpan<T>(span: Span, fn: () => T): T {
  return storage.run(span, fn);
}
