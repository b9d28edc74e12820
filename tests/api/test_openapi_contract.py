"""The OpenAPI document describes the service as it answers (issue 19, finding 1).

Walks ``/openapi.json``: every operation lists the error statuses it can return, each
with the one error body (:class:`api.schemas.ErrorResponse`), and the rules the service
enforces on input are the schema's own (the E.164 pattern, ``watch`` needing ``until``,
date-times as RFC 3339), checked by sending requests the schema calls valid and invalid.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest
from fastapi.routing import APIRoute

from api.main import ROUTER_MODULES
from api.security import ROLES
from tests.api.test_app_calls import Env, new_number, running_env

ERROR_REF = "#/components/schemas/ErrorResponse"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with running_env("sqlite", tmp_path_factory.mktemp("openapi")) as e:
        yield e


@pytest.fixture(scope="module")
def doc(env: Env) -> dict[str, Any]:
    response = env.client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def _operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield method.upper(), path, operation


def _roles(route: APIRoute) -> set[str] | None:
    """The roles the route lets through (from its require_roles dependency), or None
    for a route without a key."""
    stack = list(route.dependant.dependencies)
    while stack:
        dep = stack.pop()
        call = dep.call
        if call is not None and getattr(call, "__qualname__", "").startswith("require_roles."):
            return set(inspect.getclosurevars(call).nonlocals["roles"])
        stack.extend(dep.dependencies)
    return None


def _constrained(schema: dict[str, Any]) -> bool:
    """A parameter value can be refused: anything but a bare string."""
    return set(schema) - {"type", "title", "description"} != set() or schema.get("type") not in (
        "string",
        None,
    )


def _expected_errors(route: APIRoute, operation: dict[str, Any]) -> set[str]:
    expected = {"413"}  # the body limit applies before any route
    roles = _roles(route)
    if roles is not None:
        expected |= {"401", "503"}  # no key or a bad one; the database down checking it
        if roles != set(ROLES):
            expected.add("403")
    if "requestBody" in operation:
        expected |= {"400", "422"}
    params = operation.get("parameters", [])
    if any(p["in"] == "path" for p in params):
        expected.add("404")
    if any(_constrained(p["schema"]) for p in params):
        expected.add("422")
    return expected


def test_every_operation_lists_its_error_statuses_with_the_one_error_body(
    env: Env, doc: dict[str, Any]
) -> None:
    routes = {
        (method, route.path): route
        for module in ROUTER_MODULES
        for route in module.router.routes
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods or ()
    }
    missing: list[str] = []
    wrong_body: list[str] = []
    seen = 0
    for method, path, operation in _operations(doc):
        seen += 1
        declared = {s for s in operation["responses"] if s[0] in "45"}
        lacking = _expected_errors(routes[(method, path)], operation) - declared
        if lacking:
            missing.append(f"{method} {path}: {sorted(lacking)}")
        for status in sorted(declared):
            response = operation["responses"][status]
            schema = response.get("content", {}).get("application/json", {}).get("schema")
            if schema != {"$ref": ERROR_REF} or not response.get("description"):
                wrong_body.append(f"{method} {path} {status}: {schema}")
    assert seen == len(routes) >= 20
    assert not missing, "\n".join(missing)
    assert not wrong_body, "\n".join(wrong_body)
    # FastAPI's default 422 model (detail as a list) describes an answer never sent.
    assert not {"HTTPValidationError", "ValidationError"} & set(doc["components"]["schemas"])


def _validator(doc: dict[str, Any], ref: str) -> Any:
    return jsonschema_rs.Draft202012Validator(
        {"$ref": ref, "components": doc["components"]}, validate_formats=True
    )


def _error_body(doc: dict[str, Any], body: Any) -> None:
    errors = [e.message for e in _validator(doc, ERROR_REF).iter_errors(body)]
    assert not errors, (body, errors)


@pytest.mark.parametrize(
    ("method", "path", "template", "kwargs", "status"),
    [
        ("POST", "/v1/calls", None, {"content": b"{not json", "json_type": True}, 400),
        ("GET", "/v1/calls/c-1", "/v1/calls/{call_id}", {"auth": False}, 401),
        ("POST", "/v1/model/reload", None, {}, 403),
        ("GET", "/v1/calls/c-unknown", "/v1/calls/{call_id}", {}, 404),
        ("POST", "/v1/calls", None, {"content": b"x" * 20_000, "json_type": True}, 413),
        ("GET", "/v1/audit?limit=0", "/v1/audit", {"role": "admin"}, 422),
        ("POST", "/v1/calls", None, {"json": {"call_id": "x"}}, 422),
    ],
)
def test_error_answers_are_the_error_body_and_declared(
    env: Env,
    doc: dict[str, Any],
    method: str,
    path: str,
    template: str | None,
    kwargs: dict[str, Any],
    status: int,
) -> None:
    role = kwargs.pop("role", "call_taker")
    headers = env.auth(role) if kwargs.pop("auth", True) else {}
    if kwargs.pop("json_type", False):
        headers["Content-Type"] = "application/json"
    response = env.client.request(method, path, headers=headers, **kwargs)
    assert response.status_code == status, response.text
    _error_body(doc, response.json())
    operation = doc["paths"][template or path][method.lower()]
    assert str(status) in operation["responses"]


def _request_schema(doc: dict[str, Any], path: str) -> Any:
    schema = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return jsonschema_rs.Draft202012Validator(
        {**schema, "components": doc["components"]}, validate_formats=True
    )


@pytest.mark.parametrize(
    ("caller_id", "valid"),
    [
        ("+6281234567890", True),
        ("simless:IMEI-35-209900-176148-1", True),
        ("", True),
        ("0" * 127, False),  # the fuzzer's: within maxLength, not a number
        ("0812345678", False),  # a national number
        ("+62812345678\n", False),  # Python's $ matches before a final newline
        ("+62\u0668\u0661\u0662\u0663\u0664\u0665\u0666", False),  # Arabic-Indic digits
    ],
)
def test_caller_id_rule_is_the_schemas(
    env: Env, doc: dict[str, Any], caller_id: str, valid: bool
) -> None:
    body = {
        "call_id": f"c-{abs(hash(caller_id)) % 10**12}",
        "caller_id": caller_id,
        "started_at": "2025-06-03T19:04:11+08:00",
    }
    assert _request_schema(doc, "/v1/calls").is_valid(body) is valid
    response = env.client.post("/v1/calls", json=body, headers=env.auth())
    assert response.status_code == (200 if valid else 422), response.text
    if not valid:
        assert "caller_id" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"action": "watch", "until": "2099-01-01T00:00:00+00:00"}, True),
        ({"action": "clear", "note": "talked to the school"}, True),
        ({"action": "confirm_prank", "until": None}, True),
        ({"action": "watch"}, False),
        ({"action": "watch", "until": None}, False),
        ({"action": "clear", "until": "2099-01-01T00:00:00+00:00"}, False),
        ({"action": "ban"}, False),
        ({"action": "watch", "until": "2099-01-01"}, False),
    ],
)
def test_review_rules_are_the_schemas(
    env: Env, doc: dict[str, Any], body: dict[str, Any], valid: bool
) -> None:
    number = new_number()
    env.register(caller_id=number)
    assert _request_schema(doc, "/v1/numbers/{caller_id}/review").is_valid(body) is valid
    response = env.client.post(
        f"/v1/numbers/{number}/review", json=body, headers=env.auth("supervisor")
    )
    assert response.status_code == (200 if valid else 422), response.text


@pytest.mark.parametrize(
    ("since", "valid"),
    [
        ("2025-06-03T19:04:11+08:00", True),
        ("2025-06-03T11:04:11.250Z", True),
        ("0", False),
        ("-322", False),
        ("1717412651", False),
        ("2025-06-03T19:04", False),
        ("2025-06-03 19:04:11+08:00", False),
        ("2025-06-03T19:04:11", False),
    ],
)
@pytest.mark.parametrize("path", ["/v1/calls", "/v1/export/labelled"])
def test_date_time_query_parameters_are_validated_as_documented(
    env: Env, doc: dict[str, Any], path: str, since: str, valid: bool
) -> None:
    (param,) = [p for p in doc["paths"][path]["get"]["parameters"] if p["name"] == "since"]
    schema = jsonschema_rs.Draft202012Validator(param["schema"], validate_formats=True)
    assert schema.is_valid(since) is valid
    response = env.client.get(path, params={"since": since}, headers=env.auth("admin"))
    assert response.status_code == (200 if valid else 422), response.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/model/reload", {"registry_ref": "champion\x00"}, "registry_ref"),
        ("/v1/calls", {"metadata": {"trunk": "7\x00"}}, "metadata"),
    ],
)
def test_text_with_nul_is_refused_by_the_schema(
    env: Env, doc: dict[str, Any], path: str, body: dict[str, Any], field: str
) -> None:
    # Found by bench/fuzz_api.py on PostgreSQL: a failed reload is audited with its
    # registry_ref, and PostgreSQL refuses NUL in text (500).
    if path == "/v1/calls":
        body = {
            "call_id": "c-nul-1",
            "caller_id": new_number(),
            "started_at": "2025-06-03T19:04:11+08:00",
            **body,
        }
    assert not _request_schema(doc, path).is_valid(body)
    response = env.client.post(path, json=body, headers=env.auth("admin"))
    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
