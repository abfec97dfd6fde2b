"""The management API's OpenAPI 3.1 document (`GET /openapi.json`) and its HTML page (`GET /docs`).

Both are generated from `llmux.manage.routes.ROUTES`, the registry the aiohttp routes come from,
so they describe exactly what is mounted: request bodies, query parameters and answers are the
msgspec types the pipeline decodes and encodes (`msgspec.json.schema_components`), and every
operation lists the errors the pipeline can answer in the OpenAI error shape. `/docs` is a
self-contained page (inline CSS, no scripts, no CDN) rendered from the same document. Both are
public: they describe the API, not its data, and every operation still needs its credential.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from aiohttp import web

from llmux import __version__
from llmux.manage.routes import ROUTES, Endpoint

__all__ = ["ErrorBody", "ErrorDetail", "add_openapi_routes", "build_document", "render_docs"]

_REF = "#/components/schemas/{name}"
_ERRORS = {
    "400": "The body is not JSON, or a value is invalid (`param` names it).",
    "401": "No credential, or an unknown, blocked or expired key.",
    "403": "The caller lacks the right this needs (the message names it).",
    "404": "No such object, or one the caller may not see.",
    "422": "A field fails its schema (`param` names it).",
}
_WRITE_ERRORS = {"409": "The change conflicts with the current state."}


class ErrorDetail(msgspec.Struct, kw_only=True):
    """What went wrong, in OpenAI's error shape."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(msgspec.Struct, kw_only=True):
    """Every error answer: `{"error": {...}}`."""

    error: ErrorDetail


def add_openapi_routes(app: web.Application, routes: Sequence[Endpoint] = ROUTES) -> None:
    """Serve the document for `routes` at `/openapi.json` and its page at `/docs`."""
    document = build_document(routes)
    body = msgspec.json.encode(document)
    page = render_docs(document)

    async def openapi_json(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async def docs(request: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    app.router.add_get("/openapi.json", openapi_json)
    app.router.add_get("/docs", docs)


def build_document(routes: Sequence[Endpoint]) -> dict[str, Any]:
    """The OpenAPI 3.1 document describing `routes`."""
    types = _schema_types(routes)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = dict(zip(types, schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        operation = _operation(route, schema_of, components)
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "llmux admin API",
            "version": __version__,
            "description": "LiteLLM-compatible management API on the admin port.",
        },
        "tags": [{"name": tag} for tag in dict.fromkeys(route.tag for route in routes)],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The master key, or a virtual key acting with its owner's"
                    " rights (not an llm_api key).",
                }
            },
        },
    }


def _schema_types(routes: Iterable[Endpoint]) -> list[Any]:
    """Every type the routes use that msgspec can describe, once each, errors included."""
    found: list[Any] = [ErrorBody]
    for route in routes:
        for kind in (route.body, route.query, route.response):
            if kind is not None and kind not in found and _describable(kind):
                found.append(kind)
    return found


def _describable(kind: Any) -> bool:
    try:
        msgspec.json.schema_components([kind], ref_template=_REF)
    except (TypeError, ValueError):
        return False
    return True


def _operation(
    route: Endpoint, schema_of: dict[Any, Any], components: dict[str, Any]
) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "tags": [route.tag],
        "responses": _responses(route, schema_of),
    }
    if route.query is not None and route.query in schema_of:
        operation["parameters"] = _query_parameters(_resolve(schema_of[route.query], components))
    if route.body is not None and route.body in schema_of:
        operation["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": schema_of[route.body]}},
        }
    return operation


def _resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """The component a `$ref` schema points to (msgspec names colliding types uniquely)."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    found: dict[str, Any] = components[str(ref).rsplit("/", 1)[-1]]
    return found


def _operation_id(route: Endpoint) -> str:
    slug = route.path.strip("/").replace("/", "_").replace("{", "").replace("}", "")
    return f"{route.method.lower()}_{slug}"


def _responses(route: Endpoint, schema_of: dict[Any, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": "Success."}
    if route.response in schema_of:
        ok["content"] = {"application/json": {"schema": schema_of[route.response]}}
    error = {"application/json": {"schema": schema_of[ErrorBody]}}
    responses: dict[str, Any] = {"200": ok}
    errors = {**_ERRORS, **(_WRITE_ERRORS if route.writes else {})}
    if route.body is None and route.query is None:
        errors = {code: text for code, text in errors.items() if code not in ("400", "422")}
    for code, text in sorted(errors.items()):
        responses[code] = {"description": text, "content": error}
    return responses


def _query_parameters(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One `in: query` parameter per field of a query Struct's schema."""
    required = set(schema.get("required", ()))
    parameters = []
    for name, field in schema.get("properties", {}).items():
        field = _without_null(field)
        parameter: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": field,
        }
        if "description" in field:
            parameter["description"] = field["description"]
        parameters.append(parameter)
    return parameters


def _without_null(field: dict[str, Any]) -> dict[str, Any]:
    """A query value is text or absent, never JSON null: drop the null branch of an optional."""
    options = field.get("anyOf")
    if options is None:
        return field
    kept = [option for option in options if option != {"type": "null"}]
    rest = {key: value for key, value in field.items() if key not in ("anyOf", "default")}
    if len(kept) == 1:
        return {**rest, **kept[0]}
    return {**rest, "anyOf": kept}


def render_docs(document: dict[str, Any]) -> str:
    """A self-contained HTML page listing every operation and schema of `document`."""
    info = document["info"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_text(info['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_text(info['title'])} <small>{_text(info['version'])}</small></h1>",
        f"<p>{_text(info.get('description', ''))} Authenticate with"
        " <code>Authorization: Bearer &lt;key&gt;</code>. Machine-readable:"
        " <a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            by_tag.setdefault(operation["tags"][0], []).append((method, path, operation))
    parts.append(_contents(by_tag))
    for tag, operations in by_tag.items():
        parts.append(f"<h2 id='tag-{_text(tag)}'>{_text(tag)}</h2>")
        parts.extend(_render_operation(method, path, op) for method, path, op in operations)
    parts.append("<h2 id='schemas'>Schemas</h2>")
    for name, schema in document["components"]["schemas"].items():
        parts.append(_render_schema(name, schema))
    parts.append("</body></html>")
    return "\n".join(parts)


def _contents(by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]]) -> str:
    links = "".join(f"<li><a href='#tag-{_text(tag)}'>{_text(tag)}</a></li>" for tag in by_tag)
    return f"<nav><ul>{links}<li><a href='#schemas'>Schemas</a></li></ul></nav>"


def _render_operation(method: str, path: str, operation: dict[str, Any]) -> str:
    rows = [
        f"<section class='op' id='{_text(operation['operationId'])}'>",
        f"<h3><span class='method {method}'>{method.upper()}</span> <code>{_text(path)}</code>"
        "</h3>",
        f"<p>{_text(operation['summary'])}</p>",
    ]
    parameters = operation.get("parameters", [])
    if parameters:
        rows.append(
            "<h4>Query parameters</h4><table><tr><th>name</th><th>type</th>"
            "<th>required</th><th>description</th></tr>"
        )
        for parameter in parameters:
            rows.append(
                f"<tr><td><code>{_text(parameter['name'])}</code></td>"
                f"<td>{_type_label(parameter['schema'])}</td>"
                f"<td>{'yes' if parameter['required'] else 'no'}</td>"
                f"<td>{_text(parameter.get('description', ''))}</td></tr>"
            )
        rows.append("</table>")
    body = operation.get("requestBody")
    if body is not None:
        schema = body["content"]["application/json"]["schema"]
        rows.append(f"<h4>Request body</h4><p>JSON: {_type_label(schema)}</p>")
    rows.append("<h4>Responses</h4><table><tr><th>status</th><th>body</th><th></th></tr>")
    for status, response in operation["responses"].items():
        content = response.get("content", {}).get("application/json")
        label = _type_label(content["schema"]) if content else ""
        rows.append(
            f"<tr><td>{_text(status)}</td><td>{label}</td>"
            f"<td>{_text(response['description'])}</td></tr>"
        )
    rows.append("</table></section>")
    return "\n".join(rows)


def _render_schema(name: str, schema: dict[str, Any]) -> str:
    rows = [f"<section class='schema' id='schema-{_text(name)}'><h3>{_text(name)}</h3>"]
    if "description" in schema:
        rows.append(f"<p>{_text(schema['description'])}</p>")
    properties = schema.get("properties")
    if properties is None:
        rows.append(f"<p>{_type_label(schema)}</p></section>")
        return "\n".join(rows)
    required = set(schema.get("required", ()))
    rows.append("<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>")
    for field, spec in properties.items():
        rows.append(
            f"<tr><td><code>{_text(field)}</code></td><td>{_type_label(spec)}</td>"
            f"<td>{'yes' if field in required else 'no'}</td>"
            f"<td>{_text(_description(spec))}</td></tr>"
        )
    rows.append("</table></section>")
    return "\n".join(rows)


def _description(spec: dict[str, Any]) -> str:
    if "description" in spec:
        return str(spec["description"])
    for option in spec.get("anyOf", ()):
        if "description" in option:
            return str(option["description"])
    return ""


def _type_label(schema: dict[str, Any]) -> str:
    """A short HTML label for a schema: a link for a reference, `a | b` for a union."""
    if "$ref" in schema:
        name = str(schema["$ref"]).rsplit("/", 1)[-1]
        return f"<a href='#schema-{_text(name)}'>{_text(name)}</a>"
    if "anyOf" in schema:
        return " | ".join(_type_label(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(f"<code>{_text(repr(value))}</code>" for value in schema["enum"])
    if "const" in schema:
        return f"<code>{_text(repr(schema['const']))}</code>"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type_label(schema.get('items', {}))}"
    if kind == "object" and isinstance(schema.get("additionalProperties"), dict):
        return f"map of {_type_label(schema['additionalProperties'])}"
    label = _text(str(kind))
    if "format" in schema:
        label += f" ({_text(schema['format'])})"
    return label


def _text(value: object) -> str:
    return html.escape(str(value), quote=True)


_CSS = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
h1 small{font-size:.5em;color:#666}h2{border-bottom:1px solid #ddd;margin-top:2.5rem}
code{background:#f4f4f4;padding:0 .25em;border-radius:3px}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #ddd;padding:.25rem .5rem;text-align:left;vertical-align:top}
.op,.schema{margin:1.5rem 0}.method{font-weight:bold;padding:0 .4em;border-radius:3px;color:#fff}
.get{background:#2b7bb9}.post{background:#3a9d5d}.put,.patch{background:#c68a1d}
.delete{background:#c0392b}nav ul{columns:3}
"""
