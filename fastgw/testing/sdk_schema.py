"""The official SDKs' request TypedDicts as validators: pydantic ``TypeAdapter`` plus known-key tables.

:mod:`fastgw.testing.strict` builds on this. ``pydantic``, ``openai`` and ``anthropic`` are test extras, not runtime
dependencies, so nothing here imports them at module level: each ``*_schema()`` imports them on first use (and is
cached), which keeps ``python -m fastgw.testing.fake_upstream`` working without them.

Two pydantic behaviours shape this module. TypedDict validation ignores unknown keys, so known-key tables
(:func:`tag_keys`) back the "unknown parameter" checks. And ``Iterable[...]`` fields (``messages``, ``tools``...) are
validated lazily, only when iterated, so :func:`validate` walks the result and drains every lazy iterator.
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    import pydantic

JsonPath: TypeAlias = tuple[str | int, ...]
"""A location in a request body: keys and list indices from the top."""

_WRAPPERS: typing.Final = frozenset(
    {typing.Required, typing.NotRequired, typing.Optional, typing.Union, typing.Annotated, types.UnionType}
)
_CONTAINERS: typing.Final = frozenset({list, tuple, set, frozenset, Iterable, Sequence, dict, typing.Mapping})
_PYDANTIC_TAG: typing.Final = re.compile(r"[A-Z]\w*|\w+\[.*\]|str|int|float|bool|dict|list|none", re.DOTALL)
"""``loc`` segments naming a union branch or a pydantic wrapper, not a key of the body."""


class SchemaError(ValueError):
    """The body does not fit the SDK type.

    Attributes:
        path: Where, in body keys and indices (union branch names removed).
        message: pydantic's message for the most relevant error.
    """

    def __init__(self, path: JsonPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def keys(*typed_dicts: Any) -> frozenset[str]:
    """Every key (required or optional) of the TypedDicts."""
    return frozenset(k for t in typed_dicts for k in (*t.__required_keys__, *t.__optional_keys__))


def required(typed_dict: Any) -> frozenset[str]:
    """The required keys of a TypedDict, from its resolved annotations (``__required_keys__`` is wrong for
    ``Required[...]`` under postponed annotations, which the SDKs use)."""
    total = getattr(typed_dict, "__total__", True)
    found = set()
    for key, hint in hints(typed_dict).items():
        origin = typing.get_origin(hint)
        if origin is typing.Required or (total and origin is not typing.NotRequired):
            found.add(key)
    return frozenset(found)


def hints(typed_dict: Any) -> dict[str, Any]:
    """The resolved annotations of a TypedDict (the SDKs use postponed annotations)."""
    return typing.get_type_hints(typed_dict, include_extras=True)


def typed_dicts(hint: Any) -> list[Any]:
    """The TypedDicts a field annotation admits, through Required/Optional/Union/Iterable/List wrappers."""
    if _is_typed_dict(hint):
        return [hint]
    origin = typing.get_origin(hint)
    if origin in _WRAPPERS or origin in _CONTAINERS:
        args = typing.get_args(hint)
        if origin is typing.Annotated:
            args = args[:1]
        elif origin in (dict, typing.Mapping):
            args = args[1:]
        return [found for arg in args for found in typed_dicts(arg)]
    return []


def _is_typed_dict(hint: Any) -> bool:
    """Whether ``hint`` is a TypedDict class (``typing.is_typeddict`` misses ``typing_extensions`` ones)."""
    return isinstance(hint, type) and issubclass(hint, dict) and hasattr(hint, "__required_keys__")


def literals(hint: Any) -> list[str]:
    """The string values of a ``Literal`` annotation (through Required/Optional), or []."""
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return [value for value in typing.get_args(hint) if isinstance(value, str)]
    if origin in _WRAPPERS:
        return [value for arg in typing.get_args(hint) for value in literals(arg)]
    return []


def by_tag(members: Iterable[Any], tag: str, untagged: str | None = None) -> dict[str, list[Any]]:
    """Group TypedDicts by the Literal value of their ``tag`` key (``untagged`` for those without one)."""
    grouped: dict[str, list[Any]] = {}
    for member in members:
        values = literals(hints(member).get(tag))
        for value in values or ([untagged] if untagged else []):
            grouped.setdefault(value, []).append(member)
    return grouped


def tag_keys(members: Iterable[Any], tag: str, untagged: str | None = None) -> dict[str, frozenset[str]]:
    """Tag value -> every key a TypedDict with that tag may carry."""
    return {value: keys(*group) for value, group in by_tag(members, tag, untagged).items()}


def field_tag_keys(members: Iterable[Any], field: str, tag: str = "type") -> dict[str, frozenset[str]]:
    """For the TypedDicts' ``field`` (e.g. a message's ``content``): part tag -> keys, merged over all members."""
    merged: dict[str, frozenset[str]] = {}
    for member in members:
        hint = hints(member).get(field)
        for value, found in tag_keys(typed_dicts(hint), tag).items():
            merged[value] = merged.get(value, frozenset()) | found
    return merged


def adapter(hint: Any) -> pydantic.TypeAdapter[Any]:
    """A pydantic validator for an SDK type."""
    import pydantic

    return pydantic.TypeAdapter(hint)


def validate(adapter: pydantic.TypeAdapter[Any], value: Any, at: JsonPath = ()) -> None:
    """Validate ``value`` completely (lazy ``Iterable`` fields included).

    Raises:
        SchemaError: For the most relevant pydantic error, with its path in the body.
    """
    import pydantic

    try:
        _drain(adapter.validate_python(value), at)
    except pydantic.ValidationError as error:
        raise _schema_error(error, at) from None


def _drain(value: Any, at: JsonPath) -> None:
    """Iterate every lazy validator inside a validated value, so nested errors surface."""
    import pydantic

    if isinstance(value, dict):
        for key, item in value.items():
            _drain(item, (*at, key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _drain(item, (*at, index))
    elif isinstance(value, Iterator):
        try:
            items = list(value)
        except pydantic.ValidationError as error:
            raise _schema_error(error, at) from None
        for index, item in enumerate(items):
            _drain(item, (*at, index))


def _schema_error(error: pydantic.ValidationError, at: JsonPath) -> SchemaError:
    """The error to report: not one from a union branch the value plainly is not (wrong ``type``/``role``).

    When every branch is ruled out by its tag, report the tag itself, at the deepest level whose enclosing branch
    matched, with every value allowed there.
    """
    errors = error.errors()
    dead: list[tuple[Any, ...]] = []
    for item in errors:
        loc = tuple(item["loc"])
        if _tag_error(item):
            dead.append(loc[:-1])  # this TypedDict's tag differs: the value is another member of the union
        elif item["type"].endswith("_type") and loc and _branch(loc[-1]):
            dead.append(loc)  # the value is not of this branch's kind (a list for a ``str`` branch, ...)
    alive = [item for item in errors if not any(_under(tuple(item["loc"]), d) for d in dead)]
    if alive:
        return SchemaError((*at, *_body_path(alive[0]["loc"])), alive[0]["msg"])
    tags = [
        item
        for item in errors
        if _tag_error(item)
        and not any(_under(tuple(item["loc"])[:-1], d) and len(d) < len(item["loc"]) - 1 for d in dead)
    ]
    if not tags:
        return SchemaError((*at, *_body_path(errors[0]["loc"])), errors[0]["msg"])
    deepest = max(len(_body_path(item["loc"])) for item in tags)
    tags = [item for item in tags if len(_body_path(item["loc"])) == deepest]
    expected = " or ".join(dict.fromkeys(str(item.get("ctx", {}).get("expected", "?")) for item in tags))
    return SchemaError((*at, *_body_path(tags[0]["loc"])), f"Input should be {expected}")


def _tag_error(item: Any) -> bool:
    loc = item["loc"]
    return bool(item["type"] == "literal_error" and len(loc) >= 2 and loc[-1] in ("type", "role") and _branch(loc[-2]))


def _under(loc: tuple[Any, ...], prefix: tuple[Any, ...]) -> bool:
    return loc[: len(prefix)] == prefix


def _body_path(loc: Sequence[Any]) -> JsonPath:
    return tuple(segment for segment in loc if not _branch(segment))


def _branch(segment: object) -> bool:
    return isinstance(segment, str) and _PYDANTIC_TAG.fullmatch(segment) is not None


@dataclass(frozen=True)
class ChatSchema:
    """OpenAI Chat Completions request types."""

    params: dict[bool, pydantic.TypeAdapter[Any]]
    top: frozenset[str]
    roles: dict[str, frozenset[str]]
    parts: dict[str, frozenset[str]]
    tools: dict[str, frozenset[str]]
    function: frozenset[str]


@dataclass(frozen=True)
class ResponsesSchema:
    """OpenAI Responses request types."""

    params: dict[bool, pydantic.TypeAdapter[Any]]
    top: frozenset[str]
    stream_options: frozenset[str]
    items: dict[str, list[Any]]
    item_keys: dict[str, frozenset[str]]
    optional: dict[Any, frozenset[str]]
    item_adapters: dict[Any, pydantic.TypeAdapter[Any]]
    parts: dict[str, frozenset[str]]
    tools: dict[str, frozenset[str]]


@dataclass(frozen=True)
class MessagesSchema:
    """Anthropic Messages request types (the beta ones for beta requests)."""

    params: dict[bool, pydantic.TypeAdapter[Any]]
    top: frozenset[str]
    roles: dict[str, frozenset[str]]
    blocks: dict[str, frozenset[str]]
    tools: dict[str, frozenset[str]]


@cache
def chat_schema() -> ChatSchema:
    """The Chat schema from the openai SDK (imported here, on first use)."""
    from openai.types.chat import completion_create_params as params

    base = hints(params.CompletionCreateParamsBase)
    messages = typed_dicts(base["messages"])
    tools = typed_dicts(base["tools"])
    return ChatSchema(
        params={
            True: adapter(params.CompletionCreateParamsStreaming),
            False: adapter(params.CompletionCreateParamsNonStreaming),
        },
        top=keys(params.CompletionCreateParamsBase) | {"stream"},
        roles=tag_keys(messages, "role"),
        parts=field_tag_keys(messages, "content"),
        tools=tag_keys(tools, "type"),
        function=frozenset().union(*(keys(*typed_dicts(hints(t).get("function"))) for t in tools)),
    )


@cache
def responses_schema() -> ResponsesSchema:
    """The Responses schema from the openai SDK (imported here, on first use)."""
    from openai.types.responses import response_create_params as params

    base = hints(params.ResponseCreateParamsBase)
    members = typed_dicts(base["input"])
    items = by_tag(members, "type", untagged="message")
    output_parts = field_tag_keys(members, "output")
    parts = field_tag_keys(members, "content")
    for tag, found in output_parts.items():
        parts[tag] = parts.get(tag, frozenset()) | found
    return ResponsesSchema(
        params={
            True: adapter(params.ResponseCreateParamsStreaming),
            False: adapter(params.ResponseCreateParamsNonStreaming),
        },
        top=keys(params.ResponseCreateParamsBase) | {"stream"},
        stream_options=keys(*typed_dicts(base["stream_options"])),
        items=items,
        item_keys={kind: keys(*group) for kind, group in items.items()},
        optional={member: keys(member) - required(member) for member in members},
        item_adapters={member: adapter(member) for member in members},
        parts=parts,
        tools=tag_keys(typed_dicts(base["tools"]), "type"),
    )


@cache
def messages_schema(beta: bool) -> MessagesSchema:
    """The Messages schema from the anthropic SDK (imported here, on first use); ``beta`` picks the beta types."""
    if beta:
        from anthropic.types.beta import message_create_params as params
    else:
        from anthropic.types import message_create_params as params  # type: ignore[no-redef]

    base = hints(params.MessageCreateParamsBase)
    messages = typed_dicts(base["messages"])
    blocks = field_tag_keys(messages, "content")
    for nested in [t for group in by_tag(typed_dicts_of(messages, "content"), "type").values() for t in group]:
        for tag, found in field_tag_keys([nested], "content").items():  # tool_result (and similar) block content
            blocks[tag] = blocks.get(tag, frozenset()) | found
    for tag, found in tag_keys(typed_dicts(base["system"]), "type").items():
        blocks[tag] = blocks.get(tag, frozenset()) | found
    return MessagesSchema(
        params={
            True: adapter(params.MessageCreateParamsStreaming),
            False: adapter(params.MessageCreateParamsNonStreaming),
        },
        top=keys(params.MessageCreateParamsBase) | {"stream"},
        roles=tag_keys(messages, "role"),
        blocks=blocks,
        tools=tag_keys(typed_dicts(base["tools"]), "type", untagged="custom"),
    )


def typed_dicts_of(members: Iterable[Any], field: str) -> list[Any]:
    """The TypedDicts the members' ``field`` admits, over all members."""
    return [found for member in members for found in typed_dicts(hints(member).get(field))]
