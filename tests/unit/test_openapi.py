"""The gateway's OpenAPI document is valid OpenAPI 3.1 (openapi-spec-validator), so client
generators take it, and every operation has its own operationId."""
from __future__ import annotations

from collections import Counter

from openapi_spec_validator import validate

from services.gateway.api import OPERATIONS
from services.gateway.app import create_app, document
from services.gateway.settings import Settings


def test_the_openapi_document_validates_and_operation_ids_are_unique():
    app = create_app(Settings(public_base_url="https://chat.example.com"))
    doc = document(app)
    validate(doc)
    ids = Counter(item["operationId"] for methods in doc["paths"].values() for item in methods.values())
    assert [name for name, count in ids.items() if count > 1] == []
    assert {"request_handoff", "delete_own_tenant", "admin_delete_tenant", "export_visitor", "erase_visitor",
            "cancel_reply", "cancel_visitor_reply"} <= set(ids)


def test_each_route_module_adds_its_routes_only_when_registered():
    """Importing a route module changes nothing: each app gets every route once, from register(app)."""
    first, second = create_app(), create_app()
    assert len(first[OPERATIONS]) == len(second[OPERATIONS]) > 50
    routes = [(r.method, r.resource.canonical) for r in first.router.routes() if r.resource is not None]
    assert len(routes) == len(set(routes))
