#!/usr/bin/env python3
"""Checks recorded API responses against the OpenAPI document.

usage: conform.py OPENAPI.yaml RESPONSES.json

RESPONSES.json is a list of {"method", "path" (the path template of the document), "status", "content_type",
"body"}. Every response must be documented: its operation, its status (or `default`), its content type, and,
for JSON, a schema the body validates against (JSON Schema 2020-12, as OpenAPI 3.1 uses). Prints one line per
problem and exits 1 when there is any. Uses jsonschema, which `make test-peers` installs with
openapi-spec-validator.
"""
import json
import sys

import yaml
from jsonschema import Draft202012Validator

document = yaml.safe_load(open(sys.argv[1]))
records = json.load(open(sys.argv[2]))


def resolve(node):
    while isinstance(node, dict) and "$ref" in node:
        target = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


problems = []
checked = 0
for record in records:
    where = f"{record['method']} {record['path']} {record['status']}"
    operation = document["paths"].get(record["path"], {}).get(record["method"].lower())
    if operation is None:
        problems.append(f"{where}: the operation is not in the document")
        continue
    responses = operation.get("responses", {})
    status = str(record["status"])
    response = responses.get(status) or responses.get(status[0] + "XX") or responses.get("default")
    if response is None:
        problems.append(f"{where}: the status is not documented (documented: {', '.join(responses)})")
        continue
    response = resolve(response)
    content = response.get("content") or {}
    media_type = record["content_type"].split(";")[0].strip().lower()
    if not record["body"]:
        continue
    if media_type not in content:
        problems.append(f"{where}: content type `{media_type}` is not documented (documented: {', '.join(content) or 'none'})")
        continue
    schema = content[media_type].get("schema")
    if media_type == "application/x-ndjson":
        # Each line validates against `x-item-schema` (OpenAPI 3.2's itemSchema), when the document gives one.
        item = content[media_type].get("x-item-schema")
        lines = [line for line in record["body"].split("\n") if line.strip()]
        for number, line in enumerate(lines, 1):
            try:
                value = json.loads(line)
            except ValueError as error:
                problems.append(f"{where}: line {number} is not JSON ({error})")
                continue
            if item is not None:
                validator = Draft202012Validator({"components": document.get("components", {}), **resolve(item)})
                for error in validator.iter_errors(value):
                    problems.append(f"{where}: line {number}: {error.message[:200]}")
        checked += 1
        continue
    if not media_type.endswith("json"):
        checked += 1
        continue
    if schema is None:
        problems.append(f"{where}: `{media_type}` has no schema")
        continue
    try:
        body = json.loads(record["body"])
    except ValueError as error:
        problems.append(f"{where}: the body is not JSON ({error})")
        continue
    # The document's components travel with the schema, so `#/components/...` references resolve.
    validator = Draft202012Validator({"components": document.get("components", {}), **resolve(schema)})
    for error in sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
        pointer = "/" + "/".join(str(part) for part in error.absolute_path)
        problems.append(f"{where}: at {pointer}: {error.message[:200]}")
    checked += 1

for problem in problems:
    print(problem)
print(f"{checked} responses checked, {len(problems)} problems", file=sys.stderr)
sys.exit(1 if problems else 0)
