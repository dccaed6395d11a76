// Against a real Untrace and the fake OpenAI upstream, both started by
// tests/integration/sdk/test_typescript_sdk.py (UNTRACE_BASE_URL, UNTRACE_API_KEY, FAKE_OPENAI_URL).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import OpenAI from "openai";
import { Untrace, fromTraceparent, traceparent, wrapOpenAI } from "untrace-sdk";
import { closedPort } from "./helpers.mjs";

const { UNTRACE_BASE_URL, UNTRACE_API_KEY, FAKE_OPENAI_URL } = process.env;
const missing = ["UNTRACE_BASE_URL", "UNTRACE_API_KEY", "FAKE_OPENAI_URL"].filter((name) => !process.env[name]);
const live = missing.length ? { skip: `needs ${missing.join(", ")} (run through pytest)` } : {};

const USAGE = { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17 };
const MESSAGES = [{ role: "user", content: "Say hello" }];

function openaiClient() {
  return new OpenAI({ apiKey: "sk-test-provider", baseURL: `${FAKE_OPENAI_URL}/v1`, maxRetries: 0 });
}

function walk(nodes, out = []) {
  for (const node of nodes) {
    out.push(node);
    walk(node.children, out);
  }
  return out;
}

test("nested spans and wrapped OpenAI calls are stored as one trace tree", live, async () => {
  const untrace = new Untrace({ flushIntervalMs: 60_000, flushOnExit: false });
  const openai = wrapOpenAI(openaiClient(), { untrace });
  assert.equal(wrapOpenAI(openai, { untrace }), openai, "wrapping twice is a no-op");
  let traceId;
  let streamed = "";

  const answer = await untrace.span(
    "answer question",
    async (root) => {
      traceId = root.traceId;
      root.setInput("Say hello").setUser("user-42").setSession("session-7");
      root.setMetadata({ environment: "test" }).setTags({ team: "search" });
      await untrace.span("retrieve", async (span) => span.setOutput(["doc-1", "doc-2"]), { kind: "retrieval" });

      const completion = await openai.chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES, temperature: 0 });
      const stream = await openai.chat.completions.create({
        model: "gpt-4o-mini",
        messages: MESSAGES,
        stream: true,
        stream_options: { include_usage: true },
      });
      for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? "";

      const embedding = await openai.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
      assert.equal(embedding.data.length, 2);
      await openai.responses.create({ model: "gpt-4o-mini", input: "Say hello" });
      await assert.rejects(openai.chat.completions.create({ model: "error-400", messages: MESSAGES }), { status: 400 });

      root.setOutput(completion.choices[0].message.content);
      return completion.choices[0].message.content;
    },
    { kind: "agent" },
  );
  assert.equal(answer, "Hello from the fake!");
  assert.equal(streamed, "Hello from the fake!");

  await untrace.flush();
  assert.equal(untrace.stats.sent, 7);
  assert.equal(untrace.stats.dropped + untrace.stats.rejected, 0);

  const trace = await untrace.getTrace(traceId);
  assert.equal(trace.trace_id, traceId);
  assert.equal(trace.spans.length, 1, "one root");
  const [root] = trace.spans;
  assert.equal(root.name, "answer question");
  assert.equal(root.kind, "agent");
  assert.ok(!root.parent_id);
  assert.equal(root.response.content, "Hello from the fake!");
  assert.deepEqual(root.metadata.tags, { team: "search" });
  assert.deepEqual(
    root.children.map((c) => c.name).sort(),
    ["openai.chat.completions.create", "openai.chat.completions.create", "openai.chat.completions.create",
      "openai.embeddings.create", "openai.responses.create", "retrieve"],
  );
  const all = walk(trace.spans);
  assert.equal(all.length, 7);
  for (const span of all) {
    assert.equal(span.trace_id, traceId);
    assert.equal(span.user_id, "user-42", `${span.name} inherits the user`);
    assert.equal(span.session_id, "session-7");
  }
  for (const child of root.children) assert.equal(child.parent_id, root.id);

  const chats = root.children.filter((c) => c.name === "openai.chat.completions.create" && !c.error);
  const [plain, streamedSpan] = chats.sort((a, b) => Number(Boolean(a.metrics.time_to_first_token_ms)) - Number(Boolean(b.metrics.time_to_first_token_ms)));
  for (const chat of [plain, streamedSpan]) {
    assert.equal(chat.kind, "llm");
    assert.equal(chat.provider, "openai");
    assert.equal(chat.model, "gpt-4o-mini");
    assert.equal(chat.response.content, "Hello from the fake!");
    assert.equal(chat.response.finish_reason, "stop");
    assert.deepEqual(chat.request.messages, MESSAGES);
    assert.deepEqual({ ...chat.response.usage }, USAGE);
    // gpt-4o-mini: $0.15 per million input tokens, $0.60 per million output tokens.
    assert.ok(Math.abs(chat.metrics.estimated_cost - (12 * 0.15 + 5 * 0.6) / 1e6) < 1e-9, String(chat.metrics.estimated_cost));
    assert.ok(chat.metrics.latency_ms >= 0);
  }
  assert.deepEqual(plain.request.parameters, { temperature: 0 });
  assert.equal(plain.metrics.time_to_first_token_ms, undefined);
  assert.ok(streamedSpan.metrics.time_to_first_token_ms >= 0);
  assert.ok(streamedSpan.metrics.time_to_first_token_ms <= streamedSpan.metrics.latency_ms);
  assert.equal(streamedSpan.request.parameters.stream, true);

  const embed = root.children.find((c) => c.name === "openai.embeddings.create");
  assert.equal(embed.kind, "embedding");
  assert.equal(embed.model, "text-embedding-3-small");
  assert.equal(embed.response.usage.prompt_tokens, 6);
  assert.ok(Math.abs(embed.metrics.estimated_cost - (6 * 0.02) / 1e6) < 1e-9, String(embed.metrics.estimated_cost));

  const responses = root.children.find((c) => c.name === "openai.responses.create");
  assert.equal(responses.model, "gpt-4o-mini");
  assert.equal(responses.request.prompt, "Say hello");

  const failed = root.children.find((c) => c.error);
  assert.equal(failed.model, "error-400");
  assert.equal(failed.error.type, "BadRequestError");
  assert.equal(failed.error.status, 400);
  assert.match(failed.error.message, /Fake error 400/);

  assert.equal(trace.totals.spans, 7);
  assert.equal(trace.totals.errors, 1);
  assert.ok(trace.totals.models.includes("gpt-4o-mini"));
  assert.ok(trace.totals.models.includes("text-embedding-3-small"));
  assert.ok(trace.totals.cost >= 2 * (12 * 0.15 + 5 * 0.6) / 1e6);
  await untrace.shutdown();
});

test("a span continued from a traceparent header joins the caller's trace", live, async () => {
  const untrace = new Untrace({ flushIntervalMs: 60_000, flushOnExit: false });
  const caller = untrace.startSpan("caller", { kind: "chain" });
  const header = traceparent(caller);
  await untrace.span("callee", async () => undefined, { parent: fromTraceparent(header), kind: "tool" });
  caller.end();
  await untrace.flush();
  const trace = await untrace.getTrace(caller.traceId);
  assert.equal(trace.spans.length, 1);
  assert.equal(trace.spans[0].name, "caller");
  assert.deepEqual(trace.spans[0].children.map((c) => [c.name, c.parent_id]), [["callee", caller.id]]);
  await untrace.shutdown();
});

test("Untrace down: wrapped calls and spans work, never throw, and drops are counted", live, async () => {
  const port = await closedPort();
  const untrace = new Untrace({
    baseUrl: `http://127.0.0.1:${port}`,
    flushIntervalMs: 60_000,
    flushOnExit: false,
    maxRetries: 1,
    retryBaseDelayMs: 5,
  });
  const openai = wrapOpenAI(openaiClient(), { untrace });
  const content = await untrace.span("down", async () => {
    const completion = await openai.chat.completions.create({ model: "gpt-4o-mini", messages: MESSAGES });
    return completion.choices[0].message.content;
  });
  assert.equal(content, "Hello from the fake!");
  await untrace.flush();
  await untrace.shutdown();
  assert.equal(untrace.stats.sent, 0);
  assert.equal(untrace.stats.dropped, 2);
  assert.equal(untrace.stats.droppedSendFailed, 2);
  assert.equal(untrace.stats.requests, 2);
});

test("the README quickstart works as written", live, async () => {
  const readme = readFileSync(new URL("../README.md", import.meta.url), "utf8");
  const section = readme.slice(readme.indexOf("## Quickstart"));
  const code = /```js\n([\s\S]*?)```/.exec(section)[1];
  const file = fileURLToPath(new URL(`./.quickstart-${process.pid}.mjs`, import.meta.url));
  writeFileSync(file, code);
  try {
    const child = spawn(process.execPath, [file], {
      env: { ...process.env, OPENAI_API_KEY: "sk-test-provider", OPENAI_BASE_URL: `${FAKE_OPENAI_URL}/v1` },
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.on("data", (chunk) => (stdout += chunk));
    const [status] = await once(child, "close");
    assert.equal(status, 0);
    assert.equal(stdout.trim(), "Hello from the fake!");
  } finally {
    rmSync(file, { force: true });
  }
  const response = await fetch(`${UNTRACE_BASE_URL}/v1/traces?user_id=quickstart-user`, {
    headers: { "X-Untrace-Key": UNTRACE_API_KEY },
  });
  assert.equal(response.status, 200);
  const spans = (await response.json()).results;
  const root = spans.find((s) => s.name === "answer question");
  assert.equal(root.kind, "agent");
  const call = spans.find((s) => s.parent_id === root.id);
  assert.equal(call.kind, "llm");
  assert.equal(call.model, "gpt-4o-mini");
  assert.equal(call.response.usage.total_tokens, 17);
});
