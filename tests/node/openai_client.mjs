// Drives the official openai npm client against a base URL and prints what it saw as JSON.
// Usage: node openai_client.mjs <baseURL> <providerKey> [untraceKey] [sessionId]
import OpenAI from "openai";

const [baseURL, apiKey, untraceKey, sessionId] = process.argv.slice(2);
const defaultHeaders = untraceKey ? { "X-Untrace-Key": untraceKey, "X-Untrace-Session-Id": sessionId } : {};
const client = new OpenAI({ baseURL, apiKey, defaultHeaders, maxRetries: 0 });
const messages = [{ role: "user", content: "Say hello" }];

const completion = await client.chat.completions.create({ model: "gpt-4o-mini", messages });
const chunks = [];
const stream = await client.chat.completions.create({
  model: "gpt-4o-mini",
  messages,
  stream: true,
  stream_options: { include_usage: true },
});
for await (const chunk of stream) chunks.push(chunk);

let error = null;
try {
  await client.chat.completions.create({ model: "error-400", messages });
} catch (exc) {
  error = { status: exc.status, body: exc.error };
}
console.log(JSON.stringify({ completion, chunks, error }));
