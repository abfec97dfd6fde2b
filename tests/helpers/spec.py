"""Validators for named schemas of the OpenAI OpenAPI spec in `../shared/specs`.

The spec is OpenAPI 3.1 but still carries OAS 3.0 `nullable: true` keywords, which a Draft
2020-12 validator ignores, and it declares a stream chunk's `finish_reason` as a non-null string
although the API sends null on every chunk but the last. `normalise` fixes both, as described in
`shared/reference/test-tools.md` section 2. The YAML takes seconds to load, so it is loaded once
per process and every validator is built once per schema name.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

__all__ = ["SPEC_PATH", "load_spec", "normalise", "schema_error", "validator"]

SPEC_PATH = Path(__file__).resolve().parents[2] / ".." / "shared" / "specs" / "openai-openapi.yaml"
"""Where CI finds the spec: `shared/` is a sibling of the repository clone."""

_URN = "urn:openai"
_COMBINATORS = ("$ref", "allOf", "oneOf", "anyOf")


@functools.cache
def load_spec() -> dict[str, Any]:
    """The normalised spec; fails the test with a clear message when the file is missing."""
    if not SPEC_PATH.is_file():
        pytest.fail(
            f"OpenAI OpenAPI spec not found at {SPEC_PATH.resolve()}: the conformance tests need"
            " ../shared/specs/openai-openapi.yaml next to the repository clone.",
            pytrace=False,
        )
    with SPEC_PATH.open("rb") as handle:
        spec: dict[str, Any] = yaml.load(handle, Loader=yaml.CSafeLoader)
    normalise(spec)
    return spec


def normalise(spec: dict[str, Any]) -> None:
    """Turn `nullable: true` into type unions and let stream chunks carry a null finish_reason."""
    _walk(spec)
    choice = spec["components"]["schemas"]["CreateChatCompletionStreamResponse"]["properties"][
        "choices"
    ]["items"]
    finish_reason = choice["properties"]["finish_reason"]
    finish_reason["type"] = ["string", "null"]
    enum = finish_reason.setdefault("enum", [])
    if None not in enum:
        enum.append(None)


def _walk(node: Any) -> None:
    if isinstance(node, dict):
        if node.pop("nullable", False) is True:
            _allow_null(node)
        for value in node.values():
            _walk(value)
    elif isinstance(node, list):
        for value in node:
            _walk(value)


def _allow_null(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        kind.append("null")
    elif kind is None and any(key in schema for key in _COMBINATORS):
        moved = {key: schema.pop(key) for key in _COMBINATORS if key in schema}
        schema["anyOf"] = [moved, {"type": "null"}]
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"].append(None)


@functools.cache
def _registry() -> Registry:
    resource = Resource.from_contents(load_spec(), default_specification=DRAFT202012)
    registry: Registry = Registry().with_resource(_URN, resource)
    return registry


@functools.cache
def validator(schema: str) -> Draft202012Validator:
    """A Draft 2020-12 validator for `components.schemas.<schema>`, built once per name."""
    if schema not in load_spec()["components"]["schemas"]:
        raise KeyError(f"the OpenAI spec has no schema named {schema!r}")
    return Draft202012Validator(
        {"$ref": f"{_URN}#/components/schemas/{schema}"}, registry=_registry()
    )


def schema_error(schema: str, instance: Any) -> str | None:
    """None when `instance` is valid against `schema`, else the most relevant error, readable."""
    errors = [_within_matching_branch(error) for error in validator(schema).iter_errors(instance)]
    error = best_match(errors)
    if error is None:
        return None
    where = "".join(f"[{part!r}]" for part in error.absolute_path) or "(root)"
    return f"{schema} at {where}: {_shorten(error.message)}"


def _within_matching_branch(error: ValidationError) -> ValidationError:
    """For a failed anyOf/oneOf of `type`-tagged objects, the error inside the branch whose tag
    matches (e.g. `response.created` in ResponseStreamEvent), instead of "not valid under any"."""
    branches: dict[Any, list[ValidationError]] = {}
    for sub in error.context or ():
        branches.setdefault(sub.schema_path[0], []).append(sub)
    tagged = [
        errors
        for errors in branches.values()
        if not any(list(sub.relative_path) == ["type"] for sub in errors)
    ]
    if len(branches) < 2 or len(tagged) != 1:
        return error
    inner = best_match(_within_matching_branch(sub) for sub in tagged[0])
    return error if inner is None else inner


def _shorten(message: str, limit: int = 400) -> str:
    return message if len(message) <= limit else message[:limit] + " ..."
