// The CommonJS build works with require().
const assert = require("node:assert/strict");
const { test } = require("node:test");

test("require('untrace-sdk') gives the same API", () => {
  const sdk = require("untrace-sdk");
  for (const name of ["Untrace", "Span", "wrapOpenAI", "traceparent", "fromTraceparent", "currentSpan", "withSpan"]) {
    assert.equal(typeof sdk[name], "function", name);
  }
  const untrace = new sdk.Untrace({ enabled: false });
  assert.equal(untrace.span("x", () => 1), 1);
  assert.ok(require.resolve("untrace-sdk").includes(`dist${require("node:path").sep}cjs`));
});
