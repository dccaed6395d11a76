import { getDefaultClient, type Untrace } from "./client.js";
import { currentSpan } from "./context.js";
import { nowMs } from "./ids.js";
import type { Span, SpanKind } from "./span.js";

export interface WrapOpenAIOptions {
  /** The client spans go to; defaults to the current span's client, then the first `Untrace` created. */
  untrace?: Untrace;
  /** Provider name recorded on the spans. Default "openai". */
  provider?: string;
}

type AnyFn = (...args: unknown[]) => unknown;
type Params = Record<string, unknown>;

const WRAPPED = Symbol.for("untrace.wrapped");

/**
 * Trace calls made with an `openai` client: `chat.completions.create`
 * (streaming too), `embeddings.create` and `responses.create`. Each call
 * becomes a child span of the current span. The client is patched in place
 * and returned; wrapping twice does nothing. The wrapped methods return a
 * plain Promise of what the original returns.
 */
export function wrapOpenAI<T extends object>(client: T, options: WrapOpenAIOptions = {}): T {
  const c = client as Record<string, any>;
  if (c[WRAPPED as unknown as string]) return client;
  const provider = options.provider ?? "openai";
  patch(c.chat?.completions, "create", "openai.chat.completions.create", "llm", chatHandler, provider, options);
  patch(c.embeddings, "create", "openai.embeddings.create", "embedding", embeddingsHandler, provider, options);
  patch(c.responses, "create", "openai.responses.create", "llm", responsesHandler, provider, options);
  Object.defineProperty(c, WRAPPED, { value: true, enumerable: false });
  return client;
}

interface Handler {
  request(span: Span, params: Params): void;
  response(span: Span, result: any): void;
  stream: StreamRecorder | undefined;
}

interface StreamRecorder {
  start(): StreamState;
}

interface StreamState {
  chunk(span: Span, chunk: any): boolean; // true when the chunk carries output (for TTFT)
  finish(span: Span): void;
}

function resolveClient(options: WrapOpenAIOptions): Untrace | undefined {
  if (options.untrace) return options.untrace;
  const parent = currentSpan();
  const sink = parent ? (parent as unknown as { sink: unknown }).sink : undefined;
  if (sink && typeof (sink as Untrace).startSpan === "function") return sink as Untrace;
  return getDefaultClient();
}

function patch(
  target: Record<string, unknown> | undefined,
  method: string,
  name: string,
  kind: SpanKind,
  handler: Handler,
  provider: string,
  options: WrapOpenAIOptions,
): void {
  if (!target || typeof target[method] !== "function") return;
  const original = (target[method] as AnyFn).bind(target);
  const wrapped = async function (this: unknown, ...args: unknown[]): Promise<unknown> {
    const untrace = resolveClient(options);
    if (!untrace) return original(...args);
    const params = (args[0] && typeof args[0] === "object" ? args[0] : {}) as Params;
    let span: Span;
    try {
      span = untrace.startSpan(name, { kind, provider });
      if (typeof params.model === "string") span.setModel(params.model);
      handler.request(span, params);
    } catch {
      return original(...args);
    }
    let result: any;
    try {
      result = await original(...args);
    } catch (error) {
      span.recordError(error);
      span.end();
      throw error;
    }
    try {
      if (params.stream === true && handler.stream && result && typeof result[Symbol.asyncIterator] === "function") {
        return traceStream(result, span, handler.stream);
      }
      handler.response(span, result);
    } catch {
      // a response shape we do not know: keep what was recorded
    }
    span.end();
    return result;
  };
  target[method] = wrapped;
}

function traceStream(stream: any, span: Span, recorder: StreamRecorder): any {
  const started = span.startTime;
  let iterated = false;
  const iterate = async function* (): AsyncGenerator<unknown> {
    const state = recorder.start();
    let first = true;
    try {
      for await (const chunk of stream as AsyncIterable<unknown>) {
        try {
          if (state.chunk(span, chunk) && first) {
            first = false;
            span.setMetrics({ time_to_first_token_ms: nowMs() - started });
          }
        } catch {
          // unknown chunk shape
        }
        yield chunk;
      }
    } catch (error) {
      span.recordError(error);
      throw error;
    } finally {
      try {
        state.finish(span);
      } catch {
        // ignore
      }
      span.end();
    }
  };
  return new Proxy(stream, {
    get(target, property, receiver) {
      if (property === Symbol.asyncIterator) {
        return () => {
          if (iterated) return target[Symbol.asyncIterator]();
          iterated = true;
          return iterate();
        };
      }
      const value = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

function parameters(params: Params, omit: string[]): Params {
  const out: Params = {};
  for (const [key, value] of Object.entries(params)) {
    if (!omit.includes(key) && value !== undefined) out[key] = value;
  }
  return out;
}

const chatHandler: Handler = {
  request(span, params) {
    if (Array.isArray(params.messages)) span.setInput(params.messages);
    const rest = parameters(params, ["messages", "model"]);
    if (Object.keys(rest).length) span.setParameters(rest);
  },
  response(span, result) {
    if (typeof result?.model === "string") span.setModel(result.model);
    const choice = result?.choices?.[0];
    const message = choice?.message;
    if (message) {
      if (typeof message.content === "string") span.setOutput(message.content);
      if (message.tool_calls?.length || typeof message.content !== "string") span.setOutput([message]);
    }
    span.setFinishReason(choice?.finish_reason);
    if (result?.usage) span.setUsage(result.usage);
    if (typeof result?.id === "string") span.setAttribute("response_id", result.id);
  },
  stream: {
    start() {
      let content = "";
      let sawContent = false;
      let finish: string | undefined;
      let model: string | undefined;
      let id: string | undefined;
      let usage: Record<string, unknown> | undefined;
      const tools: { id?: string; type?: string; function: { name: string; arguments: string } }[] = [];
      return {
        chunk(_span, chunk) {
          if (typeof chunk?.model === "string") model = chunk.model;
          if (typeof chunk?.id === "string") id = chunk.id;
          if (chunk?.usage) usage = chunk.usage;
          let output = false;
          for (const choice of chunk?.choices ?? []) {
            if ((choice.index ?? 0) !== 0) continue;
            const delta = choice.delta ?? {};
            if (typeof delta.content === "string" && delta.content) {
              content += delta.content;
              sawContent = true;
              output = true;
            }
            for (const call of delta.tool_calls ?? []) {
              const slot = (tools[call.index ?? 0] ??= { function: { name: "", arguments: "" } });
              if (call.id) slot.id = call.id;
              if (call.type) slot.type = call.type;
              if (call.function?.name) slot.function.name += call.function.name;
              if (call.function?.arguments) slot.function.arguments += call.function.arguments;
              output = true;
            }
            if (choice.finish_reason) finish = choice.finish_reason;
          }
          return output;
        },
        finish(span) {
          if (model) span.setModel(model);
          if (sawContent) span.setOutput(content);
          if (tools.length) span.setOutput([{ role: "assistant", content: sawContent ? content : null, tool_calls: tools }]);
          span.setFinishReason(finish);
          if (usage) span.setUsage(usage);
          if (id) span.setAttribute("response_id", id);
        },
      };
    },
  },
};

const embeddingsHandler: Handler = {
  request(span, params) {
    if (params.input !== undefined) span.setInput(params.input);
    const rest = parameters(params, ["input", "model"]);
    if (Object.keys(rest).length) span.setParameters(rest);
  },
  response(span, result) {
    if (typeof result?.model === "string") span.setModel(result.model);
    if (result?.usage) span.setUsage({ prompt_tokens: result.usage.prompt_tokens, completion_tokens: 0, total_tokens: result.usage.total_tokens });
    if (Array.isArray(result?.data)) {
      span.setOutput({ embeddings: result.data.length, dimensions: result.data[0]?.embedding?.length });
    }
  },
  stream: undefined,
};

function responsesOutput(span: Span, result: any): void {
  if (typeof result?.model === "string") span.setModel(result.model);
  if (typeof result?.output_text === "string" && result.output_text) span.setOutput(result.output_text);
  else if (Array.isArray(result?.output)) {
    const text = result.output
      .flatMap((item: any) => (Array.isArray(item?.content) ? item.content : []))
      .filter((part: any) => part?.type === "output_text" && typeof part.text === "string")
      .map((part: any) => part.text)
      .join("");
    if (text) span.setOutput(text);
    else if (result.output.length) span.setOutput(result.output);
  }
  if (typeof result?.status === "string" && result.status !== "completed") span.setFinishReason(result.status);
  else if (result?.status === "completed") span.setFinishReason("stop");
  if (result?.usage) span.setUsage(result.usage);
  if (typeof result?.id === "string") span.setAttribute("response_id", result.id);
  if (result?.error) span.recordError(Object.assign(new Error(String(result.error.message ?? "response failed")), { name: String(result.error.code ?? "ResponseError") }));
}

const responsesHandler: Handler = {
  request(span, params) {
    const input = params.input;
    if (typeof input === "string") span.setInput(input);
    else if (Array.isArray(input)) span.setInput(input);
    if (typeof params.instructions === "string") span.setAttribute("instructions", params.instructions);
    const rest = parameters(params, ["input", "model", "instructions"]);
    if (Object.keys(rest).length) span.setParameters(rest);
  },
  response: responsesOutput,
  stream: {
    start() {
      let text = "";
      let final: any;
      return {
        chunk(_span, event) {
          if (event?.type === "response.output_text.delta" && typeof event.delta === "string") {
            text += event.delta;
            return event.delta.length > 0;
          }
          if ((event?.type === "response.completed" || event?.type === "response.failed" || event?.type === "response.incomplete") && event.response) {
            final = event.response;
          }
          return false;
        },
        finish(span) {
          if (final) responsesOutput(span, final);
          if (text && !(typeof final?.output_text === "string" && final.output_text)) span.setOutput(text);
        },
      };
    },
  },
};
