"""Reads a Prometheus text exposition on stdin with prometheus_client's own
parser (the one Prometheus' Python ecosystem uses) and prints its samples
as JSON: [{"family", "type", "name", "labels", "value"}]. A document the
parser rejects makes this exit non-zero with the parser's error."""

import json
import sys

from prometheus_client.parser import text_string_to_metric_families

out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append(
            {
                "family": family.name,
                "type": family.type,
                "name": s.name,
                "labels": s.labels,
                "value": s.value,
            }
        )
json.dump(out, sys.stdout)
