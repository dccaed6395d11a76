"""The LangChain callback handler against langchain-core's fake models, runnables, tools and retrievers."""

import asyncio
import subprocess
import sys

import pytest

pytest.importorskip("langchain_core")

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool

from untrace_sdk import Untrace
from untrace_sdk.langchain import UntraceCallbackHandler


class Recording(Untrace):
    """A client that keeps ended spans instead of sending them."""

    def __init__(self, **kwargs):
        super().__init__(api_key="ut_test", base_url="http://127.0.0.1:9", enabled=False, **kwargs)
        self.ended = []

    def _enqueue(self, span):
        self.ended.append(span.to_dict())


class NamedFakeChatModel(GenericFakeChatModel):
    """A fake chat model with a model name in its invocation parameters."""

    model_name: str = "fake-gpt-1"


class OpenAIStyleChatModel(FakeListChatModel):
    """A fake chat model reporting usage the OpenAI way, in ``llm_output["token_usage"]``."""

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        result = super()._generate(messages, stop=stop, run_manager=run_manager, **kwargs)
        return ChatResult(
            generations=[
                ChatGeneration(message=g.message, generation_info={"finish_reason": "stop"})
                for g in result.generations
            ],
            llm_output={
                "token_usage": {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14},
                "model_name": "gpt-4o-mini-2024-07-18",
            },
        )


class KeywordRetriever(BaseRetriever):
    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun):
        return [d for d in self.documents if query.lower() in d.page_content.lower()]


@tool
def shout(text: str) -> str:
    """Upper-case the text."""
    return text.upper()


@tool
def explode(text: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot handle {text}")


@pytest.fixture
def client():
    return Recording()


def _by_name(client):
    return {span["name"]: span for span in client.ended}


def test_a_chain_with_a_chat_model_is_a_tree_with_model_messages_and_usage(client):
    model = NamedFakeChatModel(
        messages=iter(
            [
                AIMessage(
                    content="Paris",
                    usage_metadata={"input_tokens": 9, "output_tokens": 2, "total_tokens": 11},
                )
            ]
        )
    )
    prepare = RunnableLambda(
        lambda question: [SystemMessage("Answer briefly."), HumanMessage(question)]
    ).with_config(run_name="prepare")
    chain = (prepare | model | RunnableLambda(lambda m: m.content).with_config(run_name="text")).with_config(
        run_name="qa"
    )
    handler = UntraceCallbackHandler(client)

    assert chain.invoke("Capital of France?", config={"callbacks": [handler]}) == "Paris"

    spans = _by_name(client)
    assert set(spans) == {"qa", "prepare", "NamedFakeChatModel", "text"}
    root, llm = spans["qa"], spans["NamedFakeChatModel"]
    assert root["kind"] == "chain" and "parent_id" not in root
    for name in ("prepare", "NamedFakeChatModel", "text"):
        assert spans[name]["parent_id"] == root["id"]
        assert spans[name]["trace_id"] == root["trace_id"]
    assert spans["prepare"]["kind"] == "chain"
    assert root["request"]["prompt"] == "Capital of France?"
    assert root["response"]["content"] == "Paris"

    assert llm["kind"] == "llm"
    assert llm["model"] == "fake-gpt-1"
    assert llm["request"]["messages"] == [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert llm["response"]["content"] == "Paris"
    assert llm["response"]["messages"] == [{"role": "assistant", "content": "Paris"}]
    assert llm["response"]["usage"] == {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
    assert llm["metadata"]["langchain_run_id"]
    assert handler._spans == {}


def test_usage_and_model_from_llm_output_token_usage(client):
    model = OpenAIStyleChatModel(responses=["Hi there"])
    handler = UntraceCallbackHandler(client)

    model.invoke([HumanMessage("Hello")], config={"callbacks": [handler]})

    (llm,) = client.ended
    assert llm["kind"] == "llm"
    assert "parent_id" not in llm
    assert llm["model"] == "gpt-4o-mini-2024-07-18"
    assert llm["request"]["messages"] == [{"role": "user", "content": "Hello"}]
    assert llm["response"]["content"] == "Hi there"
    assert llm["response"]["finish_reason"] == "stop"
    assert llm["response"]["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}


def test_streaming_records_the_joined_answer_and_time_to_first_token(client):
    model = NamedFakeChatModel(messages=iter([AIMessage(content="one two three")]))
    handler = UntraceCallbackHandler(client)

    chunks = list(model.stream("count", config={"callbacks": [handler]}))

    assert "".join(c.content for c in chunks) == "one two three"
    (llm,) = client.ended
    assert llm["response"]["content"] == "one two three"
    assert llm["request"]["messages"] == [{"role": "user", "content": "count"}]
    assert llm["metrics"]["time_to_first_token_ms"] >= 0


def test_tools_and_retrievers_nest_under_the_chain_that_calls_them(client):
    retriever = KeywordRetriever(
        documents=[
            Document("Untrace routes LLM traces", metadata={"source": "a.md"}, id="d1"),
            Document("Unrelated text", metadata={"source": "b.md"}),
        ]
    )

    def research(query, config):
        documents = retriever.invoke(query, config=config)
        return shout.invoke({"text": documents[0].page_content}, config=config)

    agent = RunnableLambda(research).with_config(run_name="ResearchAgent")
    result = agent.invoke("untrace", config={"callbacks": [UntraceCallbackHandler(client)]})

    assert result == "UNTRACE ROUTES LLM TRACES"
    spans = _by_name(client)
    root, found, tool_span = spans["ResearchAgent"], spans["KeywordRetriever"], spans["shout"]
    assert root["kind"] == "agent"
    assert found["kind"] == "retrieval" and found["parent_id"] == root["id"]
    assert found["request"]["prompt"] == "untrace"
    assert found["response"]["output"] == {
        "documents": [
            {"page_content": "Untrace routes LLM traces", "metadata": {"source": "a.md"}, "id": "d1"}
        ]
    }
    assert tool_span["kind"] == "tool" and tool_span["parent_id"] == root["id"]
    assert tool_span["request"]["input"] == {"text": "Untrace routes LLM traces"}
    assert tool_span["response"]["content"] == "UNTRACE ROUTES LLM TRACES"
    assert {span["trace_id"] for span in client.ended} == {root["trace_id"]}


def test_an_error_in_a_tool_is_recorded_on_its_span_and_re_raised(client):
    chain = RunnableLambda(lambda text, config: explode.invoke({"text": text}, config=config)).with_config(
        run_name="pipeline"
    )

    with pytest.raises(ValueError, match="cannot handle boom"):
        chain.invoke("boom", config={"callbacks": [UntraceCallbackHandler(client)]})

    spans = _by_name(client)
    tool_span, root = spans["explode"], spans["pipeline"]
    assert tool_span["kind"] == "tool" and tool_span["parent_id"] == root["id"]
    assert tool_span["error"]["type"] == "ValueError"
    assert tool_span["error"]["message"] == "cannot handle boom"
    assert "Traceback" in tool_span["error"]["stack"]
    assert root["error"]["type"] == "ValueError"
    assert "response" not in tool_span


def test_a_model_error_is_recorded_on_the_llm_span(client):
    class Broken(FakeListChatModel):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            raise RuntimeError("upstream 503")

    with pytest.raises(RuntimeError):
        Broken(responses=["x"]).invoke("hi", config={"callbacks": [UntraceCallbackHandler(client)]})

    (llm,) = client.ended
    assert llm["kind"] == "llm"
    assert llm["error"] == {"type": "RuntimeError", "message": "upstream 503", "stack": llm["error"]["stack"]}


def test_runs_nest_under_an_open_sdk_span(client):
    model = FakeListChatModel(responses=["ok"])
    chain = (RunnableLambda(lambda x: x) | model).with_config(run_name="inner")

    with client.span("request", "span", user_id="u-7") as outer:
        chain.invoke("hello", config={"callbacks": [UntraceCallbackHandler(client)]})

    spans = _by_name(client)
    assert spans["inner"]["parent_id"] == outer.id
    assert spans["inner"]["trace_id"] == outer.trace_id
    assert spans["inner"]["user_id"] == "u-7"
    assert spans["FakeListChatModel"]["parent_id"] == spans["inner"]["id"]
    assert spans["FakeListChatModel"]["trace_id"] == outer.trace_id


def test_async_runs_build_the_same_tree(client):
    model = NamedFakeChatModel(messages=iter([AIMessage(content="async answer")]))

    async def main():
        async def step(value):
            return await model.ainvoke(value)

        chain = RunnableLambda(step).with_config(run_name="async-chain")
        with client.span("job", "span") as outer:
            await chain.ainvoke("q", config={"callbacks": [UntraceCallbackHandler(client)]})
        return outer

    outer = asyncio.run(main())
    spans = _by_name(client)
    assert spans["async-chain"]["parent_id"] == outer.id
    assert spans["NamedFakeChatModel"]["parent_id"] == spans["async-chain"]["id"]
    assert spans["NamedFakeChatModel"]["response"]["content"] == "async answer"


def test_capture_content_false_keeps_structure_without_inputs_or_outputs(client):
    model = OpenAIStyleChatModel(responses=["secret"])
    model.invoke("private", config={"callbacks": [UntraceCallbackHandler(client, capture_content=False)]})
    (llm,) = client.ended
    assert "messages" not in llm.get("request", {})
    assert "content" not in llm["response"]
    assert llm["response"]["usage"]["total_tokens"] == 14


def test_the_default_client_is_used_and_spans_are_sent(collector):
    client = Untrace(api_key="ut_test_key", base_url=collector.url, flush_interval=0.05)
    import untrace_sdk._client as client_module

    previous, client_module._default = client_module._default, client
    try:
        chain = (RunnableLambda(lambda x: x) | FakeListChatModel(responses=["sent"])).with_config(
            run_name="sent-chain"
        )
        chain.invoke("hi", config={"callbacks": [UntraceCallbackHandler()]})
        assert client.flush(5)
    finally:
        client_module._default = previous
        client.shutdown(1)
    spans = {span["name"]: span for span in collector.spans}
    assert spans["FakeListChatModel"]["parent_id"] == spans["sent-chain"]["id"]
    assert spans["FakeListChatModel"]["response"]["content"] == "sent"
    assert collector.requests[0]["headers"]["X-Untrace-Key"] == "ut_test_key"


def test_importing_the_sdk_does_not_import_langchain():
    code = "import sys, untrace_sdk; print(any(m.startswith('langchain') for m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
