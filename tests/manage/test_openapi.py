"""`GET /openapi.json` and `GET /docs` on a live admin port: generated from the route registry,
valid, public, and honoured by the API itself (schemathesis finds no 500 and no schema drift)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import llmux.manage.endpoints  # noqa: F401  (declares every endpoint)
from llmux.manage.openapi import build_document
from llmux.manage.routes import ROUTES
from llmux.serve import Gateway
from tests.helpers.gateway import running_gateway
from tests.helpers.governance import MASTER_KEY, governed_config
from tests.helpers.manage import admin_call

SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SCHEMATHESIS_LIMIT = 90.0
"""Seconds the schemathesis run may take before the test fails."""


@pytest.fixture
async def gateway() -> AsyncIterator[Gateway]:
    """A governed gateway (master key set) whose upstream is never reached."""
    async with running_gateway(governed_config("http://127.0.0.1:9/v1")) as running:
        yield running


@pytest.fixture
async def document(gateway: Gateway) -> dict[str, Any]:
    """The served OpenAPI document."""
    reply = await admin_call(gateway, "GET", "/openapi.json", key=None)
    assert reply.status == 200
    served: dict[str, Any] = reply.json
    return served


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    """One operation of the document."""
    found: dict[str, Any] = document["paths"][path][method.lower()]
    return found


def component(document: dict[str, Any], ref: str) -> dict[str, Any]:
    """The schema a `$ref` names."""
    found: dict[str, Any] = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
    return found


async def test_document_is_openapi_3_1_with_bearer_security(document: dict[str, Any]) -> None:
    """The document says OpenAPI 3.1.0 and requires a bearer credential everywhere."""
    assert document["openapi"] == "3.1.0"
    assert document["security"] == [{"bearer": []}]
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")


async def test_every_registered_endpoint_is_documented(document: dict[str, Any]) -> None:
    """Each declared route, whoever registered it, is an operation of the document."""
    documented = {
        (method.upper(), path) for path, ops in document["paths"].items() for method in ops
    }
    assert documented == {(route.method, route.path) for route in ROUTES}


async def test_operation_ids_are_unique(document: dict[str, Any]) -> None:
    """No two operations share an operationId."""
    ids = [op["operationId"] for ops in document["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


async def test_request_body_is_the_decoded_struct(document: dict[str, Any]) -> None:
    """The cooldown body schema is the Struct the pipeline decodes: fields, types, no extras."""
    op = operation(document, "POST", "/control/deployments/cooldown")
    schema = component(document, op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
    assert set(schema["properties"]) == {"deployment", "seconds", "clear"}
    assert schema["required"] == ["deployment"]
    assert schema["properties"]["deployment"]["type"] == "string"


async def test_query_struct_becomes_query_parameters(document: dict[str, Any]) -> None:
    """`/model/info` lists its filters as optional string query parameters."""
    parameters = operation(document, "GET", "/model/info")["parameters"]
    assert [(p["name"], p["in"], p["required"], p["schema"]["type"]) for p in parameters] == [
        ("litellm_model_id", "query", False, "string"),
        ("model", "query", False, "string"),
    ]


async def test_answers_and_errors_are_described(document: dict[str, Any]) -> None:
    """A write documents its answer and the OpenAI-shaped 400/401/403/404/409/422 errors."""
    responses = operation(document, "POST", "/control/config/reload")["responses"]
    assert sorted(responses) == ["200", "400", "401", "403", "404", "409", "422"]
    ok = component(document, responses["200"]["content"]["application/json"]["schema"]["$ref"])
    assert set(ok["properties"]) == {"path", "checksum", "loaded_at"}
    error = component(document, responses["409"]["content"]["application/json"]["schema"]["$ref"])
    assert error["required"] == ["error"]


async def test_every_component_is_valid_json_schema(document: dict[str, Any]) -> None:
    """Each component schema passes the JSON Schema 2020-12 meta-schema (OpenAPI 3.1's)."""
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)


async def test_live_answer_conforms_to_its_schema(
    gateway: Gateway, document: dict[str, Any]
) -> None:
    """`GET /control/deployments` answers what the document says it answers."""
    reply = await admin_call(gateway, "GET", "/control/deployments")
    op = operation(document, "GET", "/control/deployments")
    schema = {
        **op["responses"]["200"]["content"]["application/json"]["schema"],
        "components": document["components"],
    }
    jsonschema.validate(reply.json, schema)


async def test_document_matches_the_registry_build(document: dict[str, Any]) -> None:
    """The served document is exactly `build_document(ROUTES)`: nothing hand-written."""
    assert document == build_document(ROUTES)


async def test_openapi_and_docs_are_public(gateway: Gateway) -> None:
    """Both answer without a credential even with a master key set."""
    served = await admin_call(gateway, "GET", "/openapi.json", key=None)
    docs = await admin_call(gateway, "GET", "/docs", key=None)
    assert (served.status, docs.status) == (200, 200)
    assert docs.headers["Content-Type"].startswith("text/html")


async def test_docs_page_lists_every_operation(gateway: Gateway, document: dict[str, Any]) -> None:
    """The HTML page has a section per operation with its method and path."""
    page = (await admin_call(gateway, "GET", "/docs", key=None)).body.decode()
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            assert f"id='{op['operationId']}'" in page
            assert f"{method.upper()}</span> <code>{path}</code>" in page


async def test_docs_page_is_self_contained(gateway: Gateway) -> None:
    """No scripts and nothing loaded from another host: no CDN."""
    page = (await admin_call(gateway, "GET", "/docs", key=None)).body.decode()
    assert "<script" not in page
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)


async def test_docs_page_escapes_schema_text(gateway: Gateway) -> None:
    """Text from the document is HTML-escaped (a summary with `<` cannot inject markup)."""
    page = (await admin_call(gateway, "GET", "/docs", key=None)).body.decode()
    assert "&lt;key&gt;" in page


async def test_schemathesis_finds_no_server_error_or_schema_violation(
    gateway: Gateway, tmp_path: Path
) -> None:
    """Schemathesis, driven by /openapi.json against the live gateway, passes its checks."""
    process = await asyncio.create_subprocess_exec(
        str(SCHEMATHESIS),
        "run",
        f"http://127.0.0.1:{gateway.admin_port}/openapi.json",
        "--header",
        f"Authorization: Bearer {MASTER_KEY}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,"
        "response_schema_conformance",
        "--max-examples",
        "5",
        "--seed",
        "1",
        "--no-shrink",
        "--workers",
        "1",
        "--phases",
        "coverage,fuzzing",
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        # A bound on the whole run (it takes seconds); `--max-time` would instead fuzz until then.
        output, _ = await asyncio.wait_for(process.communicate(), SCHEMATHESIS_LIMIT)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, output.decode()[-6000:]
