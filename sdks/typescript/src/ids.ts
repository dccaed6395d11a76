import { randomBytes } from "node:crypto";

/** A W3C trace id: 32 lowercase hex characters, never all zeros. */
export function newTraceId(): string {
  return nonZeroHex(16);
}

/** A W3C span (parent) id: 16 lowercase hex characters, never all zeros. */
export function newSpanId(): string {
  return nonZeroHex(8);
}

function nonZeroHex(bytes: number): string {
  for (;;) {
    const hex = randomBytes(bytes).toString("hex");
    if (!/^0+$/.test(hex)) return hex;
  }
}

/** Milliseconds since the epoch, with sub-millisecond precision. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}
