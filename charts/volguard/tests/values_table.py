#!/usr/bin/env python3
"""Print the Markdown table of every chart value (key, default, description) from
values.yaml and its `# --` comments. charts/volguard/README.md holds its output
between the VALUES-TABLE markers; test_chart.py checks they agree. Regenerate with:

  python3 charts/volguard/tests/values_table.py --write
"""

import json
import os
import re
import sys

import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CHART = os.path.dirname(HERE)
# Keys documented as one value (their content is an object passed through as is).
ATOMIC = {"policy", "podSecurityContext", "securityContext", "resources", "livenessProbe",
          "readinessProbe", "rollingUpdate", "autoscaling.behavior", "webhook.objectSelector",
          "webhook.namespaceSelector.matchLabels", "affinity", "nodeSelector", "podAnnotations",
          "podLabels", "certs.certManager.issuerRef", "serviceAccount.annotations", "service.annotations",
          "serviceMonitor.labels", "prometheusRule.labels", "grafanaDashboard.labels",
          "grafanaDashboard.annotations", "webhook.annotations", "webhook.resources",
          "audit.resources", "policyCheck.resources"}
SECTION = object()
BEGIN, END = "<!-- VALUES-TABLE:BEGIN -->", "<!-- VALUES-TABLE:END -->"


def rows():
    text = open(os.path.join(CHART, "values.yaml")).read()
    values = yaml.safe_load(text)
    stack, comment, skip_below = [], [], None
    out = []
    for line in text.splitlines():
        if not line.strip():
            comment = []
            continue
        indent = len(line) - len(line.lstrip())
        if skip_below is not None:
            if indent > skip_below:
                continue
            skip_below = None
        s = line.strip()
        if s.startswith("#"):
            body = s.lstrip("#").strip()
            if body.startswith("--"):
                comment = [body[2:].strip()]
            elif comment:
                comment.append(body)
            continue
        m = re.match(r"([A-Za-z][\w.-]*):", s)
        if not m or s.startswith("- "):
            comment = []
            continue
        stack = [(i, k) for (i, k) in stack if i < indent] + [(indent, m.group(1))]
        path = ".".join(k for _, k in stack)
        value = values
        for _, k in stack:
            value = value[k]
        if isinstance(value, dict) and value and path not in ATOMIC:
            if comment:
                out.append((path, SECTION, " ".join(comment)))
            comment = []
            continue
        if isinstance(value, (dict, list)) and value:
            skip_below = indent
        out.append((path, value, " ".join(comment)))
        comment = []
    return out


def table():
    lines = ["| key | default | description |", "|---|---|---|"]
    for path, value, desc in rows():
        if value is SECTION:
            default = "(section)"
        elif path == "policy":
            default = "see `values.yaml`"
        else:
            default = "`" + json.dumps(value, separators=(", ", ": ")) + "`"
        desc = desc.replace("|", "\\|")
        lines.append(f"| `{path}` | {default} | {desc} |")
    return "\n".join(lines) + "\n"


def main():
    t = table()
    if "--write" in sys.argv[1:]:
        path = os.path.join(CHART, "README.md")
        doc = open(path).read()
        a, b = doc.index(BEGIN) + len(BEGIN), doc.index(END)
        open(path, "w").write(doc[:a] + "\n" + t + doc[b:])
    else:
        sys.stdout.write(t)


if __name__ == "__main__":
    main()
