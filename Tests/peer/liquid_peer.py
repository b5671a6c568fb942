#!/usr/bin/env python3
"""Renders the conformance cases with python-liquid (the peer implementation) and prints one JSON object:
{"case name": "output" or {"error": "..."}}. The `render` cases use a plain environment, the `html` cases one with
autoescape. Installed by `make test-peers` (pip install python-liquid)."""
import json
import sys

from liquid import Environment

cases = json.load(open(sys.argv[1]))
plain = Environment()
html = Environment(autoescape=True)
results = {}
for group, env in (("render", plain), ("html", html)):
    for case in cases[group]:
        try:
            results[case["name"]] = env.from_string(case["template"]).render(**case["context"])
        except Exception as error:  # noqa: BLE001 - report any peer failure as data
            results[case["name"]] = {"error": f"{type(error).__name__}: {error}"}
print(json.dumps(results))
