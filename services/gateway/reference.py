"""A readable API reference rendered from the OpenAPI document (no JavaScript needed)."""
from __future__ import annotations

import html
import json


def reference_page(doc: dict) -> str:
    """A readable API reference rendered from the OpenAPI document (no JavaScript needed)."""
    out = [f"<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
           f"content='width=device-width,initial-scale=1'><title>{html.escape(doc['info']['title'])}</title>"
           "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;"
           "color:#111}h2{border-bottom:1px solid #ddd;margin-top:2.5rem}.op{border:1px solid #e5e7eb;"
           "border-radius:8px;padding:.75rem 1rem;margin:1rem 0}.m{font-weight:700;font-family:monospace;"
           "padding:.1rem .4rem;border-radius:4px;background:#eef2ff}code,pre{font-family:ui-monospace,monospace;"
           "font-size:13px}pre{background:#f8fafc;padding:.5rem;overflow:auto;max-height:300px}"
           "small{color:#555}</style></head><body>",
           f"<h1>{html.escape(doc['info']['title'])}</h1><p>{html.escape(doc['info']['description'])}</p>",
           "<p>Machine-readable: <a href='/api/v1/openapi.json'>openapi.json</a> (OpenAPI 3.1).</p>"]
    by_tag: dict[str, list] = {}
    for path, methods in doc["paths"].items():
        for method, item in methods.items():
            by_tag.setdefault(item["tags"][0], []).append((path, method, item))
    schemas = doc["components"]["schemas"]
    for tag, items in by_tag.items():
        out.append(f"<h2>{html.escape(tag)}</h2>")
        for path, method, item in items:
            auth_name = next(iter(item["security"][0]), "none") if item["security"] else "none"
            out.append(f"<div class=op id='{item['operationId']}'><span class=m>{method.upper()}</span> "
                       f"<code>{html.escape(path)}</code> — {html.escape(item['summary'])} "
                       f"<small>(auth: {auth_name})</small>")
            if item.get("description"):
                out.append(f"<p>{html.escape(item['description'])}</p>")
            params = [p for p in item["parameters"]]
            if params:
                out.append("<p>Parameters: " + ", ".join(
                    f"<code>{html.escape(p['name'])}</code> ({p['in']}{', required' if p['required'] else ''})"
                    for p in params) + "</p>")
            body = item.get("requestBody", {}).get("content", {})
            for ctype, content in body.items():
                ref = content["schema"].get("$ref", "")
                name = ref.rsplit("/", 1)[-1]
                shown = json.dumps(schemas.get(name, content["schema"]), indent=1)[:3000]
                out.append(f"<details><summary>Request body ({html.escape(ctype)}) {html.escape(name)}</summary>"
                           f"<pre>{html.escape(shown)}</pre></details>")
            codes = ", ".join(item["responses"])
            out.append(f"<p><small>Responses: {codes}</small></p></div>")
    out.append("</body></html>")
    return "".join(out)
