#!/usr/bin/env python3
"""Renders the benchmark template with python-liquid and Jinja2 (autoescape on, like Consentry's HTML templates) for
a fixed time and prints {"liquid": renders/s, "jinja2": renders/s}. Used by `make bench`."""
import json
import sys
import time

import jinja2
from liquid import Environment

liquid_source, jinja_source, context_path, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
context = json.load(open(context_path))


def rate(render):
    render()  # warm-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            render()
        count += 100
    return count / (time.perf_counter() - start)


liquid_template = Environment(autoescape=True).from_string(open(liquid_source).read())
jinja_template = jinja2.Environment(autoescape=True).from_string(open(jinja_source).read())
print(json.dumps({"liquid": rate(lambda: liquid_template.render(**context)), "jinja2": rate(lambda: jinja_template.render(**context))}))
