"""Transformation pipelines: compilation, each step's behaviour, copy-on-write, errors."""

from __future__ import annotations

import copy
import dataclasses
import sys
import types

import orjson
import pytest

from apps.routing.context import TransformContext, TransformReport
from apps.routing.errors import ConfigError
from apps.routing.paths import delete_path, parse_path, set_path
from apps.routing.transforms import (
    DERIVED_METRICS,
    EMPTY,
    MAX_STEPS,
    STEP_TYPES,
    Pipeline,
    compile_pipeline,
    truncate_text,
)

CTX = TransformContext(
    hash_key=b"k" * 32,
    values={
        "project": {"id": "prj_1", "name": "Search"},
        "api_key": {"id": "key_1", "name": "prod ingest"},
        "environment": "production",
    },
)


def make_span(**overrides):
    span = {
        "id": "span_1",
        "trace_id": "trace_1",
        "parent_id": None,
        "session_id": "sess_1",
        "user_id": "user_1",
        "name": "chat",
        "kind": "llm",
        "start_time": 1_700_000_000_000,
        "end_time": 1_700_000_000_800,
        "provider": "openai",
        "model": "gpt-4o",
        "status": "ok",
        "request": {
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is the capital of France?", "name": "alice"},
                {"role": "assistant", "content": "Paris."},
                {"role": "user", "content": "And of Italy?", "name": "alice"},
            ],
            "parameters": {"temperature": 0.2},
        },
        "response": {
            "content": "Rome.",
            "usage": {"prompt_tokens": 40, "completion_tokens": 10, "total_tokens": 50},
            "finish_reason": "stop",
        },
        "metadata": {
            "environment": "production",
            "version": "1.2.0",
            "tags": {"team": "core"},
            "customer": "acme",
        },
        "metrics": {"latency_ms": 800, "estimated_cost": 0.0005},
        "error": None,
        "attributes": {"gen_ai.system": "openai"},
    }
    span.update(overrides)
    return span


def run(steps, span, ctx=CTX):
    """Apply `steps` and check the input was left exactly as it was."""
    snapshot = copy.deepcopy(span)
    out, report = compile_pipeline(steps, where="transformations").apply(span, ctx)
    assert span == snapshot, "a step mutated its input"
    return out, report


def config_error(steps, where="transformations"):
    with pytest.raises(ConfigError) as caught:
        compile_pipeline(steps, where=where)
    return caught.value


# --- the pipeline -------------------------------------------------------------------------------


def test_empty_pipeline_returns_the_span_itself_and_an_empty_report():
    span = make_span()
    for steps in ([], None):
        pipeline = compile_pipeline(steps, where="transformations")
        assert pipeline is EMPTY
        assert not pipeline
        out, report = pipeline.apply(span, CTX)
        assert out is span
        assert report.as_dict() == {"redactions": {}, "truncated": [], "changed": []}


def test_compiled_pipeline_is_truthy_and_immutable():
    pipeline = compile_pipeline([{"type": "drop", "path": "metadata.customer"}], where="transformations")
    assert pipeline
    assert isinstance(pipeline, Pipeline)
    assert len(pipeline.steps) == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        pipeline.steps = ()  # type: ignore[misc]


def test_steps_run_in_order_and_see_earlier_output():
    out, report = run(
        [
            {"type": "set", "path": "metadata.stage", "value": "draft"},
            {"type": "jmespath", "path": "metadata.copied", "expression": "metadata.stage"},
            {"type": "rename", "from": "metadata.stage", "to": "metadata.phase"},
            {"type": "truncate", "path": "metadata.phase", "max_length": 2},
            {"type": "jmespath", "path": "metadata.phase_len", "expression": "length(metadata.phase)"},
        ],
        make_span(),
    )
    assert out["metadata"]["copied"] == "draft"
    assert "stage" not in out["metadata"]
    assert out["metadata"]["phase"] == "dr\u2026[truncated 3 chars]"
    assert out["metadata"]["phase_len"] == len("dr\u2026[truncated 3 chars]")
    assert report.changed == [
        "metadata.stage",
        "metadata.copied",
        "metadata.stage",
        "metadata.phase",
        "metadata.phase_len",
    ]
    assert report.truncated == ["metadata.phase"]


def test_one_span_feeds_several_pipelines_without_interference():
    span = make_span()
    snapshot = copy.deepcopy(span)
    first = compile_pipeline([{"type": "drop", "path": "request.messages.*.name"}], where="a")
    second = compile_pipeline([{"type": "set", "path": "request.messages.1.name", "value": "bob"}], where="b")
    out_a, _ = first.apply(span, CTX)
    out_b, _ = second.apply(span, CTX)
    assert span == snapshot
    assert "name" not in out_a["request"]["messages"][1]
    assert out_b["request"]["messages"][1]["name"] == "bob"
    assert out_b["request"]["messages"][3]["name"] == "alice"


def test_unchanged_subtrees_are_shared_and_no_op_steps_return_the_same_object():
    span = make_span()
    out, _ = run([{"type": "set", "path": "metadata.team", "value": "search"}], span)
    assert out is not span
    assert out["request"] is span["request"]
    assert out["response"] is span["response"]
    assert out["metadata"]["tags"] is span["metadata"]["tags"]

    no_ops = [
        {"type": "set", "path": "model", "value": "gpt-4o"},
        {"type": "set", "path": "metadata.tags.*", "value": "core"},
        {"type": "set", "path": "metadata.tags.team", "from": "span.metadata.tags.team"},
        {"type": "set", "path": "metadata.x", "from": "span.metadata.absent"},
        {"type": "rename", "from": "metadata.absent", "to": "metadata.other"},
        {"type": "drop", "path": "metadata.absent"},
        {"type": "drop", "path": "request.messages.*.absent"},
        {"type": "truncate", "path": "request.messages.*.content", "max_length": 1000},
        {"type": "truncate", "path": "request.messages", "max_length": 10},
        {"type": "limit_size", "max_bytes": 65536},
        {"type": "enrich", "metadata": {"customer": "acme", "tags": {"team": "core"}}},
        {"type": "enrich", "derived": ["tokens_per_second"], "metadata": {"version": "1.2.0"}},
        {"type": "jmespath", "path": "metadata.nothing", "expression": "metadata.absent"},
        {"type": "jmespath", "path": "model", "expression": "model"},
    ]
    span["metrics"]["tokens_per_second"] = 12.5
    out, report = run(no_ops, span)
    assert out is span
    assert report.as_dict() == {"redactions": {}, "truncated": [], "changed": []}


# --- set ----------------------------------------------------------------------------------------


def test_set_static_value_creates_missing_objects():
    out, report = run(
        [{"type": "set", "path": "metadata.owner.team", "value": {"name": "search", "size": 4}}],
        make_span(metadata=None),
    )
    assert out["metadata"] == {"owner": {"team": {"name": "search", "size": 4}}}
    assert report.changed == ["metadata.owner.team"]


def test_set_value_is_copied_at_compile_time():
    value = {"labels": ["a"]}
    pipeline = compile_pipeline([{"type": "set", "path": "metadata.extra", "value": value}], where="t")
    value["labels"].append("b")
    out, _ = pipeline.apply(make_span(), CTX)
    assert out["metadata"]["extra"] == {"labels": ["a"]}


def test_set_from_context_and_from_span():
    out, report = run(
        [
            {"type": "set", "path": "metadata.key_name", "from": "context.api_key.name"},
            {"type": "set", "path": "metadata.project", "from": "context.project"},
            {"type": "set", "path": "metadata.deployment", "from": "context.environment"},
            {"type": "set", "path": "attributes.llm_model", "from": "span.model"},
            {"type": "set", "path": "metadata.unknown", "from": "context.api_key.missing"},
        ],
        make_span(),
    )
    assert out["metadata"]["key_name"] == "prod ingest"
    assert out["metadata"]["project"] == {"id": "prj_1", "name": "Search"}
    assert out["metadata"]["deployment"] == "production"
    assert out["attributes"]["llm_model"] == "gpt-4o"
    assert "unknown" not in out["metadata"]
    assert report.changed == [
        "metadata.key_name",
        "metadata.project",
        "metadata.deployment",
        "attributes.llm_model",
    ]


def test_set_with_wildcard_writes_every_item():
    out, report = run([{"type": "set", "path": "request.messages.*.seen", "value": True}], make_span())
    assert [m["seen"] for m in out["request"]["messages"]] == [True] * 4
    assert report.changed == ["request.messages.*.seen"]


# --- rename / move ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rename", "move"])
def test_rename_and_move_remove_the_source_and_write_the_target(kind):
    span = make_span()
    out, report = run([{"type": kind, "from": "metadata.customer", "to": "metadata.tenant"}], span)
    assert out["metadata"]["tenant"] == "acme"
    assert "customer" not in out["metadata"]
    assert report.changed == ["metadata.customer", "metadata.tenant"]
    assert out["request"] is span["request"]


def test_move_across_parents_and_into_missing_objects():
    out, _ = run(
        [{"type": "move", "from": "request.parameters", "to": "metadata.llm.parameters"}], make_span()
    )
    assert "parameters" not in out["request"]
    assert out["metadata"]["llm"] == {"parameters": {"temperature": 0.2}}


def test_move_keeps_the_span_when_the_target_cannot_be_written():
    span = make_span()
    out, report = run([{"type": "move", "from": "metadata.customer", "to": "model.customer"}], span)
    assert out is span
    assert report.changed == []


# --- drop ---------------------------------------------------------------------------------------


def test_drop_removes_keys_with_wildcards():
    out, report = run(
        [
            {"type": "drop", "path": "request.messages.*.name"},
            {"type": "drop", "path": "metadata.tags"},
            {"type": "drop", "path": "attributes.gen_ai.system"},
        ],
        make_span(),
    )
    assert all("name" not in m for m in out["request"]["messages"])
    assert len(out["request"]["messages"]) == 4
    assert "tags" not in out["metadata"]
    assert out["attributes"] == {}
    assert report.changed == ["request.messages.*.name", "metadata.tags", "attributes.gen_ai.system"]


def test_drop_every_item_and_every_value():
    out, report = run(
        [{"type": "drop", "path": "request.messages.*"}, {"type": "drop", "path": "metadata.tags.*"}],
        make_span(),
    )
    assert out["request"]["messages"] == []
    assert out["metadata"]["tags"] == {}
    assert report.changed == ["request.messages.*", "metadata.tags.*"]


@pytest.mark.parametrize(
    "path",
    [
        "request.messages.*.name",
        "request.messages.*",
        "request.messages.*.content",
        "request.*.temperature",
        "metadata.tags.*",
        "attributes.gen_ai.system",
        "request.messages.9.name",
        "response.usage.*",
    ],
)
def test_wildcard_drop_and_set_agree_with_paths(path):
    span = make_span()
    parsed = parse_path(path, where="p")
    dropped, _ = run([{"type": "drop", "path": path}], span)
    assert dropped == delete_path(span, parsed)
    written, _ = run([{"type": "set", "path": path, "value": 0}], span)
    assert written == set_path(span, parsed, 0)


def test_drop_a_list_item():
    out, _ = run([{"type": "drop", "path": "request.messages.0"}], make_span())
    assert [m["role"] for m in out["request"]["messages"]] == ["user", "assistant", "user"]


# --- truncate -----------------------------------------------------------------------------------


def test_truncate_marks_strings_and_reports_concrete_paths():
    span = make_span()
    span["request"]["messages"][1]["content"] = "x" * 30
    span["request"]["messages"][3]["content"] = "y" * 12
    out, report = run([{"type": "truncate", "path": "request.messages.*.content", "max_length": 10}], span)
    contents = [m["content"] for m in out["request"]["messages"]]
    assert contents[1] == "x" * 10 + "\u2026[truncated 20 chars]"
    assert contents[3] == "y" * 10 + "\u2026[truncated 2 chars]"
    assert contents[2] == "Paris."
    assert report.truncated == [
        "request.messages.0.content",
        "request.messages.1.content",
        "request.messages.3.content",
    ]
    assert out["request"]["messages"][2] is span["request"]["messages"][2]


def test_truncate_wildcard_over_object_values_and_dotted_keys():
    span = make_span(attributes={"gen_ai.prompt": "p" * 50, "gen_ai.system": "openai"})
    span["metadata"]["tags"] = {"team": "core", "note": "n" * 40}
    out, report = run(
        [
            {"type": "truncate", "path": "metadata.tags.*", "max_length": 8},
            {"type": "truncate", "path": "attributes.gen_ai.prompt", "max_length": 8},
        ],
        span,
    )
    assert out["metadata"]["tags"] == {"team": "core", "note": "nnnnnnnn\u2026[truncated 32 chars]"}
    assert out["attributes"]["gen_ai.prompt"] == "pppppppp\u2026[truncated 42 chars]"
    assert report.truncated == ["metadata.tags.note", "attributes.gen_ai.prompt"]


def test_truncate_nested_wildcards_over_content_parts():
    span = make_span()
    span["request"]["messages"][1]["content"] = [
        {"type": "text", "text": "t" * 30},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    out, report = run(
        [{"type": "truncate", "path": "request.messages.*.content.*.text", "max_length": 5}], span
    )
    assert out["request"]["messages"][1]["content"][0]["text"] == "ttttt\u2026[truncated 25 chars]"
    assert out["request"]["messages"][1]["content"][1] is span["request"]["messages"][1]["content"][1]
    assert out["request"]["messages"][0] is span["request"]["messages"][0]
    assert report.truncated == ["request.messages.1.content.0.text"]


def test_truncate_lists_keep_their_first_items():
    span = make_span()
    out, report = run([{"type": "truncate", "path": "request.messages", "max_length": 2}], span)
    assert out["request"]["messages"] == span["request"]["messages"][:2]
    assert report.truncated == ["request.messages"]


def test_truncate_leaves_other_types_and_zero_keeps_only_the_marker():
    out, report = run(
        [
            {"type": "truncate", "path": "metrics.latency_ms", "max_length": 1},
            {"type": "truncate", "path": "response.content", "max_length": 0},
        ],
        make_span(),
    )
    assert out["metrics"]["latency_ms"] == 800
    assert out["response"]["content"] == "\u2026[truncated 5 chars]"
    assert report.truncated == ["response.content"]


def test_truncation_is_idempotent_and_counts_cumulatively():
    text = "a" * 100
    once = truncate_text(text, 10)
    assert once == "a" * 10 + "\u2026[truncated 90 chars]"
    assert truncate_text(once, 10) is once
    assert truncate_text(once, 20) is once
    assert truncate_text(once, 4) == "aaaa\u2026[truncated 96 chars]"
    assert truncate_text("short", 10) == "short"


# --- limit_size ---------------------------------------------------------------------------------


def big_span(total_bytes=200_000, messages=40):
    span = make_span()
    per_message = total_bytes // messages
    span["request"]["messages"] = [
        {
            "role": "user" if i % 2 == 0 else "assistant",
            "content": f"message {i} " + "lorem ipsum " * (per_message // 12),
        }
        for i in range(messages)
    ]
    return span


def test_limit_size_brings_a_200kb_span_under_max_bytes():
    span = big_span()
    assert len(orjson.dumps(span)) > 200_000
    out, report = run([{"type": "limit_size", "max_bytes": 65536}], span)
    size = len(orjson.dumps(out))
    assert size <= 65536
    assert size > 60_000, "cuts only as much as needed"
    assert out["id"] == "span_1"
    assert out["trace_id"] == "trace_1"
    assert len(out["request"]["messages"]) == 40
    assert report.truncated
    for path in report.truncated:
        assert path.startswith("request.messages.")
        index = int(path.split(".")[2])
        assert out["request"]["messages"][index]["content"].endswith(" chars]")
    assert out["response"] is span["response"]


def test_limit_size_is_byte_accurate_for_multibyte_text():
    span = make_span()
    span["response"]["content"] = "\u6f22\u5b57" * 50_000  # 300 KB of UTF-8
    out, report = run([{"type": "limit_size", "max_bytes": 20_000}], span)
    size = len(orjson.dumps(out))
    assert 19_000 < size <= 20_000
    assert report.truncated == ["response.content"]


def test_limit_size_truncates_metadata_after_request_and_response():
    span = make_span()
    span["metadata"]["notes"] = "n" * 30_000
    span["request"]["messages"][0]["content"] = "s" * 3_000
    out, report = run([{"type": "limit_size", "max_bytes": 8_000}], span)
    assert len(orjson.dumps(out)) <= 8_000
    assert report.truncated == ["request.messages.0.content", "metadata.notes"]
    assert len(out["request"]["messages"][0]["content"]) < 100


def test_limit_size_cuts_the_first_of_equal_strings_in_document_order():
    span = make_span()
    span["request"]["messages"][1]["content"] = "a" * 5_000
    span["request"]["messages"][2]["content"] = "b" * 5_000
    size = len(orjson.dumps(span))
    out, report = run([{"type": "limit_size", "max_bytes": size - 1_000}], span)
    assert report.truncated == ["request.messages.1.content"]
    assert out["request"]["messages"][2] is span["request"]["messages"][2]
    assert size - 1_100 < len(orjson.dumps(out)) <= size - 1_000


def test_limit_size_drops_middle_messages_when_cutting_strings_is_not_enough():
    span = make_span()
    span["request"]["messages"] = [
        {"role": "user", "content": f"short message number {i}"} for i in range(3000)
    ]
    out, report = run([{"type": "limit_size", "max_bytes": 16_384}], span)
    assert len(orjson.dumps(out)) <= 16_384
    messages = out["request"]["messages"]
    assert messages[0] == span["request"]["messages"][0]
    assert messages[-1] == span["request"]["messages"][-1]
    markers = [m for m in messages if m["content"].startswith("\u2026[truncated ")]
    assert len(markers) == 1
    assert markers[0]["role"] == "system"
    dropped = int(markers[0]["content"].split()[1])
    assert dropped == 3000 - (len(messages) - 1)
    kept = [m["content"] for m in messages if m is not markers[0]]
    index = messages.index(markers[0])
    assert kept == [m["content"] for m in span["request"]["messages"][:index]] + [
        m["content"] for m in span["request"]["messages"][index + dropped :]
    ]
    assert report.truncated == ["request.messages"]


def test_limit_size_under_the_limit_returns_the_same_span():
    span = make_span()
    out, report = run([{"type": "limit_size", "max_bytes": 4096}], span)
    assert out is span
    assert report.truncated == []


# --- enrich -------------------------------------------------------------------------------------


def test_enrich_deep_merges_metadata_and_overwrites_existing_keys():
    span = make_span()
    out, report = run(
        [{"type": "enrich", "metadata": {"team": "search", "customer": "globex", "tags": {"tier": "gold"}}}],
        span,
    )
    assert out["metadata"] == {
        "environment": "production",
        "version": "1.2.0",
        "tags": {"team": "core", "tier": "gold"},
        "customer": "globex",
        "team": "search",
    }
    assert sorted(report.changed) == ["metadata.customer", "metadata.tags.tier", "metadata.team"]
    assert span["metadata"]["tags"] == {"team": "core"}


def test_enrich_creates_metadata_when_missing():
    out, _ = run([{"type": "enrich", "metadata": {"team": "search"}}], make_span(metadata=None))
    assert out["metadata"] == {"team": "search"}


def test_enrich_derived_metrics():
    out, report = run([{"type": "enrich", "derived": list(DERIVED_METRICS)}], make_span())
    metrics = out["metrics"]
    assert metrics["cost_per_1k_tokens"] == pytest.approx(0.0005 * 1000 / 50)
    assert metrics["tokens_per_second"] == pytest.approx(10 * 1000 / 800)
    assert metrics["output_input_ratio"] == pytest.approx(10 / 40)
    assert metrics["latency_ms"] == 800
    assert sorted(report.changed) == sorted(f"metrics.{name}" for name in DERIVED_METRICS)


def test_enrich_derived_skips_missing_inputs_and_keeps_existing_values():
    span = make_span(metrics={"tokens_per_second": 99.0})
    span["response"]["usage"] = {"prompt_tokens": 0, "completion_tokens": 7}
    out, report = run([{"type": "enrich", "derived": list(DERIVED_METRICS)}], span)
    assert out is span  # no latency, no cost, zero prompt tokens; tokens_per_second already there
    assert report.changed == []

    span = make_span(metrics=None, response=None)
    out, _ = run([{"type": "enrich", "derived": ["tokens_per_second"]}], span)
    assert out is span


def test_enrich_cost_per_1k_falls_back_to_prompt_plus_completion():
    span = make_span()
    span["response"]["usage"] = {"prompt_tokens": 30, "completion_tokens": 20}
    out, _ = run([{"type": "enrich", "derived": ["cost_per_1k_tokens"]}], span)
    assert out["metrics"]["cost_per_1k_tokens"] == pytest.approx(0.0005 * 1000 / 50)


# --- jmespath -----------------------------------------------------------------------------------


def test_jmespath_first_user_message():
    out, report = run(
        [
            {
                "type": "jmespath",
                "path": "metadata.first_user_message",
                "expression": "request.messages[?role=='user'] | [0].content",
            }
        ],
        make_span(),
    )
    assert out["metadata"]["first_user_message"] == "What is the capital of France?"
    assert report.changed == ["metadata.first_user_message"]


def test_jmespath_sees_the_context_under_context():
    out, _ = run(
        [
            {
                "type": "jmespath",
                "path": "metadata.owner",
                "expression": "join('/', [context.project.name, model])",
            },
            {"type": "jmespath", "path": "metadata.key", "expression": "context.api_key.id"},
        ],
        make_span(),
    )
    assert out["metadata"]["owner"] == "Search/gpt-4o"
    assert out["metadata"]["key"] == "key_1"
    assert "context" not in out


def test_jmespath_a_span_context_key_wins_over_the_context():
    span = make_span(context={"project": {"name": "from the span"}})
    out, _ = run([{"type": "jmespath", "path": "metadata.p", "expression": "context.project.name"}], span)
    assert out["metadata"]["p"] == "from the span"


def test_jmespath_null_result_leaves_the_path_unless_set_null():
    span = make_span()
    steps = [{"type": "jmespath", "path": "metadata.customer", "expression": "metadata.absent"}]
    out, _ = run(steps, span)
    assert out is span
    out, report = run([{**steps[0], "set_null": True}], span)
    assert out["metadata"]["customer"] is None
    assert report.changed == ["metadata.customer"]


def test_jmespath_evaluation_error_leaves_the_span_unchanged():
    span = make_span()
    out, report = run(
        [{"type": "jmespath", "path": "metadata.n", "expression": "length(metrics.latency_ms)"}], span
    )
    assert out is span
    assert report.changed == []


def test_jmespath_computed_values():
    out, _ = run(
        [
            {"type": "jmespath", "path": "metadata.turns", "expression": "length(request.messages)"},
            {"type": "jmespath", "path": "metadata.roles", "expression": "request.messages[*].role"},
            {
                "type": "jmespath",
                "path": "metadata.summary",
                "expression": "{model: model, tokens: response.usage.total_tokens, env: context.environment}",
            },
        ],
        make_span(),
    )
    assert out["metadata"]["turns"] == 4
    assert out["metadata"]["roles"] == ["system", "user", "assistant", "user"]
    assert out["metadata"]["summary"] == {"model": "gpt-4o", "tokens": 50, "env": "production"}


# --- redact_pii ---------------------------------------------------------------------------------


def test_redact_pii_is_delegated_to_the_pii_module(monkeypatch):
    calls = []

    def step(span, ctx, report):
        report.redactions["email"] += 1
        return {**span, "redacted": True}

    def compile_redactor(spec, *, where):
        calls.append((spec, where))
        return step

    fake = types.ModuleType("apps.routing.pii")
    fake.compile_redactor = compile_redactor
    monkeypatch.setitem(sys.modules, "apps.routing.pii", fake)
    spec = {"type": "redact_pii", "entities": ["email"]}
    pipeline = compile_pipeline(
        [{"type": "drop", "path": "metadata.x"}, spec], where="rules[1].actions.transformations"
    )
    assert calls == [(spec, "rules[1].actions.transformations[1]")]
    assert pipeline.steps[1] is step
    out, report = pipeline.apply(make_span(), CTX)
    assert out["redacted"] is True
    assert report.redactions == {"email": 1}


def test_redact_pii_with_the_real_module():
    pytest.importorskip("apps.routing.pii")
    span = make_span()
    span["request"]["messages"][1]["content"] = "Write to jane.doe@example.com please"
    out, report = run(
        [
            {"type": "redact_pii", "detectors": ["email"]},
            {"type": "jmespath", "path": "metadata.asked", "expression": "request.messages[1].content"},
        ],
        span,
    )
    assert "jane.doe@example.com" not in out["request"]["messages"][1]["content"]
    assert out["metadata"]["asked"] == out["request"]["messages"][1]["content"]
    assert report.redactions["email"] == 1


def test_redact_pii_errors_come_from_the_pii_module_at_the_steps_location():
    pytest.importorskip("apps.routing.pii")
    with pytest.raises(ConfigError) as caught:
        compile_pipeline(
            [{"type": "drop", "path": "a"}, {"type": "redact_pii", "no_such_option": 1}],
            where="transformations",
        )
    assert caught.value.field.startswith("transformations[1]")


# --- invalid configurations ---------------------------------------------------------------------

KNOWN_TYPES = ", ".join(STEP_TYPES)
KNOWN_DERIVED = "cost_per_1k_tokens, tokens_per_second, output_input_ratio"

INVALID = [
    ({"type": "drop"}, "transformations", "must be a list of transformation steps"),
    ("drop", "transformations", "must be a list of transformation steps"),
    ([{"type": "drop", "path": "x"}] * (MAX_STEPS + 1), "transformations", "at most 50 are allowed"),
    (["drop"], "transformations[0]", "must be an object with a 'type'"),
    ([{"path": "x"}], "transformations[0].type", f"is required; one of: {KNOWN_TYPES}"),
    (
        [{"type": "delete"}],
        "transformations[0].type",
        f"unknown step type 'delete'; known types: {KNOWN_TYPES}",
    ),
    ([{"type": ["drop"]}], "transformations[0].type", "unknown step type ['drop']"),
    (
        [{"type": "drop", "path": "x", "pth": "y"}],
        "transformations[0].pth",
        "unknown key for a 'drop' step; allowed keys: path",
    ),
    # set
    ([{"type": "set", "value": 1}], "transformations[0].path", "is required"),
    ([{"type": "set", "path": "a.b"}], "transformations[0].from", "is required (or 'value'"),
    ([{"type": "set", "path": "a", "value": 1, "from": "span.b"}], "transformations[0].from", "not both"),
    ([{"type": "set", "path": "id", "value": "x"}], "transformations[0].path", "routing and de-duplication"),
    ([{"type": "set", "path": "trace_id.x", "value": 1}], "transformations[0].path", "span's trace_id"),
    ([{"type": "set", "path": "*.x", "value": 1}], "transformations[0].path", "top-level '*'"),
    ([{"type": "set", "path": "metadata..x", "value": 1}], "transformations[0].path", "is not a field path"),
    ([{"type": "set", "path": 7, "value": 1}], "transformations[0].path", "must be a non-empty string"),
    ([{"type": "set", "path": "a", "from": "model"}], "transformations[0].from", "must start with 'span.'"),
    ([{"type": "set", "path": "a", "from": "span"}], "transformations[0].from", "must start with 'span.'"),
    (
        [{"type": "set", "path": "a", "from": "context.secret"}],
        "transformations[0].from",
        "the context has project, api_key, environment, not 'secret'",
    ),
    (
        [{"type": "set", "path": "a", "value": {"x": [1, float("nan")]}}],
        "transformations[0].value.x[1]",
        "finite",
    ),
    ([{"type": "set", "path": "a", "value": {1: 2}}], "transformations[0].value", "non-string key"),
    # rename / move
    ([{"type": "rename", "from": "a.b"}], "transformations[0].to", "is required"),
    ([{"type": "rename", "to": "a.b"}], "transformations[0].from", "is required"),
    ([{"type": "rename", "from": "a.b", "to": "a.b"}], "transformations[0].to", "is the same path as 'from'"),
    ([{"type": "move", "from": "a.*", "to": "b"}], "transformations[0].from", "'*' is not allowed here"),
    ([{"type": "move", "from": "metadata.id", "to": "id"}], "transformations[0].to", "span's id"),
    (
        [{"type": "move", "from": "trace_id", "to": "metadata.t"}],
        "transformations[0].from",
        "span's trace_id",
    ),
    (
        [{"type": "rename", "from": "a", "to": "b", "path": "c"}],
        "transformations[0].path",
        "allowed keys: from, to",
    ),
    # drop
    ([{"type": "drop"}], "transformations[0].path", "is required"),
    ([{"type": "drop", "path": "id"}], "transformations[0].path", "routing and de-duplication"),
    ([{"type": "drop", "path": ""}], "transformations[0].path", "must be a non-empty string"),
    # truncate
    ([{"type": "truncate", "path": "a"}], "transformations[0].max_length", "is required"),
    ([{"type": "truncate", "path": "a", "max_length": -1}], "transformations[0].max_length", "at least 0"),
    (
        [{"type": "truncate", "path": "a", "max_length": "10"}],
        "transformations[0].max_length",
        "whole number",
    ),
    ([{"type": "truncate", "path": "a", "max_length": 1.5}], "transformations[0].max_length", "whole number"),
    (
        [{"type": "truncate", "path": "a", "max_length": True}],
        "transformations[0].max_length",
        "whole number",
    ),
    (
        [{"type": "truncate", "path": "trace_id", "max_length": 3}],
        "transformations[0].path",
        "span's trace_id",
    ),
    # limit_size
    ([{"type": "limit_size"}], "transformations[0].max_bytes", "is required"),
    ([{"type": "limit_size", "max_bytes": -5}], "transformations[0].max_bytes", "at least 1024"),
    ([{"type": "limit_size", "max_bytes": 100}], "transformations[0].max_bytes", "at least 1024, not 100"),
    ([{"type": "limit_size", "max_bytes": None}], "transformations[0].max_bytes", "whole number"),
    # enrich
    ([{"type": "enrich"}], "transformations[0].metadata", "needs 'metadata'"),
    ([{"type": "enrich", "metadata": "team"}], "transformations[0].metadata", "must be a non-empty object"),
    ([{"type": "enrich", "metadata": {}}], "transformations[0].metadata", "must be a non-empty object"),
    ([{"type": "enrich", "derived": "tokens_per_second"}], "transformations[0].derived", KNOWN_DERIVED),
    ([{"type": "enrich", "derived": []}], "transformations[0].derived", "must be a non-empty list"),
    (
        [{"type": "enrich", "derived": ["tokens_per_second", "cost"]}],
        "transformations[0].derived[1]",
        f"unknown derived metric 'cost'; known: {KNOWN_DERIVED}",
    ),
    (
        [{"type": "enrich", "derived": ["tokens_per_second", "tokens_per_second"]}],
        "transformations[0].derived[1]",
        "listed twice",
    ),
    ([{"type": "enrich", "metadata": {"a": {"b": {1, 2}}}}], "transformations[0].metadata.a.b", "JSON value"),
    # jmespath
    ([{"type": "jmespath", "path": "a"}], "transformations[0].expression", "is required"),
    ([{"type": "jmespath", "expression": "model"}], "transformations[0].path", "is required"),
    (
        [{"type": "jmespath", "path": "a", "expression": "request.messages[?role=='user'"}],
        "transformations[0].expression",
        "is not a valid JMESPath expression",
    ),
    ([{"type": "jmespath", "path": "a", "expression": "  "}], "transformations[0].expression", "non-empty"),
    ([{"type": "jmespath", "path": "a", "expression": 3}], "transformations[0].expression", "non-empty"),
    (
        [{"type": "jmespath", "path": "a", "expression": "shell(model)"}],
        "transformations[0].expression",
        "unknown JMESPath function shell()",
    ),
    (
        [{"type": "jmespath", "path": "a", "expression": "model", "set_null": "yes"}],
        "transformations[0].set_null",
        "must be true or false",
    ),
    (
        [{"type": "jmespath", "path": "a.*", "expression": "model"}],
        "transformations[0].path",
        "'*' is not allowed",
    ),
    ([{"type": "jmespath", "path": "id", "expression": "model"}], "transformations[0].path", "span's id"),
]


@pytest.mark.parametrize(
    ("steps", "field", "message"), INVALID, ids=[f"{i}-{case[1]}" for i, case in enumerate(INVALID)]
)
def test_invalid_steps_name_the_exact_field(steps, field, message):
    error = config_error(steps)
    assert error.field == field
    assert message in error.message


def test_errors_name_the_field_inside_the_callers_location():
    steps = [
        {"type": "drop", "path": "metadata.a"},
        {"type": "set", "path": "metadata.b", "value": 1},
        {"type": "truncate", "path": "request.messages.*.content", "max_length": -3},
    ]
    error = config_error(steps, where="rules[0].actions.transformations")
    assert error.field == "rules[0].actions.transformations[2].max_length"
    assert error.message == "must be at least 0, not -3"


def test_jmespath_syntax_error_carries_the_parser_message():
    error = config_error([{"type": "jmespath", "path": "a", "expression": "foo[?"}])
    assert error.field == "transformations[0].expression"
    assert "Invalid jmespath expression" in error.message or "Expecting" in error.message


def test_report_is_a_fresh_object_per_apply():
    pipeline = compile_pipeline([{"type": "set", "path": "metadata.a", "value": 1}], where="t")
    _, first = pipeline.apply(make_span(), CTX)
    _, second = pipeline.apply(make_span(), CTX)
    assert first is not second
    assert isinstance(first, TransformReport)
    assert first.changed == second.changed == ["metadata.a"]
