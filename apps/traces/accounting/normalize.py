"""Canonical provider keys and model names.

The provider of a span is the party that served and bills the call, so hosting
platforms keep their own key: Azure OpenAI is ``azure_openai`` and Amazon
Bedrock is ``bedrock``, while Gemini via AI Studio or Vertex AI is ``google``.
Unknown providers are kept, lower-cased, with spaces and dashes turned into
underscores.

Model names are lower-cased and stripped of routing prefixes (``openai/``,
``models/``, ``projects/.../models/``), Bedrock region and vendor prefixes and
version suffixes (``us.anthropic.claude-...-v1:0``) and Vertex ``@`` snapshots.
Claude versions are written with dashes (``claude-3.5-sonnet`` ->
``claude-3-5-sonnet``) and Llama versions with a dot (``llama3-1-70b`` ->
``llama-3.1-70b``). Dated snapshots are kept: resolving them to a price family
is the price table's job.
"""

import functools
import re

__all__ = ["normalize_model", "normalize_provider"]

_PROVIDER_ALIASES = {
    "openai": "openai",
    "open_ai": "openai",
    "azure": "azure_openai",
    "azure_openai": "azure_openai",
    "azureopenai": "azure_openai",
    "az.ai.openai": "azure_openai",
    "anthropic": "anthropic",
    "google": "google",
    "gemini": "google",
    "google_genai": "google",
    "google_ai_studio": "google",
    "vertex": "google",
    "vertex_ai": "google",
    "vertexai": "google",
    "google_vertex_ai": "google",
    "gcp.gemini": "google",
    "gcp.gen_ai": "google",
    "gcp.vertex_ai": "google",
    "mistral": "mistral",
    "mistralai": "mistral",
    "mistral_ai": "mistral",
    "meta": "meta",
    "meta_llama": "meta",
    "llama": "meta",
    "deepseek": "deepseek",
    "deepseek_ai": "deepseek",
    "xai": "xai",
    "x_ai": "xai",
    "x.ai": "xai",
    "grok": "xai",
    "cohere": "cohere",
    "bedrock": "bedrock",
    "aws_bedrock": "bedrock",
    "aws.bedrock": "bedrock",
    "amazon_bedrock": "bedrock",
    "groq": "groq",
    "together": "together",
    "together_ai": "together",
    "togetherai": "together",
    "fireworks": "fireworks",
    "fireworks_ai": "fireworks",
    "openrouter": "openrouter",
    "ollama": "ollama",
}

_MODEL_PROVIDERS = (
    (re.compile(r"^(?:gpt-|chatgpt-|o\d+(?:-|$)|text-embedding-(?:3|ada)|codex-)"), "openai"),
    (re.compile(r"^claude"), "anthropic"),
    (re.compile(r"^gemini"), "google"),
    (
        re.compile(
            r"^(?:mistral|open-mistral|open-mixtral|mixtral|codestral|ministral|pixtral|magistral|devstral)"
        ),
        "mistral",
    ),
    (re.compile(r"^llama"), "meta"),
    (re.compile(r"^deepseek"), "deepseek"),
    (re.compile(r"^grok"), "xai"),
    (re.compile(r"^(?:command|embed-(?:english|multilingual))"), "cohere"),
)

_BEDROCK_ID = re.compile(
    r"^(?:(?:us|eu|apac|ap|us-gov|ca|jp|au|global)\.)?"
    r"(?:anthropic|meta|mistral|cohere|amazon|ai21|deepseek|openai|writer|qwen)\.(?=[a-z])"
)
_BEDROCK_VERSION = re.compile(r"-v\d+:\d+$")
_CLAUDE_DOT = re.compile(r"(?<=\d)\.(?=\d)")
_LLAMA = re.compile(r"^(?:meta-)?llama-?(\d+)(?:[.-](\d+)(?=-|$))?")


def _provider_key(value: str) -> str:
    return re.sub(r"[\s-]+", "_", value.strip().lower())


@functools.lru_cache(maxsize=8192)
def normalize_provider(provider: str | None, model: str | None = None) -> str | None:
    """The canonical provider key, inferred from ``model`` when ``provider`` is empty."""
    if provider and provider.strip():
        key = _provider_key(provider)
        return _PROVIDER_ALIASES.get(key, key)
    if not model or not model.strip():
        return None
    raw = model.strip().lower()
    if "/" in raw:
        prefix = _PROVIDER_ALIASES.get(_provider_key(raw.split("/", 1)[0]))
        if prefix:
            return prefix
    if _BEDROCK_ID.match(raw.rsplit("/", 1)[-1]):
        return "bedrock"
    name = normalize_model(raw)
    if name:
        for pattern, key in _MODEL_PROVIDERS:
            if pattern.match(name):
                return key
    return None


@functools.lru_cache(maxsize=8192)
def normalize_model(model: str | None) -> str | None:
    """The canonical spelling of a model name, or None for an empty one."""
    if not model or not model.strip():
        return None
    name = model.strip().lower().rsplit("/", 1)[-1]
    if _BEDROCK_ID.match(name):
        name = _BEDROCK_ID.sub("", name, count=1)
        name = _BEDROCK_VERSION.sub("", name)
    name = name.replace("@", "-")
    if name.startswith("claude"):
        name = _CLAUDE_DOT.sub("-", name)
    match = _LLAMA.match(name)
    if match:
        version = match.group(1) + (f".{match.group(2)}" if match.group(2) else "")
        name = f"llama-{version}{name[match.end() :]}"
    return name or None
