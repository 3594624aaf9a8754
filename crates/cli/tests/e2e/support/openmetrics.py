"""Parses an OpenMetrics text exposition from stdin with the Prometheus
project's own Python parser (prometheus_client.openmetrics.parser, strict:
it rejects a malformed line, a missing # EOF, a counter without _total,
histogram buckets that are not cumulative or lack +Inf) and prints every
sample as JSON: [{"family", "type", "name", "labels", "value"}, ...]."""
import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append({
            "family": family.name,
            "type": family.type,
            "name": s.name,
            "labels": s.labels,
            "value": s.value,
        })
json.dump(out, sys.stdout)
