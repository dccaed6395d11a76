"""Field paths into a canonical span: `model`, `metadata.tags.team`,
`request.messages.0.content`, `request.messages.*.content`.

A path is dot-separated. A segment of digits indexes a list; `*` stands for
every item of a list (or every value of an object). Keys that contain dots, as
OpenTelemetry attribute names do (`attributes.gen_ai.system`), resolve too: when
a segment is not a key, it is joined with the next ones until a key matches.

Writes are copy-on-write: they return a new root and copy only the containers
on the changed path, so one stored span can feed several destinations'
pipelines without any of them seeing another's changes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from apps.routing.errors import ConfigError

Path = tuple[str, ...]
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()

_SEGMENT = re.compile(r"[^.\s]+")
MAX_PATH_LENGTH = 256


def parse_path(text: Any, *, where: str, wildcards: bool = True) -> Path:
    """`"metadata.tags.team"` -> `("metadata", "tags", "team")`, or ConfigError."""
    if not isinstance(text, str) or not text:
        raise ConfigError(where, "must be a non-empty string field path such as 'metadata.tags.team'")
    if len(text) > MAX_PATH_LENGTH:
        raise ConfigError(where, f"is longer than {MAX_PATH_LENGTH} characters")
    segments = tuple(text.split("."))
    for segment in segments:
        if not _SEGMENT.fullmatch(segment):
            raise ConfigError(where, f"'{text}' is not a field path (empty segment or whitespace)")
        if segment == "*" and not wildcards:
            raise ConfigError(where, f"'{text}': '*' is not allowed here")
    return segments


def _child(node: Any, path: Path, i: int) -> tuple[Any, int]:
    """The value under `path[i]` (joining dotted keys) and the index after it."""
    segment = path[i]
    if isinstance(node, dict):
        if segment in node:
            return node[segment], i + 1
        key = segment
        for j in range(i + 1, len(path)):
            key = f"{key}.{path[j]}"
            if key in node:
                return node[key], j + 1
        return MISSING, i + 1
    if isinstance(node, list) and segment.isdigit():
        index = int(segment)
        return (node[index] if index < len(node) else MISSING), i + 1
    return MISSING, i + 1


def get_path(root: Any, path: Path) -> Any:
    """The value at `path`, or MISSING. A `*` segment yields the list of matches."""
    node = root
    i = 0
    while i < len(path):
        if path[i] == "*":
            return list(iter_path(node, path[i:]))
        node, i = _child(node, path, i)
        if node is MISSING:
            return MISSING
    return node


def compile_getter(path: Path) -> Callable[[Any], Any]:
    """`get_path` for one path, specialised for plain object keys (rule
    conditions run it for every span and every rule); anything unusual (a list
    index, a dotted key) takes the general walk."""
    if "*" in path:
        return lambda root: get_path(root, path)
    last = len(path) - 1

    def get(root: Any) -> Any:
        node = root
        for i, segment in enumerate(path):
            if type(node) is dict:
                found = node.get(segment, MISSING)
                if found is MISSING:
                    return MISSING if i == last else get_path(root, path)
                node = found
            elif node is None:
                return MISSING
            else:
                return get_path(root, path)
        return node

    if len(path) == 1:
        key = path[0]
        return lambda root: root.get(key, MISSING) if type(root) is dict else get_path(root, path)
    if len(path) == 2:
        first, second = path

        def get_two(root: Any) -> Any:
            node = root.get(first) if type(root) is dict else MISSING
            if type(node) is dict:
                return node.get(second, MISSING)
            if node is None and type(root) is dict and f"{first}.{second}" not in root:
                return MISSING
            return get_path(root, path)

        return get_two
    return get


def iter_path(root: Any, path: Path) -> Iterator[Any]:
    """Every value `path` reaches, expanding `*` segments."""
    if not path:
        yield root
        return
    if path[0] == "*":
        values = root.values() if isinstance(root, dict) else root if isinstance(root, list) else ()
        for value in values:
            yield from iter_path(value, path[1:])
        return
    node, i = _child(root, path, 0)
    if node is not MISSING:
        yield from iter_path(node, path[i:])


def _key(node: dict[str, Any], path: Path, i: int) -> tuple[str, int]:
    """The key `path[i:]` addresses in `node` (an existing dotted key wins) and the next index."""
    if path[i] in node:
        return path[i], i + 1
    key = path[i]
    for j in range(i + 1, len(path)):
        key = f"{key}.{path[j]}"
        if key in node:
            return key, j + 1
    return path[i], i + 1


def update_path(root: Any, path: Path, fn: Callable[[Any], Any], *, create: bool = False) -> Any:
    """A copy of `root` with `fn(old)` at `path` (every match of `*`).

    `fn` gets MISSING when nothing is there; returning MISSING deletes the key
    (or list item). With `create`, missing objects along the path are made.
    The original is never modified; untouched subtrees are shared.
    """
    if not path:
        return fn(root)
    segment = path[0]
    if segment == "*":
        if isinstance(root, list):
            items = [update_path(item, path[1:], fn, create=create) for item in root]
            return [item for item in items if item is not MISSING]
        if isinstance(root, dict):
            updated = {k: update_path(v, path[1:], fn, create=create) for k, v in root.items()}
            return {k: v for k, v in updated.items() if v is not MISSING}
        return root
    if isinstance(root, list) and segment.isdigit():
        index = int(segment)
        if index >= len(root):
            return root
        new = update_path(root[index], path[1:], fn, create=create)
        if new is root[index]:
            return root
        copy = list(root)
        if new is MISSING:
            del copy[index]
        else:
            copy[index] = new
        return copy
    if root is MISSING or root is None:
        if not create:
            return root
        root = {}
    if not isinstance(root, dict):
        return root
    key, nxt = _key(root, path, 0)
    old = root.get(key, MISSING)
    if old is MISSING and not create and nxt < len(path):
        return root
    new = update_path(old, path[nxt:], fn, create=create)
    if new is old:
        return root
    copy = dict(root)
    if new is MISSING:
        copy.pop(key, None)
    else:
        copy[key] = new
    return copy


def set_path(root: Any, path: Path, value: Any) -> Any:
    return update_path(root, path, lambda _old: value, create=True)


def delete_path(root: Any, path: Path) -> Any:
    return update_path(root, path, lambda _old: MISSING)
