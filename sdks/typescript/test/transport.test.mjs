// Batching, retries, compression and dropping, against a local stand-in and a closed port.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import { Untrace, parseRetryAfter } from "untrace-sdk";
import { closedPort, recordingServer } from "./helpers.mjs";

const quiet = { flushIntervalMs: 60_000, flushOnExit: false };

test("spans go out in batches with the key, gzip-compressed when large", async () => {
  const server = await recordingServer();
  try {
    const untrace = new Untrace({ ...quiet, baseUrl: server.url, apiKey: "ut_test_key", batchSize: 3, gzipThresholdBytes: 0 });
    for (let i = 0; i < 7; i++) untrace.startSpan(`s${i}`).end();
    await untrace.flush();
    assert.deepEqual(server.requests.map((r) => r.body.traces.length), [3, 3, 1]);
    const first = server.requests[0];
    assert.equal(first.method, "POST");
    assert.equal(first.url, "/v1/traces/batch");
    assert.equal(first.headers["x-untrace-key"], "ut_test_key");
    assert.equal(first.headers["content-encoding"], "gzip");
    assert.equal(first.headers["content-type"], "application/json");
    assert.deepEqual(untrace.stats, {
      queued: 0, sent: 7, dropped: 0, droppedQueueFull: 0, droppedSendFailed: 0, rejected: 0, requests: 3, retries: 0,
    });
    await untrace.shutdown();
  } finally {
    await server.close();
  }
});

test("the timer sends without an explicit flush", async () => {
  const server = await recordingServer();
  try {
    const untrace = new Untrace({ baseUrl: server.url, apiKey: "k", flushIntervalMs: 50, flushOnExit: false });
    untrace.startSpan("timed").end();
    const deadline = Date.now() + 5000;
    while (!server.requests.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(server.requests.length, 1);
    await untrace.shutdown();
  } finally {
    await server.close();
  }
});

test("429 and 503 are retried, honouring Retry-After", async () => {
  const server = await recordingServer((_req, n) =>
    n === 1 ? { status: 503, headers: { "retry-after": "1" } } : n === 2 ? { status: 429, headers: { "retry-after": "0" } } : { status: 202 },
  );
  try {
    const untrace = new Untrace({ ...quiet, baseUrl: server.url, apiKey: "k", retryBaseDelayMs: 1 });
    untrace.startSpan("retried").end();
    await untrace.flush();
    assert.equal(server.requests.length, 3);
    assert.ok(server.requests[1].at - server.requests[0].at >= 950, "waited the Retry-After second");
    assert.equal(untrace.stats.sent, 1);
    assert.equal(untrace.stats.retries, 2);
    assert.equal(server.requests[2].body.traces[0].id, server.requests[0].body.traces[0].id);
  } finally {
    await server.close();
  }
});

test("413 splits the batch, 207 and 400 count rejected spans, 401 is not retried", async () => {
  const server = await recordingServer((req) => {
    const spans = req.body.traces;
    if (spans.length > 2) return { status: 413 };
    if (spans[0].name === "bad") return { status: 400, json: { error: { code: "invalid" } } };
    if (spans[0].name === "denied") return { status: 401, json: { error: { code: "unauthorized" } } };
    if (spans.length === 2) return { status: 207, json: { accepted: [spans[0].id], errors: [{ index: 1, message: "no", field: "kind" }] } };
    return { status: 202 };
  });
  const errors = [];
  try {
    const untrace = new Untrace({ ...quiet, baseUrl: server.url, apiKey: "k", batchSize: 4, onError: (e) => errors.push(e) });
    for (let i = 0; i < 4; i++) untrace.startSpan(`s${i}`).end();
    await untrace.flush();
    assert.deepEqual(server.requests.map((r) => r.body.traces.length), [4, 2, 2]);
    assert.equal(untrace.stats.sent, 2);
    assert.equal(untrace.stats.rejected, 2);
    untrace.startSpan("bad").end();
    await untrace.flush();
    untrace.startSpan("denied").end();
    await untrace.flush();
    assert.equal(server.requests.length, 5, "400 and 401 are not retried");
    assert.equal(untrace.stats.rejected, 4);
    assert.deepEqual(errors.map((e) => [e.reason, e.status]), [["rejected", 207], ["rejected", 207], ["rejected", 400], ["rejected", 401]]);
  } finally {
    await server.close();
  }
});

test("Untrace down: nothing throws, the oldest spans are dropped and counted", async () => {
  const port = await closedPort();
  const errors = [];
  const untrace = new Untrace({
    ...quiet,
    baseUrl: `http://127.0.0.1:${port}`,
    apiKey: "ut_nobody_home",
    maxQueue: 5,
    maxRetries: 2,
    retryBaseDelayMs: 5,
    onError: (e) => errors.push(e),
  });
  const ids = [];
  for (let i = 0; i < 8; i++) {
    const value = untrace.span(`work ${i}`, (span) => {
      ids.push(span.id);
      return i * 2;
    });
    assert.equal(value, i * 2);
  }
  assert.equal(untrace.stats.queued, 5);
  assert.equal(untrace.stats.droppedQueueFull, 3);
  await assert.rejects(
    untrace.span("failing", async () => {
      throw new TypeError("app bug");
    }),
    { name: "TypeError", message: "app bug" },
  );
  assert.equal(untrace.stats.droppedQueueFull, 4, "the sixth span in a queue of five pushes out the oldest");
  await untrace.flush();
  await untrace.shutdown();
  assert.deepEqual(untrace.stats, {
    queued: 0, sent: 0, dropped: 9, droppedQueueFull: 4, droppedSendFailed: 5, rejected: 0, requests: 3, retries: 2,
  });
  assert.deepEqual([...new Set(errors.map((e) => e.reason))], ["queue_full", "send_failed"]);
  untrace.startSpan("after shutdown").end();
  assert.equal(untrace.stats.queued, 0);
});

test("queued spans are sent when the process is about to exit", async () => {
  const server = await recordingServer();
  try {
    const script = fileURLToPath(new URL("./fixtures/exit-without-flush.mjs", import.meta.url));
    const child = spawn(process.execPath, [script], {
      env: { ...process.env, UNTRACE_BASE_URL: server.url, UNTRACE_API_KEY: "ut_env_key" },
      stdio: ["ignore", "inherit", "inherit"],
    });
    const [code] = await once(child, "exit");
    assert.equal(code, 0);
    assert.equal(server.requests.length, 1);
    assert.equal(server.requests[0].headers["x-untrace-key"], "ut_env_key");
    assert.deepEqual(server.requests[0].body.traces.map((s) => [s.name, s.response.content]), [["before exit", "done"]]);
  } finally {
    await server.close();
  }
});

test("Retry-After: seconds or an HTTP date", () => {
  assert.equal(parseRetryAfter("3"), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter("soon"), undefined);
  const inTwo = new Date(Date.now() + 2000).toUTCString();
  assert.ok(parseRetryAfter(inTwo) <= 2000);
});
