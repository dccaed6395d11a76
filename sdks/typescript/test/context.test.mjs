// Span context (AsyncLocalStorage), setters, errors and traceparent, without any network.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Untrace, currentSpan, fromTraceparent, traceparent } from "untrace-sdk";

function collector() {
  const untrace = new Untrace({ baseUrl: "http://127.0.0.1:9", flushIntervalMs: 60_000, flushOnExit: false });
  const records = [];
  untrace.enqueue = (record) => records.push(record);
  return { untrace, records };
}

test("children nest under the current span across awaits and concurrent branches", async () => {
  const { untrace, records } = collector();
  await untrace.span("root", async (root) => {
    root.setUser("u-1").setSession("s-1");
    await Promise.all(
      ["a", "b"].map((name) =>
        untrace.span(name, async (branch) => {
          await new Promise((r) => setTimeout(r, 5));
          assert.equal(currentSpan(), branch);
          untrace.span(`${name}.leaf`, () => undefined, { kind: "tool" });
        }),
      ),
    );
    assert.equal(currentSpan(), root);
  }, { kind: "agent" });
  assert.equal(currentSpan(), undefined);
  const byName = Object.fromEntries(records.map((r) => [r.name, r]));
  const root = byName.root;
  assert.equal(root.parent_id, null);
  assert.equal(root.kind, "agent");
  assert.equal(byName.a.parent_id, root.id);
  assert.equal(byName.b.parent_id, root.id);
  assert.equal(byName["a.leaf"].parent_id, byName.a.id);
  assert.equal(byName["b.leaf"].parent_id, byName.b.id);
  assert.equal(byName["b.leaf"].kind, "tool");
  assert.ok(records.every((r) => r.trace_id === root.trace_id && r.user_id === "u-1" && r.session_id === "s-1"));
  assert.ok(records.every((r) => r.end_time >= r.start_time));
});

test("setters fill the canonical span fields", () => {
  const { untrace, records } = collector();
  const span = untrace.startSpan("call", { kind: "llm", tags: { team: "search" }, parameters: { temperature: 0 } });
  span
    .setInput([{ role: "user", content: "hi" }])
    .setOutput("hello")
    .setMetadata({ environment: "test", version: "1.2", tags: { tier: 2 } })
    .setTags({ beta: true })
    .setUser("u")
    .setSession("s")
    .setModel("gpt-4o-mini")
    .setProvider("openai")
    .setUsage({ promptTokens: 3, completionTokens: 2 })
    .setFinishReason("stop");
  span.end();
  span.end();
  assert.equal(records.length, 1, "end() sends once");
  const r = records[0];
  assert.deepEqual(r.request, { messages: [{ role: "user", content: "hi" }], parameters: { temperature: 0 } });
  assert.deepEqual(r.response, { content: "hello", usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 }, finish_reason: "stop" });
  assert.deepEqual(r.metadata, { environment: "test", version: "1.2", tags: { team: "search", tier: "2", beta: "true" } });
  assert.equal(r.user_id, "u");
  assert.equal(r.session_id, "s");
  assert.equal(r.model, "gpt-4o-mini");
  assert.equal(r.provider, "openai");
  assert.match(r.id, /^[0-9a-f]{16}$/);
  assert.match(r.trace_id, /^[0-9a-f]{32}$/);
  assert.equal(r.error, undefined);
});

test("errors are recorded and rethrown, sync and async", async () => {
  const { untrace, records } = collector();
  assert.throws(() => untrace.span("sync", () => { throw new RangeError("boom"); }), RangeError);
  await assert.rejects(untrace.span("async", async () => { throw new Error("later"); }), /later/);
  assert.deepEqual(records.map((r) => [r.name, r.error.type, r.error.message]), [["sync", "RangeError", "boom"], ["async", "Error", "later"]]);
  assert.match(records[0].error.stack, /RangeError: boom/);
});

test("traceparent round trip and a remote parent", () => {
  const { untrace, records } = collector();
  assert.equal(traceparent(), undefined);
  const header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const remote = fromTraceparent(header);
  assert.deepEqual(remote, { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", sampled: true });
  untrace.span("handler", (span) => {
    assert.equal(traceparent(), `00-${remote.traceId}-${span.id}-01`);
    assert.deepEqual(fromTraceparent(traceparent(span)), { traceId: remote.traceId, spanId: span.id, sampled: true });
  }, { parent: remote });
  assert.equal(records[0].trace_id, remote.traceId);
  assert.equal(records[0].parent_id, remote.spanId);
  for (const bad of [undefined, "", "garbage", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"]) {
    assert.equal(fromTraceparent(bad), undefined, String(bad));
  }
  assert.equal(fromTraceparent(["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"]).sampled, false);
  untrace.span("new root", (span) => assert.equal(span.parentId, null), { parent: fromTraceparent("nonsense") });
});

test("a disabled client runs the code and records nothing", async () => {
  const untrace = new Untrace({ enabled: false });
  assert.equal(await untrace.span("x", async () => 42), 42);
  assert.equal(untrace.stats.queued, 0);
});
