"""The `redact_pii` transformation step: find personal data and secrets in a
span's strings and mask, remove or hash them.

Spec (one entry of a rule's `actions.transformations`)::

    {"type": "redact_pii",
     "detectors": ["email", "phone", ...],     # default: every built-in detector
     "custom": [{"name": "employee_id", "pattern": "EMP-\\\\d{6}"}],
     "mode": "mask" | "remove" | "hash",       # default "mask"
     "fields": ["request", "response", ...],   # default DEFAULT_FIELDS; `*` allowed
     "preset": "gdpr"}                          # optional

Built-in detectors (`DETECTORS`):

- `email`: addresses with a dotted domain and an alphabetic top-level label.
- `phone`: `+CC` international numbers, US `(555) 123-4567` / `555-123-4567`
  and European trunk-prefixed numbers (`030 1234 5678`, `06 12 34 56 78`),
  8 to 15 digits. Plain digit runs, years, dates, versions and counts are not
  phone numbers.
- `credit_card`: 13 to 19 digits starting 2-6 (the card networks), optionally
  grouped by spaces or dashes, that pass the Luhn check.
- `iban`: country code, check digits and BBAN, length per country, mod-97 check.
- `us_ssn`: `AAA-GG-SSSS` outside the never-issued ranges (000, 666, 9xx; 00; 0000).
- `ip_address`: IPv4 and IPv6, confirmed with `ipaddress`.
- `secret`: OpenAI and Anthropic keys (`sk-`, `sk-proj-`, `sk-ant-`), AWS access
  key ids (`AKIA`/`ASIA`) and AWS secret keys next to their label, JWTs,
  `Bearer <token>` values (the token only), GitHub tokens (`ghp_`, `github_pat_`...),
  Google API keys (`AIza`), Slack tokens (`xox?-`), Stripe secret and restricted keys.

`custom` adds named regexes (RE2 syntax, run with RE2 so that no pattern can take
more than linear time); each counts and labels under its own name.

Modes: `mask` writes `[REDACTED:EMAIL]`, `remove` writes nothing, `hash` writes
`[EMAIL:<16 hex>]`, the first 16 hex digits of HMAC-SHA256 keyed with the
project's `hash_key`, so one value gives one token within a project and
unrelated tokens across projects.

Only strings under `fields` are scanned, through nested objects and lists (keys
are kept as they are). Every replacement adds one to `report.redactions[name]`;
the values found are never reported, raised or logged.

Preset `gdpr` (GDPR / CCPA data minimisation) adds, on top of the above:

- pseudonymised users: the top-level `user_id` becomes `[USER_ID:<16 hex>]`
  (HMAC as in hash mode, whatever the mode), counted under `user_id`;
- no IP addresses: the `ip_address` detector is on and always removes, and the
  keys `ip`, `ip_address`, `client_ip`, `client.address`, `net.peer.ip` and
  `http.client_ip` are dropped from `metadata` and `attributes`, each counted
  under `ip_address`.

Speed: a span without findings must cost a few microseconds. Each string is
first run through one RE2 set holding a loose form of every built-in pattern
(one linear pass, all detectors); only the patterns it flags run their exact
`re` form, and only around where the loose form matched, followed by the
Luhn / mod-97 / `ipaddress` checks.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable
from typing import Any

import re2

from apps.routing.context import TransformContext, TransformReport
from apps.routing.errors import ConfigError
from apps.routing.paths import Path, parse_path

DETECTORS: tuple[str, ...] = ("email", "phone", "credit_card", "iban", "us_ssn", "ip_address", "secret")
MODES: tuple[str, ...] = ("mask", "remove", "hash")
PRESETS: tuple[str, ...] = ("gdpr",)
DEFAULT_FIELDS: tuple[str, ...] = ("request", "response", "metadata", "error.message", "attributes")
GDPR_IP_KEYS: tuple[str, ...] = (
    "ip",
    "ip_address",
    "client_ip",
    "client.address",
    "net.peer.ip",
    "http.client_ip",
)

MAX_CUSTOM = 20
MAX_PATTERN_LENGTH = 500
MAX_FIELDS = 32
_SPEC_KEYS = frozenset({"type", "detectors", "custom", "mode", "fields", "preset"})
_CUSTOM_KEYS = frozenset({"name", "pattern"})
_CUSTOM_NAME = re.compile(r"[a-z0-9_]{1,40}")
_RESERVED_NAMES = frozenset(DETECTORS) | {"user_id"}
_MIN_BUILTIN_LENGTH = 3  # "::1"

# --------------------------------------------------------------------------------------------------
# Checks run on a candidate match. Each gets the matched text and returns the (start, end) of the
# part to redact, or None to let it be. Candidates that run on past the real value on either side
# ("2000 4111 1111 1111 1111 2024") are cut at their separators, longest piece first.

Check = Callable[[str], "tuple[int, int] | None"]


def _cut(text: str, seps: str, ok: Callable[[str], bool]) -> tuple[int, int] | None:
    starts = [0, *(i + 1 for i, ch in enumerate(text) if ch in seps)]
    for start in starts:
        piece = text[start:]
        while piece:
            if ok(piece):
                return start, start + len(piece)
            cut = max(piece.rfind(sep) for sep in seps)
            if cut <= 0:
                break
            piece = piece[:cut].rstrip(seps + "(")
    return None


def _whole(text: str) -> tuple[int, int]:
    return 0, len(text)


def _digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_ok(text: str) -> bool:
    digits = _digits(text)
    return 13 <= len(digits) <= 19 and _luhn(digits)


def _check_card(text: str) -> tuple[int, int] | None:
    return _cut(text, " -", _card_ok)


_DATE = re.compile(r"[0-9]{1,4}[./\-][0-9]{1,2}[./\-][0-9]{1,4}")


def _phone_ok(text: str) -> bool:
    return 8 <= len(_digits(text)) <= 15 and not _DATE.fullmatch(text)


def _check_phone(text: str) -> tuple[int, int] | None:
    return _cut(text, " .-/", _phone_ok)


_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "LY": 25,
    "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip


def _iban_ok(text: str) -> bool:
    compact = text.replace(" ", "")
    expected = _IBAN_LENGTHS.get(compact[:2])
    if expected is None:
        if not 15 <= len(compact) <= 34:
            return False
    elif len(compact) != expected:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _check_iban(text: str) -> tuple[int, int] | None:
    return _cut(text, " ", _iban_ok)


def _check_ipv4(text: str) -> tuple[int, int] | None:
    try:
        ipaddress.IPv4Address(text)
    except ValueError:
        return None
    return _whole(text)


def _check_ipv6(text: str) -> tuple[int, int] | None:
    # "a::b" and "dead::beef" are code more often than addresses: ask for a decimal digit.
    if text.count(":") < 2 or not any("0" <= ch <= "9" for ch in text):
        return None
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return _whole(text)


def _check_email(text: str) -> tuple[int, int] | None:
    at = text.index("@")
    labels = text[at + 1 :].split(".")
    for i in range(len(labels) - 1, 0, -1):
        tld = labels[i]
        if len(tld) >= 2 and tld.isascii() and tld.isalpha():
            return 0, at + 1 + len(".".join(labels[: i + 1]))
    return None


def _check_bearer(text: str) -> tuple[int, int] | None:
    # "Bearer authentication" is prose; a token has a digit or is long and mixed-case.
    if any("0" <= ch <= "9" for ch in text):
        return _whole(text)
    if len(text) >= 20 and not text.islower() and not text.isupper():
        return _whole(text)
    return None


# --------------------------------------------------------------------------------------------------
# Patterns. `body` serves twice: with `{P}` as `+` (possessive) and lookarounds for `re`, and plain
# (or as the looser `gate`) for the prefilter, which therefore matches wherever the exact pattern can.
# Bounded patterns followed by a lookahead stay backtracking, so that "4111 1111 1111 1111 2024"
# still yields the card when the longest run fails the lookahead.


class _Pattern:
    """An exact pattern and its prefilter form.

    A match of the exact pattern starts at most `left` characters before the start of a
    prefilter match, so only the window from there to `right` characters past the prefilter
    match's end (None: to the end of the string) is searched. A match that reaches the edge of
    the window is searched again without it, so `right` only needs to cover lookaheads for the
    patterns whose every prefix that contains the prefilter match still matches.
    """

    __slots__ = ("body", "check", "gate_flags", "group", "left", "regex", "right")

    def __init__(
        self,
        body: str,
        *,
        before: str = "",
        after: str = "",
        group: int | str = 0,
        check: Check | None = None,
        flags: int = 0,
        gate: str | None = None,
        left: int = 0,
        right: int | None = 16,
    ) -> None:
        self.regex = re.compile(before + "(?:" + body.replace("{P}", "+") + ")" + after, flags)
        self.body = gate if gate is not None else body.replace("{P}", "")
        self.gate_flags = flags
        self.group = group
        self.check = check
        self.left = left
        self.right = right


_HEX = "[0-9A-Fa-f]"
_TOKEN = "[A-Za-z0-9_\\-]"
_AWS_LABEL = (
    r"(?:aws[_\-]?secret[_\-]?access[_\-]?key|aws[_\-]?secret(?:[_\-]?key)?|secret[_\-]?access[_\-]?key)"
)

_PATTERNS: dict[str, tuple[_Pattern, ...]] = {
    "email": (
        _Pattern(
            r"[\w.%+\-]{1,64}{P}@[A-Za-z0-9\-]+{P}(?:\.[A-Za-z0-9\-]+{P})+{P}",
            check=_check_email,
            gate=r"@[A-Za-z0-9\-]+\.[A-Za-z0-9\-]",
            left=65,
        ),
    ),
    "phone": (
        _Pattern(
            r"\+[1-9][0-9]{0,3}(?:[ .\-]?(?:\([0-9]{1,4}\)|[0-9]{1,5})){1,7}",
            before=r"(?<![\w+])",
            after=r"(?![0-9])",
            check=_check_phone,
            gate=r"\+(?:[ .\-()]{0,3}[0-9]){8}",
        ),
        _Pattern(
            r"(?:1[ .\-])?(?:\([0-9]{3}\)[ ]?|[0-9]{3}[ .\-])[0-9]{3}[ .\-][0-9]{4}",
            before=r"(?<![\w.+\-/])",
            after=r"(?![0-9]|[.\-/][0-9])",
            check=_check_phone,
        ),
        _Pattern(
            r"0[0-9]{1,4}(?:[ .\-/][0-9]{2,8}){1,4}",
            before=r"(?<![\w.+\-/])",
            after=r"(?![0-9]|[.\-/][0-9])",
            check=_check_phone,
            gate=r"0(?:[ .\-/]?[0-9]){7}",
        ),
    ),
    "credit_card": (
        _Pattern(
            r"[2-6][0-9]{3}(?:[ \-]?[0-9]){9,15}",
            before=r"(?<![\w\-])",
            after=r"(?![0-9])",
            check=_check_card,
            gate=r"[2-6][0-9]{3}(?:[ \-]?[0-9]){9}",
        ),
    ),
    "iban": (
        _Pattern(
            r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?",
            before=r"(?<![A-Za-z0-9])",
            after=r"(?![A-Za-z0-9])",
            check=_check_iban,
            gate=r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2}",
            right=40,
        ),
    ),
    "us_ssn": (
        _Pattern(
            r"(?!000|666|9)[0-9]{3}-(?!00)[0-9]{2}-(?!0000)[0-9]{4}",
            before=r"(?<![\w\-])",
            after=r"(?![\w]|-[0-9])",
            gate=r"[0-9]{3}-[0-9]{2}-[0-9]{4}",
        ),
    ),
    "ip_address": (
        _Pattern(
            r"(?:[0-9]{1,3}\.){3}[0-9]{1,3}",
            before=r"(?<![\w.])",
            after=r"(?![\w]|\.[0-9])",
            check=_check_ipv4,
        ),
        _Pattern(
            f"(?:{_HEX}{{0,4}}:){{2,7}}(?:(?:[0-9]{{1,3}}\\.){{3}}[0-9]{{1,3}}|{_HEX}{{1,4}})?",
            before=r"(?<![\w:.])",
            after=r"(?![\w:]|\.[0-9])",
            check=_check_ipv6,
            gate=f"{_HEX}::|::{_HEX}|(?:{_HEX}{{1,4}}:){{3}}{_HEX}",
            left=56,
            right=56,
        ),
    ),
    "secret": (
        _Pattern(
            "|".join(
                (
                    f"sk-{_TOKEN}{{20,}}{{P}}",  # OpenAI, incl. sk-proj- and sk-ant- (Anthropic)
                    "[sr]k_(?:live|test)_[A-Za-z0-9]{10,}{P}",  # Stripe secret / restricted
                    "(?:AKIA|ASIA)[A-Z0-9]{16}",  # AWS access key id
                    f"eyJ{_TOKEN}{{10,}}{{P}}\\.{_TOKEN}{{2,}}{{P}}\\.{_TOKEN}*{{P}}",  # JWT
                    "gh[pousr]_[A-Za-z0-9]{36,}{P}",  # GitHub
                    "github_pat_[A-Za-z0-9_]{22,}{P}",
                    f"AIza{_TOKEN}{{35,}}{{P}}",  # Google API key
                    "xox[abposr]-[A-Za-z0-9\\-]{10,}{P}",  # Slack
                    "xapp-[0-9]-[A-Za-z0-9\\-]{10,}{P}",
                )
            ),
            before=r"(?<![A-Za-z0-9_\-])",
            after=r"(?![A-Za-z0-9_\-])",
            right=None,
            gate="|".join(
                (
                    f"sk-{_TOKEN}{{20}}",
                    "[sr]k_(?:live|test)_[A-Za-z0-9]{10}",
                    "(?:AKIA|ASIA)[A-Z0-9]{16}",
                    f"eyJ{_TOKEN}{{10}}",
                    "gh[pousr]_[A-Za-z0-9]{36}",
                    "github_pat_[A-Za-z0-9_]{22}",
                    f"AIza{_TOKEN}{{35}}",
                    "xox[abposr]-[A-Za-z0-9\\-]{10}",
                    "xapp-[0-9]-[A-Za-z0-9\\-]{10}",
                )
            ),
        ),
        _Pattern(
            r"bearer[ \t]+(?P<v>[A-Za-z0-9._~+/\-]{8,}{P}=*{P})",
            before=r"(?<![A-Za-z0-9])",
            group="v",
            check=_check_bearer,
            flags=re.IGNORECASE,
            gate=r"bearer[ \t]+[A-Za-z0-9._~+/\-]{8}",
            right=None,
        ),
        _Pattern(
            _AWS_LABEL + r"[\"']?[ \t]*[:=][ \t]*[\"']?(?P<v>[A-Za-z0-9/+]{40})",
            after=r"(?![A-Za-z0-9/+])",
            group="v",
            flags=re.IGNORECASE,
            gate=_AWS_LABEL + r"[\"']?[ \t]*[:=][ \t]*[\"']?[A-Za-z0-9/+]{40}",
        ),
    ),
}

# --------------------------------------------------------------------------------------------------
# Prefilter: where in a string a built-in pattern might match. Measured (bench/bench_pii.py) against
# Hyperscan and against running every exact pattern: an RE2 set is the fastest on clean text, as
# fast as Hyperscan's start-of-match mode when something is found, and needs no other library.

_ALL_PATTERNS: tuple[_Pattern, ...] = tuple(p for name in DETECTORS for p in _PATTERNS[name])
_PATTERN_DETECTOR: tuple[int, ...] = tuple(i for i, name in enumerate(DETECTORS) for _ in _PATTERNS[name])


_NO_WINDOWS: dict[int, list[int]] = {}


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _re2_set(patterns: list[str]) -> Any:
    """One RE2 pass that tells which of `patterns` occur in a text (indexes in list order)."""
    search_set = re2.Set.SearchSet(_RE2_OPTIONS)
    for pattern in patterns:
        search_set.Add(pattern)
    search_set.Compile()
    return search_set


_GATE_BODIES = [("(?i)" if p.gate_flags & re.IGNORECASE else "") + p.body for p in _ALL_PATTERNS]
_RE2_SET = _re2_set(_GATE_BODIES)
_RE2_GATES = tuple(re2.compile(body, _RE2_OPTIONS) for body in _GATE_BODIES)


def _re2_gate(text: str) -> dict[int, list[int]]:
    """Pattern index -> [first start, last end] of its prefilter matches. One pass of an RE2
    set of every prefilter pattern says which match at all (usually none); only those are
    then searched for where."""
    data = text.encode("utf-8", "surrogatepass")  # RE2 is several times faster on bytes than on str
    hits = _RE2_SET.Match(data)
    if not hits:
        return _NO_WINDOWS
    if len(data) != len(text):  # byte offsets are not character offsets: search everywhere
        return {index: [0, len(text)] for index in hits}
    windows = {}
    for index in hits:
        matches = list(_RE2_GATES[index].finditer(data))
        if matches:
            windows[index] = [matches[0].start(), matches[-1].end()]
    return windows


# --------------------------------------------------------------------------------------------------


def _token(label: str, value: str, key: bytes) -> str:
    digest = hmac.new(key, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    return f"[{label}:{digest[:16]}]"


class _Detector:
    __slots__ = ("label", "mask", "mode", "name", "patterns", "rank")

    def __init__(self, name: str, patterns: tuple[Any, ...], mode: str, rank: int) -> None:
        self.name = name
        self.label = name.upper()
        self.mask = f"[REDACTED:{self.label}]"
        self.patterns = patterns
        self.mode = mode
        self.rank = rank

    def replacement(self, value: str, key: bytes) -> str:
        if self.mode == "mask":
            return self.mask
        if self.mode == "remove":
            return ""
        return _token(self.label, value, key)


class _Run:
    """One call's hash key and counts."""

    __slots__ = ("counts", "key")

    def __init__(self, key: bytes, counts: Any) -> None:
        self.key = key
        self.counts = counts


class Redactor:
    """A compiled `redact_pii` step; immutable and safe to share between threads."""

    __slots__ = (
        "_by_pattern",
        "_custom",
        "_custom_set",
        "_fields",
        "_gate",
        "_gdpr",
        "detectors",
        "fields",
        "mode",
        "preset",
    )

    def __init__(
        self,
        *,
        detectors: tuple[str, ...],
        custom: tuple[tuple[str, Any], ...],
        mode: str,
        fields: tuple[Path, ...],
        preset: str | None,
    ) -> None:
        gdpr = preset == "gdpr"
        enabled = set(detectors) | ({"ip_address"} if gdpr else set())
        builtin: list[_Detector | None] = []
        for rank, name in enumerate(DETECTORS):
            if name in enabled:
                det_mode = "remove" if gdpr and name == "ip_address" else mode
                builtin.append(_Detector(name, _PATTERNS[name], det_mode, rank))
            else:
                builtin.append(None)
        set_ = object.__setattr__
        set_(self, "_by_pattern", tuple(builtin[index] for index in _PATTERN_DETECTOR))
        set_(
            self,
            "_custom",
            tuple(
                _Detector(name, (regex,), mode, len(DETECTORS) + i) for i, (name, regex) in enumerate(custom)
            ),
        )
        set_(self, "_custom_set", _re2_set([regex.pattern for _name, regex in custom]) if custom else None)
        set_(self, "_fields", tuple(path for path in fields if not (gdpr and path == ("user_id",))))
        set_(self, "_gate", _re2_gate)
        set_(self, "_gdpr", gdpr)
        set_(self, "detectors", tuple(name for name in DETECTORS if name in enabled))
        set_(self, "fields", fields)
        set_(self, "mode", mode)
        set_(self, "preset", preset)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("Redactor is immutable")

    def __repr__(self) -> str:
        return f"Redactor(detectors={self.detectors!r}, custom={len(self._custom)}, mode={self.mode!r})"

    # -- the step ---------------------------------------------------------------------------------

    def __call__(self, span: dict, ctx: TransformContext, report: TransformReport) -> dict:
        run = _Run(ctx.hash_key, report.redactions)
        out = span
        if self._gdpr:
            for root in ("metadata", "attributes"):
                for key in GDPR_IP_KEYS:
                    out = _delete(out, (root, *key.split(".")), 0, run)
        walk = self._walk
        for path in self._fields:
            out = _apply(out, path, 0, walk, run)
        if self._gdpr:
            user_id = span.get("user_id")
            if isinstance(user_id, (str, int)) and not isinstance(user_id, bool) and user_id != "":
                if out is span:
                    out = dict(span)
                out["user_id"] = _token("USER_ID", str(user_id), run.key)
                run.counts["user_id"] += 1
        return out

    def _walk(self, node: Any, run: _Run) -> Any:
        if isinstance(node, str):
            return self._text(node, run)
        if isinstance(node, dict):
            new = None
            for key, value in node.items():
                if isinstance(value, str):
                    changed = self._text(value, run)
                elif isinstance(value, (dict, list)):
                    changed = self._walk(value, run)
                else:
                    continue
                if changed is not value:
                    if new is None:
                        new = dict(node)
                    new[key] = changed
            return node if new is None else new
        if isinstance(node, list):
            items = None
            for i, value in enumerate(node):
                if isinstance(value, str):
                    changed = self._text(value, run)
                elif isinstance(value, (dict, list)):
                    changed = self._walk(value, run)
                else:
                    continue
                if changed is not value:
                    if items is None:
                        items = list(node)
                    items[i] = changed
            return node if items is None else items
        return node

    def _text(self, text: str, run: _Run) -> str:
        found: list[tuple[int, int, int, _Detector]] | None = None
        if len(text) >= _MIN_BUILTIN_LENGTH and not (len(text) < 20 and text.isalpha()):
            windows = self._gate(text)
            if windows:
                by_pattern = self._by_pattern
                for index, (start, end) in windows.items():
                    detector = by_pattern[index]
                    if detector is not None:
                        found = _find(detector, _ALL_PATTERNS[index], text, start, end, found)
        if self._custom_set is not None and text:
            data = text.encode("utf-8", "surrogatepass")
            hits = self._custom_set.Match(data)
            if hits:
                subject = data if len(data) == len(text) else text  # bytes offsets only when ASCII
                for index in hits:
                    found = _find_re2(self._custom[index], subject, found)
        if not found:
            return text
        found.sort(key=_order)
        parts = []
        position = 0
        counts = run.counts
        key = run.key
        for start, end, _rank, detector in found:
            if start < position:
                continue  # overlaps one already replaced
            parts.append(text[position:start])
            parts.append(detector.replacement(text[start:end], key))
            counts[detector.name] += 1
            position = end
        parts.append(text[position:])
        return "".join(parts)


def _order(item: tuple[int, int, int, Any]) -> tuple[int, int, int]:
    start, end, rank, _ = item
    return start, start - end, rank


def _find(detector: _Detector, pattern: _Pattern, text: str, start: int, end: int, found: list | None):
    """Add the checked matches of `pattern` around the prefilter window [start, end)."""
    length = len(text)
    pos = 0 if pattern.left is None else max(0, start - pattern.left)
    stop = length if pattern.right is None else min(length, end + pattern.right)
    regex = pattern.regex
    group = pattern.group
    check = pattern.check
    while pos <= stop:
        match = regex.search(text, pos, stop)
        if match is None:
            break
        if stop < length and match.end() + 8 > stop:
            # Near the window's edge the match (or its lookahead) may be cut short: redo unbounded.
            match = regex.search(text, match.start())
            if match is None:
                break
        first, last = match.span(group)
        if check is not None:
            kept = check(text[first:last])
            if kept is None:
                pos = match.start() + 1  # a value may still start inside the rejected candidate
                continue
            first, last = first + kept[0], first + kept[1]
        pos = max(last, match.start() + 1)
        if found is None:
            found = []
        found.append((first, last, detector.rank, detector))
    return found


def _find_re2(detector: _Detector, subject: str | bytes, found: list | None) -> list | None:
    for match in detector.patterns[0].finditer(subject):
        start, end = match.span()
        if end > start:
            if found is None:
                found = []
            found.append((start, end, detector.rank, detector))
    return found


# --------------------------------------------------------------------------------------------------
# Copy-on-write walks along field paths (the semantics of apps.routing.paths, without copying
# containers under a `*` that nothing changed).


def _resolve(node: dict, path: Path, i: int) -> tuple[Any, int]:
    """The existing key `path[i:]` addresses in `node` (dotted keys joined) and the next index."""
    key = path[i]
    if key in node:
        return key, i + 1
    for j in range(i + 1, len(path)):
        key = f"{key}.{path[j]}"
        if key in node:
            return key, j + 1
    return None, i + 1


def _apply(node: Any, path: Path, i: int, fn: Callable[[Any, _Run], Any], run: _Run) -> Any:
    if i == len(path):
        return fn(node, run)
    segment = path[i]
    if segment == "*":
        if isinstance(node, dict):
            new = None
            for key, value in node.items():
                changed = _apply(value, path, i + 1, fn, run)
                if changed is not value:
                    if new is None:
                        new = dict(node)
                    new[key] = changed
            return node if new is None else new
        if isinstance(node, list):
            items = None
            for index, value in enumerate(node):
                changed = _apply(value, path, i + 1, fn, run)
                if changed is not value:
                    if items is None:
                        items = list(node)
                    items[index] = changed
            return node if items is None else items
        return node
    if isinstance(node, list):
        if not segment.isdigit() or int(segment) >= len(node):
            return node
        index = int(segment)
        changed = _apply(node[index], path, i + 1, fn, run)
        if changed is node[index]:
            return node
        items = list(node)
        items[index] = changed
        return items
    if isinstance(node, dict):
        key, nxt = _resolve(node, path, i)
        if key is None:
            return node
        value = node[key]
        changed = _apply(value, path, nxt, fn, run)
        if changed is value:
            return node
        new = dict(node)
        new[key] = changed
        return new
    return node


def _delete(node: Any, path: Path, i: int, run: _Run) -> Any:
    """`node` without the key at `path` (counted as one IP address removed)."""
    if not isinstance(node, dict):
        return node
    key, nxt = _resolve(node, path, i)
    if key is None:
        return node
    if nxt == len(path):
        new = dict(node)
        del new[key]
        run.counts["ip_address"] += 1
        return new
    value = node[key]
    changed = _delete(value, path, nxt, run)
    if changed is value:
        return node
    new = dict(node)
    new[key] = changed
    return new


# --------------------------------------------------------------------------------------------------
# Compiling a spec.


def _string_list(value: Any, where: str, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise ConfigError(where, f"must be a list of {what}")
    return value


def _compile_custom(value: Any, where: str) -> tuple[tuple[str, Any], ...]:
    entries = _string_list(value, where, "objects with 'name' and 'pattern'")
    if len(entries) > MAX_CUSTOM:
        raise ConfigError(where, f"allows at most {MAX_CUSTOM} custom detectors")
    compiled: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        here = f"{where}[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(here, "must be an object with 'name' and 'pattern'")
        for key in entry:
            if key not in _CUSTOM_KEYS:
                raise ConfigError(
                    f"{here}.{key}", "is not a custom detector setting (use 'name' and 'pattern')"
                )
        name = entry.get("name")
        if not isinstance(name, str) or not _CUSTOM_NAME.fullmatch(name):
            raise ConfigError(f"{here}.name", "must be 1 to 40 characters of a-z, 0-9 and _")
        if name in _RESERVED_NAMES:
            raise ConfigError(f"{here}.name", f"'{name}' is the name of a built-in detector")
        if name in seen:
            raise ConfigError(f"{here}.name", f"'{name}' is used by another custom detector")
        seen.add(name)
        pattern = entry.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError(f"{here}.pattern", "must be a non-empty regular expression")
        if len(pattern) > MAX_PATTERN_LENGTH:
            raise ConfigError(f"{here}.pattern", f"is longer than {MAX_PATTERN_LENGTH} characters")
        try:
            regex = re2.compile(pattern, _RE2_OPTIONS)
        except re2.error as exc:
            reason = (
                exc.args[0].decode("utf-8", "replace") if exc.args and isinstance(exc.args[0], bytes) else exc
            )
            raise ConfigError(f"{here}.pattern", f"is not a valid RE2 regular expression: {reason}") from None
        if regex.fullmatch("") is not None:
            raise ConfigError(f"{here}.pattern", "matches the empty string")
        compiled.append((name, regex))
    return tuple(compiled)


def _compile_fields(value: Any, where: str) -> tuple[Path, ...]:
    items = _string_list(value, where, "field paths")
    if not items:
        raise ConfigError(where, "must name at least one field")
    if len(items) > MAX_FIELDS:
        raise ConfigError(where, f"allows at most {MAX_FIELDS} field paths")
    paths = [parse_path(item, where=f"{where}[{i}]") for i, item in enumerate(items)]
    # A path under another one would be scanned twice: keep the outer one only.
    kept: list[Path] = []
    for path in paths:
        if path in kept:
            continue
        if any(other != path and path[: len(other)] == other for other in paths):
            continue
        kept.append(path)
    return tuple(kept)


def compile_redactor(spec: dict, *, where: str) -> Redactor:
    """Validate a `redact_pii` spec and compile it; ConfigError names the offending field."""
    if not isinstance(spec, dict):
        raise ConfigError(where, "must be an object")
    for key in spec:
        if key not in _SPEC_KEYS:
            raise ConfigError(f"{where}.{key}", "is not a redact_pii setting")
    if "type" in spec and spec["type"] != "redact_pii":
        raise ConfigError(f"{where}.type", "must be 'redact_pii'")

    detectors: tuple[str, ...] = DETECTORS
    if "detectors" in spec:
        items = _string_list(spec["detectors"], f"{where}.detectors", "detector names")
        chosen: list[str] = []
        for i, name in enumerate(items):
            if not isinstance(name, str) or name not in DETECTORS:
                raise ConfigError(f"{where}.detectors[{i}]", f"must be one of {', '.join(DETECTORS)}")
            if name in chosen:
                raise ConfigError(f"{where}.detectors[{i}]", f"'{name}' is listed twice")
            chosen.append(name)
        detectors = tuple(chosen)

    custom = _compile_custom(spec["custom"], f"{where}.custom") if "custom" in spec else ()

    mode = spec.get("mode", "mask")
    if not isinstance(mode, str) or mode not in MODES:
        raise ConfigError(f"{where}.mode", f"must be one of {', '.join(MODES)}")

    preset = spec.get("preset")
    if "preset" in spec and (not isinstance(preset, str) or preset not in PRESETS):
        raise ConfigError(f"{where}.preset", f"must be one of {', '.join(PRESETS)}")

    fields_spec = spec.get("fields", list(DEFAULT_FIELDS))
    fields = _compile_fields(fields_spec, f"{where}.fields")

    if not detectors and not custom and preset is None:
        raise ConfigError(f"{where}.detectors", "selects nothing to redact (name a detector or add custom)")
    return Redactor(detectors=detectors, custom=custom, mode=mode, fields=fields, preset=preset)
