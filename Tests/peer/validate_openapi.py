#!/usr/bin/env python3
"""Validates an OpenAPI document (file path) with openapi-spec-validator and prints its operations as JSON:
[["GET", "/healthz"], ...]. Installed by `make test-peers`."""
import json
import sys

import yaml
from openapi_spec_validator import validate

document = yaml.safe_load(open(sys.argv[1]))
validate(document)
print(json.dumps([[method.upper(), path] for path, item in document["paths"].items() for method in item if method in ("get", "post")]))
