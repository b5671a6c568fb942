"""Decision-rate peer for `make bench`: the same rules, written in Cedar, evaluated by cedarpy.

Reads the Cedar policy text and a JSON list of requests (with the decision Consentry reached for each),
checks that Cedar agrees on every request, then measures decisions per second with is_authorized_batch,
which amortizes the Python call overhead in the peer's favour. Prints one JSON line.
"""
import json
import sys
import time

import cedarpy


def main() -> int:
    policy_path, requests_path = sys.argv[1], sys.argv[2]
    policies = open(policy_path, encoding="utf-8").read()
    cases = json.load(open(requests_path, encoding="utf-8"))
    requests = []
    for case in cases:
        requests.append({
            "principal": 'Actor::"a"',
            "action": f'Action::"{case["action"]}"',
            "resource": 'Subject::"s"',
            "context": {
                "role": case["role"], "purpose": case["purpose"], "fields": case["fields"], "has_reason": case["has_reason"],
                "consent": case["consent"], "restricted": case["restricted"], "objected": case["objected"],
                "opt_out": case["opt_out"], "gpc": case["gpc"],
            },
        })
    results = cedarpy.is_authorized_batch(requests, policies, [])
    disagreements = sum(
        1 for case, result in zip(cases, results) if (result.decision == cedarpy.Decision.Allow) != (case["expected"] == "permit")
    )
    rounds = max(1, int(sys.argv[3]) if len(sys.argv) > 3 else 5)
    start = time.perf_counter()
    for _ in range(rounds):
        cedarpy.is_authorized_batch(requests, policies, [])
    seconds = time.perf_counter() - start
    print(json.dumps({"decisions": len(requests) * rounds, "seconds": seconds, "disagreements": disagreements}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
