"""The redact_pii step: detectors, modes, scoping, copy-on-write, the gdpr preset, spec errors."""

from __future__ import annotations

import copy
import hashlib
import hmac
import re

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.routing import pii
from apps.routing.context import TransformContext, TransformReport
from apps.routing.errors import ConfigError
from apps.routing.pii import DETECTORS, compile_redactor

KEY = b"project-key-0123456789abcdef0123"
CTX = TransformContext(hash_key=KEY)
WHERE = "rules[0].actions.transformations[1]"


def redact(text: str, **spec) -> tuple[str, TransformReport]:
    report = TransformReport()
    out = compile_redactor(spec, where=WHERE)({"request": {"prompt": text}}, CTX, report)
    return out["request"]["prompt"], report


def token(label: str, value: str, key: bytes = KEY) -> str:
    return f"[{label}:{hmac.new(key, value.encode(), hashlib.sha256).hexdigest()[:16]}]"


def span(**overrides) -> dict:
    base = {
        "id": "s1",
        "trace_id": "t1",
        "parent_id": None,
        "session_id": "sess",
        "user_id": "user-42",
        "name": "chat jane@example.com",
        "kind": "llm",
        "start_time": "2024-05-17T10:00:00Z",
        "end_time": "2024-05-17T10:00:01Z",
        "provider": "openai",
        "model": "gpt-4o-mini",
        "status": "ok",
        "request": {
            "messages": [
                {"role": "system", "content": "You are helpful. Today is 2024-05-17."},
                {"role": "user", "content": "Mail me at jane@example.com"},
            ],
            "prompt": None,
            "parameters": {"temperature": 0.2, "max_tokens": 512},
        },
        "response": {
            "content": "Sure, I will write to you.",
            "messages": [],
            "usage": {"input_tokens": 12, "output_tokens": 7},
            "finish_reason": "stop",
        },
        "metadata": {"environment": "prod", "version": "1.2.3", "tags": {"team": "search"}},
        "metrics": {"latency_ms": 1000},
        "error": None,
        "attributes": {"gen_ai.system": "openai"},
    }
    base.update(overrides)
    return base


# -- detectors ------------------------------------------------------------------------------------

POSITIVES = {
    "email": ["jane.doe@example.com", "a+tag@mail.example.co.uk", "X_Y-Z%1@sub-domain.io"],
    "phone": [
        "+44 20 7946 0958",
        "+1 (555) 123-4567",
        "+491701234567",
        "+33 6 12 34 56 78",
        "(555) 123-4567",
        "555-123-4567",
        "555.123.4567",
        "1-800-555-1234",
        "030 1234 5678",
        "06 12 34 56 78",
        "0170-1234567",
    ],
    "credit_card": [
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5555555555554444",
        "378282246310005",
        "6011111111111117",
        "3056 930902 5904",
    ],
    "iban": [
        "DE89 3704 0044 0532 0130 00",
        "DE89370400440532013000",
        "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32",
        "FR1420041010050500013M02606",
        "NL91ABNA0417164300",
    ],
    "us_ssn": ["123-45-6789", "078-05-1120", "665-99-0001"],
    "ip_address": ["192.168.1.10", "8.8.8.8", "2001:db8::8a2e:370:7334", "::1", "fe80::1", "::ffff:10.0.0.1"],
    "secret": [
        "sk-" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8S9t0U1v2W3x4",
        "sk-proj-" + "abcDEF123_ghiJKL456-mnoPQR789stuVWX012yz",
        "sk-ant-api03-" + "Zx9_Yw8-Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa",
        "AKIAIOSFODNN7EXAMPLE",
        "ASIAY34FZKBOKMUTVV7A",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV",
        "ghp_" + "a" * 20 + "B1" * 8,
        "github_pat_" + "11ABCDEFG0" * 3,
        "AIzaSyA-1234567890abcdefghijklmnopqrstu",
        "xoxb-1234567890-0987654321-AbCdEfGhIjKl",
        "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc",
        "rk_live_" + "51H8abcdefghijklmnop",
    ],
}


@pytest.mark.parametrize(
    ("detector", "value"), [(d, v) for d, values in POSITIVES.items() for v in values], ids=str
)
def test_detector_finds_value_in_text(detector, value):
    text, report = redact(f"Hello, here it is: {value} - thanks!")
    assert text == f"Hello, here it is: [REDACTED:{detector.upper()}] - thanks!"
    assert report.redactions == {detector: 1}


@pytest.mark.parametrize(
    ("detector", "value"), [(d, v) for d, values in POSITIVES.items() for v in values], ids=str
)
def test_detector_finds_value_as_whole_string_and_at_edges(detector, value):
    assert redact(value)[0] == f"[REDACTED:{detector.upper()}]"
    assert redact(f"({value})")[0] == f"([REDACTED:{detector.upper()}])"


NEGATIVES = [
    # e-mail
    "@decorator over a function",
    "write to root@localhost",
    "user@domain without a dot",
    # phone: years, dates, versions, counts, short numbers
    "released in 2023 and 2024",
    "on 2024-01-15 at 10:30:00",
    "on 01.02.2024 and 15/01/2024",
    "version v1.2.3, build 10.0.19041.1",
    "used 12345678 tokens and 1700000000000 ms",
    "call 555-1234 for the desk",
    "ratio 3.14159265",
    "C++ 11 and +5 points",
    # cards: Luhn failures and other long numbers
    "card 4111 1111 1111 1112",
    "card 4111111111111112",
    "order 1234567890123456",
    "id 41111111111111111111111",
    # IBAN with a wrong checksum
    "iban GB82WEST12345698765433",
    "iban DE88370400440532013000",
    # SSNs in never-issued ranges
    "ssn 000-12-3456",
    "ssn 666-12-3456",
    "ssn 900-12-3456",
    "ssn 123-00-4567",
    "ssn 123-45-0000",
    "ssn 123456789",
    # IP-like text
    "host 999.1.1.1",
    "version 1.2.3",
    "1.2.3.4.5 is a long version",
    "at 10:30:45 use std::vector and a::b",
    "MAC 00:1A:2B:3C:4D:5E",
    # almost-secrets
    "pip install scikit-learn sk-short",
    "Bearer authentication is a common scheme",
    "the word bearer token",
    "AKIA is a prefix",
    "aws key wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY without a label",
    "eyJhbGciOiJIUzI1NiJ9 alone",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_near_misses_are_left_alone(text):
    out, report = redact(text)
    assert out == text
    assert not report.redactions


def test_bearer_keeps_the_scheme_and_redacts_the_token():
    out, report = redact("Authorization: Bearer abc123.def456-ghi789")
    assert out == "Authorization: Bearer [REDACTED:SECRET]"
    assert report.redactions == {"secret": 1}
    assert (
        redact("authorization: bearer Zm9vYmFyYmF6cXV4MTIz")[0] == "authorization: bearer [REDACTED:SECRET]"
    )


@pytest.mark.parametrize(
    "text",
    [
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        'AWS_SECRET_ACCESS_KEY="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
        '{"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}',
    ],
)
def test_labelled_aws_secret_key(text):
    out, report = redact(text)
    assert "wJalrXUtnFEMI" not in out
    assert "[REDACTED:SECRET]" in out
    assert report.redactions == {"secret": 1}


def test_card_followed_by_more_digits_is_cut_at_the_separator():
    out, _ = redact("pay 4111 1111 1111 1111 2024 please")
    assert out == "pay [REDACTED:CREDIT_CARD] 2024 please"


def test_card_after_other_numbers_and_two_cards_in_a_row():
    assert redact("ref 2000 2000000000000006 ok")[0] == "ref 2000 [REDACTED:CREDIT_CARD] ok"
    out, report = redact("4111 1111 1111 1111 5555 5555 5555 4444")
    assert out == "[REDACTED:CREDIT_CARD] [REDACTED:CREDIT_CARD]"
    assert report.redactions == {"credit_card": 2}


def test_iban_followed_by_a_word_in_capitals():
    out, _ = redact("BE68 5390 0754 7034 USED for rent")
    assert out == "[REDACTED:IBAN] USED for rent"


def test_several_values_in_one_string_are_counted_each():
    out, report = redact("a@x.com, b@y.org, 123-45-6789 and 10.0.0.1 or 10.0.0.2 and +44 20 7946 0958")
    assert out == (
        "[REDACTED:EMAIL], [REDACTED:EMAIL], [REDACTED:US_SSN] and [REDACTED:IP_ADDRESS]"
        " or [REDACTED:IP_ADDRESS] and [REDACTED:PHONE]"
    )
    assert report.redactions == {"email": 2, "us_ssn": 1, "ip_address": 2, "phone": 1}


def test_only_selected_detectors_run():
    out, report = redact("a@x.com and 123-45-6789", detectors=["us_ssn"])
    assert out == "a@x.com and [REDACTED:US_SSN]"
    assert report.redactions == {"us_ssn": 1}


def test_non_ascii_text_around_values():
    out, report = redact("Grüße — schreib an jürgen.x@example.de oder ruf +49 170 1234567 an ✓")
    assert out == "Grüße — schreib an [REDACTED:EMAIL] oder ruf [REDACTED:PHONE] an ✓"
    assert report.redactions == {"email": 1, "phone": 1}


def test_detectors_constant():
    assert DETECTORS == ("email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secret")


# -- custom detectors -----------------------------------------------------------------------------


def test_custom_pattern_counts_under_its_name():
    spec = {"custom": [{"name": "employee_id", "pattern": r"EMP-\d{6}"}], "detectors": []}
    out, report = redact("ticket by EMP-123456 and EMP-654321, not EMP-12", **spec)
    assert out == "ticket by [REDACTED:EMPLOYEE_ID] and [REDACTED:EMPLOYEE_ID], not EMP-12"
    assert report.redactions == {"employee_id": 2}


def test_several_custom_patterns_and_non_ascii_text():
    spec = {
        "custom": [{"name": "badge", "pattern": r"B\d{4}"}, {"name": "employee_id", "pattern": r"EMP-\d{6}"}],
        "detectors": [],
    }
    assert redact("Grüße von EMP-123456 ✓", **spec)[0] == "Grüße von [REDACTED:EMPLOYEE_ID] ✓"
    out, report = redact("B1234 and EMP-000001 and B9", **spec)
    assert out == "[REDACTED:BADGE] and [REDACTED:EMPLOYEE_ID] and B9"
    assert report.redactions == {"badge": 1, "employee_id": 1}
    assert redact("ü: Straße B4321", **spec)[0] == "ü: Straße [REDACTED:BADGE]"


def test_custom_pattern_with_builtins_and_hash_mode():
    spec = {"custom": [{"name": "order", "pattern": r"ORD\d+"}], "mode": "hash"}
    out, report = redact("ORD42 for a@x.com", **spec)
    assert out == f"{token('ORDER', 'ORD42')} for {token('EMAIL', 'a@x.com')}"
    assert report.redactions == {"order": 1, "email": 1}


def test_custom_pattern_runs_in_linear_time():
    spec = {"custom": [{"name": "evil", "pattern": r"(a+)+b"}], "detectors": []}
    out, report = redact("a" * 5000 + "!", **spec)
    assert out == "a" * 5000 + "!"
    assert not report.redactions


# -- modes ----------------------------------------------------------------------------------------


def test_mask_mode_is_the_default():
    assert redact("to a@x.com now")[0] == "to [REDACTED:EMAIL] now"
    assert redact("to a@x.com now", mode="mask")[0] == "to [REDACTED:EMAIL] now"


def test_remove_mode():
    out, report = redact("to a@x.com now, card 4111111111111111.", mode="remove")
    assert out == "to  now, card ."
    assert report.redactions == {"email": 1, "credit_card": 1}


def test_hash_mode_token_is_hmac_of_value():
    out, report = redact("to a@x.com now", mode="hash")
    assert out == f"to {token('EMAIL', 'a@x.com')} now"
    assert re.fullmatch(r"to \[EMAIL:[0-9a-f]{16}\] now", out)
    assert report.redactions == {"email": 1}


def test_hash_is_stable_within_a_project_and_differs_across():
    redactor = compile_redactor({"mode": "hash"}, where=WHERE)
    data = span()
    data["request"]["prompt"] = "again jane@example.com, and bob@example.com"
    first = redactor(data, CTX, TransformReport())
    second = redactor(copy.deepcopy(data), CTX, TransformReport())
    other = redactor(data, TransformContext(hash_key=b"another-project-key"), TransformReport())
    mail = first["request"]["messages"][1]["content"].split()[-1]
    assert mail == token("EMAIL", "jane@example.com")
    assert first["request"]["prompt"].split()[1] == mail + ","
    assert first == second
    assert token("EMAIL", "jane@example.com") != token("EMAIL", "bob@example.com")
    assert other["request"]["messages"][1]["content"].split()[-1] == token(
        "EMAIL", "jane@example.com", b"another-project-key"
    )
    assert other["request"]["messages"][1]["content"] != first["request"]["messages"][1]["content"]


def test_values_never_reach_the_report():
    report = TransformReport()
    compile_redactor({"mode": "hash"}, where=WHERE)(span(), CTX, report)
    assert "jane" not in orjson.dumps(report.as_dict()).decode()
    assert report.as_dict() == {"redactions": {"email": 1}, "truncated": [], "changed": []}


# -- scoping, nesting, copy-on-write --------------------------------------------------------------


def test_default_fields_scope():
    data = span(
        error={"type": "ValueError", "message": "bad a@x.com", "stack": "at b@x.com"},
        attributes={"gen_ai.prompt": "c@x.com", "n": 3},
    )
    data["response"]["content"] = "d@x.com"
    data["metadata"]["tags"]["owner"] = "e@x.com"
    report = TransformReport()
    out = compile_redactor({}, where=WHERE)(data, CTX, report)
    assert out["name"] == "chat jane@example.com"  # outside the fields
    assert out["error"] == {"type": "ValueError", "message": "bad [REDACTED:EMAIL]", "stack": "at b@x.com"}
    assert out["attributes"] == {"gen_ai.prompt": "[REDACTED:EMAIL]", "n": 3}
    assert out["response"]["content"] == "[REDACTED:EMAIL]"
    assert out["metadata"]["tags"]["owner"] == "[REDACTED:EMAIL]"
    assert out["request"]["messages"][1]["content"] == "Mail me at [REDACTED:EMAIL]"
    assert report.redactions == {"email": 5}


def test_custom_fields_with_wildcards_and_dotted_keys():
    data = span(attributes={"gen_ai.prompt": "a@x.com", "other": "b@x.com"})
    data["response"]["content"] = "c@x.com"
    fields = ["request.messages.*.content", "attributes.gen_ai.prompt", "name"]
    out = compile_redactor({"fields": fields}, where=WHERE)(data, CTX, TransformReport())
    assert out["request"]["messages"][1]["content"] == "Mail me at [REDACTED:EMAIL]"
    assert out["attributes"] == {"gen_ai.prompt": "[REDACTED:EMAIL]", "other": "b@x.com"}
    assert out["name"] == "chat [REDACTED:EMAIL]"
    assert out["response"] is data["response"]


def test_overlapping_fields_scan_once():
    report = TransformReport()
    redactor = compile_redactor({"fields": ["request.messages", "request", "request"]}, where=WHERE)
    assert redactor.fields == (("request",),)
    redactor(span(), CTX, report)
    assert report.redactions == {"email": 1}


def test_nested_lists_and_content_parts():
    data = span()
    data["request"]["messages"] = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "my card 4111 1111 1111 1111"},
                {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                {"type": "text", "text": ["deeper", ["still deeper: 123-45-6789"]]},
            ],
        }
    ]
    data["metadata"]["list"] = [1, 2.5, None, True, {"k": ["a@x.com"]}]
    out = compile_redactor({}, where=WHERE)(data, CTX, TransformReport())
    parts = out["request"]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "my card [REDACTED:CREDIT_CARD]"}
    assert parts[1] is data["request"]["messages"][0]["content"][1]
    assert parts[2]["text"] == ["deeper", ["still deeper: [REDACTED:US_SSN]"]]
    assert out["metadata"]["list"] == [1, 2.5, None, True, {"k": ["[REDACTED:EMAIL]"]}]


def test_dict_keys_are_not_redacted():
    data = span(attributes={"a@x.com": "b@x.com"})
    out = compile_redactor({}, where=WHERE)(data, CTX, TransformReport())
    assert out["attributes"] == {"a@x.com": "[REDACTED:EMAIL]"}


def test_input_is_never_modified_and_untouched_subtrees_are_shared():
    data = span()
    data["response"]["content"] = "call +44 20 7946 0958"
    before = copy.deepcopy(data)
    out = compile_redactor({"preset": "gdpr"}, where=WHERE)(data, CTX, TransformReport())
    assert data == before
    assert out is not data
    assert out["request"] is not data["request"]
    assert out["request"]["messages"][0] is data["request"]["messages"][0]
    assert out["request"]["parameters"] is data["request"]["parameters"]
    assert out["response"]["usage"] is data["response"]["usage"]
    assert out["metadata"] is data["metadata"]
    assert out["attributes"] is data["attributes"]


def test_span_without_pii_is_returned_as_is():
    data = span(name="chat")
    data["request"]["messages"][1]["content"] = "Tell me about 2024, in 3 steps; see v1.2.3."
    report = TransformReport()
    assert compile_redactor({}, where=WHERE)(data, CTX, report) is data
    assert not report.redactions
    wildcard = compile_redactor({"fields": ["request.messages.*.content", "metadata.*"]}, where=WHERE)
    assert wildcard(data, CTX, report) is data


def test_missing_and_odd_fields_are_fine():
    redactor = compile_redactor(
        {"fields": ["request.messages.5.content", "nope.deeper", "model.x"]}, where=WHERE
    )
    data = span()
    assert redactor(data, CTX, TransformReport()) is data
    assert compile_redactor({}, where=WHERE)({}, CTX, TransformReport()) == {}


# -- gdpr preset ----------------------------------------------------------------------------------


def test_gdpr_preset_pseudonymises_user_and_drops_ips():
    data = span()
    data["request"]["messages"][1]["content"] = "I am at 192.168.1.20, mail jane@example.com"
    data["metadata"].update({"ip": "10.0.0.1", "client_ip": "10.0.0.2", "client": {"address": "10.0.0.3"}})
    data["attributes"] = {
        "net.peer.ip": "10.0.0.4",
        "http.client_ip": "10.0.0.5",
        "client.address": "10.0.0.6",
        "ip_address": "10.0.0.7",
        "http.route": "/v1",
    }
    report = TransformReport()
    out = compile_redactor({"preset": "gdpr"}, where=WHERE)(data, CTX, report)
    assert out["user_id"] == token("USER_ID", "user-42")
    assert out["request"]["messages"][1]["content"] == "I am at , mail [REDACTED:EMAIL]"
    assert out["metadata"] == {
        "environment": "prod",
        "version": "1.2.3",
        "tags": {"team": "search"},
        "client": {},
    }
    assert out["attributes"] == {"http.route": "/v1"}
    assert report.redactions == {"user_id": 1, "ip_address": 8, "email": 1}
    assert data["user_id"] == "user-42" and data["metadata"]["ip"] == "10.0.0.1"


def test_gdpr_hashes_user_id_whatever_the_mode_and_adds_ip_detector():
    data = span(user_id="bob")
    data["response"]["content"] = "from 10.1.2.3"
    report = TransformReport()
    out = compile_redactor({"preset": "gdpr", "mode": "remove", "detectors": ["email"]}, where=WHERE)(
        data, CTX, report
    )
    assert out["user_id"] == token("USER_ID", "bob")
    assert out["request"]["messages"][1]["content"] == "Mail me at "
    assert out["response"]["content"] == "from "
    assert report.redactions == {"user_id": 1, "email": 1, "ip_address": 1}


def test_gdpr_without_user_id_or_ips_changes_only_what_it_finds():
    data = span(user_id=None)
    data["request"]["messages"][1]["content"] = "nothing here"
    redactor = compile_redactor({"preset": "gdpr"}, where=WHERE)
    assert redactor(data, CTX, TransformReport()) is data


# -- spec validation ------------------------------------------------------------------------------


def test_compiled_redactor_is_immutable():
    redactor = compile_redactor({"type": "redact_pii"}, where=WHERE)
    assert redactor.detectors == DETECTORS
    assert redactor.mode == "mask"
    with pytest.raises(AttributeError):
        redactor.mode = "remove"


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ("redact", ""),
        ({"type": "truncate"}, ".type"),
        ({"unknown": 1}, ".unknown"),
        ({"detectors": "email"}, ".detectors"),
        ({"detectors": ["email", "passport"]}, ".detectors[1]"),
        ({"detectors": ["email", 3]}, ".detectors[1]"),
        ({"detectors": ["email", "email"]}, ".detectors[1]"),
        ({"detectors": []}, ".detectors"),
        ({"mode": "redact"}, ".mode"),
        ({"mode": ["mask"]}, ".mode"),
        ({"preset": "hipaa"}, ".preset"),
        ({"preset": None}, ".preset"),
        ({"fields": "request"}, ".fields"),
        ({"fields": []}, ".fields"),
        ({"fields": ["request", ""]}, ".fields[1]"),
        ({"fields": ["request", "a..b"]}, ".fields[1]"),
        ({"fields": ["request", 5]}, ".fields[1]"),
        ({"fields": ["x"] * 40}, ".fields"),
        ({"custom": {"name": "x", "pattern": "y"}}, ".custom"),
        ({"custom": ["EMP-\\d+"]}, ".custom[0]"),
        ({"custom": [{"name": "x", "pattern": "y", "flags": "i"}]}, ".custom[0].flags"),
        ({"custom": [{"pattern": "y"}]}, ".custom[0].name"),
        ({"custom": [{"name": "Bad Name", "pattern": "y"}]}, ".custom[0].name"),
        ({"custom": [{"name": "x" * 41, "pattern": "y"}]}, ".custom[0].name"),
        ({"custom": [{"name": "email", "pattern": "y"}]}, ".custom[0].name"),
        ({"custom": [{"name": "a", "pattern": "y"}, {"name": "a", "pattern": "z"}]}, ".custom[1].name"),
        ({"custom": [{"name": "a"}]}, ".custom[0].pattern"),
        ({"custom": [{"name": "a", "pattern": ""}]}, ".custom[0].pattern"),
        ({"custom": [{"name": "a", "pattern": 7}]}, ".custom[0].pattern"),
        ({"custom": [{"name": "a", "pattern": "x" * 501}]}, ".custom[0].pattern"),
        ({"custom": [{"name": "a", "pattern": "(unclosed"}]}, ".custom[0].pattern"),
        ({"custom": [{"name": "a", "pattern": "(?=look)ahead"}]}, ".custom[0].pattern"),
        ({"custom": [{"name": "a", "pattern": r"(a)\1"}]}, ".custom[0].pattern"),
        ({"custom": [{"name": "a", "pattern": "a*"}]}, ".custom[0].pattern"),
        ({"custom": [{"name": f"c{i}", "pattern": "x"} for i in range(21)]}, ".custom"),
        (
            {"custom": [{"name": "ok", "pattern": "x"}, {"name": "b", "pattern": "[z-a]"}]},
            ".custom[1].pattern",
        ),
    ],
)
def test_invalid_specs_name_the_field(spec, field):
    with pytest.raises(ConfigError) as caught:
        compile_redactor(spec, where=WHERE)
    assert caught.value.field == WHERE + field
    assert caught.value.message


def test_valid_spec_variants():
    assert compile_redactor({"detectors": [], "preset": "gdpr"}, where=WHERE).detectors == ("ip_address",)
    assert compile_redactor({"detectors": [], "custom": [{"name": "a", "pattern": "x"}]}, where=WHERE)
    redactor = compile_redactor(
        {"type": "redact_pii", "detectors": ["secret", "email"], "mode": "hash", "fields": ["request"]},
        where=WHERE,
    )
    assert redactor.detectors == ("email", "secret")
    assert redactor.fields == (("request",),)


# -- properties -----------------------------------------------------------------------------------


def _luhn_complete(prefix_and_body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(prefix_and_body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix_and_body + str((10 - total % 10) % 10)


cards = st.builds(
    lambda first, body, sep: sep.join(
        (lambda n: [n[i : i + 4] for i in range(0, len(n), 4)])(_luhn_complete(first + body))
    ),
    st.sampled_from("23456"),
    st.text("0123456789", min_size=14, max_size=14),
    st.sampled_from(["", " ", "-"]),
)
emails = st.builds(
    "{}@{}.{}".format,
    st.text("abcdefghijklmnopqrstuvwxyz0123456789._%+-", min_size=1, max_size=30),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=8),
)
alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
openai_keys = st.builds(
    "{}{}".format,
    st.sampled_from(["sk-", "sk-proj-", "sk-ant-api03-"]),
    st.text(alnum + "_-", min_size=20, max_size=60),
)
aws_ids = st.builds(
    "{}{}".format,
    st.sampled_from(["AKIA", "ASIA"]),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16),
)
planted_values = st.one_of(emails, cards, openai_keys, aws_ids)
filler = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=80)


@st.composite
def nested(draw, text: str):
    """`text` somewhere in a random nesting of objects and lists under a random scoped root."""
    node: object = text
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            siblings = draw(
                st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), filler, st.none()), max_size=2)
            )
            index = draw(st.integers(0, len(siblings)))
            node = [*siblings[:index], node, *siblings[index:]]
        else:
            key = draw(st.sampled_from(["content", "text", "parts", "x.y", "messages", "0"]))
            node = {key: node, "role": draw(st.sampled_from(["user", "assistant"]))}
    root = draw(st.sampled_from(["request", "response", "metadata", "attributes"]))
    data = span()
    data[root] = {"payload": node}
    return data


@pytest.mark.parametrize("mode", ["mask", "remove", "hash"])
@settings(max_examples=300, deadline=None)
@given(data=st.data(), value=planted_values, before=filler, after=filler)
def test_planted_values_never_survive(mode, data, value, before, after):
    redactor = compile_redactor({"mode": mode}, where=WHERE)
    text = f"{before} {value} {after}"
    document = data.draw(nested(text))
    original = orjson.dumps(document)
    out = redactor(document, CTX, TransformReport())
    assert value.encode() not in orjson.dumps(out)
    assert orjson.dumps(document) == original


def _no_prefilter(text: str) -> dict[int, list[int]]:
    return {index: [0, len(text)] for index in range(len(pii._ALL_PATTERNS))}


ALL_POSITIVES = [value for values in POSITIVES.values() for value in values]


@settings(max_examples=400, deadline=None)
@given(
    pieces=st.lists(
        st.one_of(planted_values, st.sampled_from(ALL_POSITIVES + NEGATIVES), filler), max_size=6
    ),
    sep=st.sampled_from([" ", "", "\n", ", ", "-", "."]),
)
def test_prefilter_and_windows_change_no_result(pieces, sep):
    """Searching only where the prefilter points finds exactly what searching everywhere finds."""
    text = sep.join(pieces)
    fast = compile_redactor({}, where=WHERE)
    slow = compile_redactor({}, where=WHERE)
    object.__setattr__(slow, "_gate", _no_prefilter)
    fast_report, slow_report = TransformReport(), TransformReport()
    assert fast({"request": text}, CTX, fast_report) == slow({"request": text}, CTX, slow_report)
    assert fast_report.redactions == slow_report.redactions


@pytest.mark.parametrize(("detector", "value"), [(d, v) for d, vs in POSITIVES.items() for v in vs], ids=str)
def test_prefilter_flags_every_positive(detector, value):
    for text in (value, f"é {value} ü"):
        windows = pii._re2_gate(text)
        flagged = {DETECTORS[pii._PATTERN_DETECTOR[index]] for index in windows}
        assert detector in flagged
