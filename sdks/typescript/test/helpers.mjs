// A small Untrace stand-in for the transport tests: records requests, answers from a script.
import { createServer } from "node:http";
import { gunzipSync } from "node:zlib";

export async function recordingServer(answer = () => ({ status: 202 })) {
  const requests = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      let raw = Buffer.concat(chunks);
      if (req.headers["content-encoding"] === "gzip") raw = gunzipSync(raw);
      const body = raw.length ? JSON.parse(raw.toString("utf8")) : undefined;
      const request = { at: Date.now(), method: req.method, url: req.url, headers: req.headers, body };
      requests.push(request);
      const { status, headers = {}, json } = answer(request, requests.length);
      const payload = json ?? (status === 202 ? { accepted: body.traces.map((s) => s.id), errors: [] } : {});
      res.writeHead(status, { "content-type": "application/json", ...headers });
      res.end(JSON.stringify(payload));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${server.address().port}`;
  return { url, requests, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** A loopback port nothing listens on. */
export async function closedPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}
