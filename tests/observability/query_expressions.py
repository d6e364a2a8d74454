#!/usr/bin/env python3
"""Evaluates every alert and dashboard expression through a live Prometheus's HTTP API.

  query_expressions.py PROMETHEUS_URL ALERTS_YAML DASHBOARD_JSON TIMEOUT_SECONDS

Each expression must return data (at least one sample) before the deadline; each is
polled, since rate() needs two scrapes and recording rules an evaluation first:
  - dashboard panels: every target's expr, with the dashboard's template variables set
    to their default values (All -> the variable's allValue) and Grafana's interval
    variables to 1m;
  - recording rules: the recorded series;
  - alerts: the expression with every comparison turned into a `bool` comparison, so it
    returns a 0/1 sample for each series its operands match instead of dropping the
    ones below the threshold. A result proves that the metrics exist with the labels
    the rule joins on; whether the thresholds fire is what the promtool unit tests
    (alerts_test.yaml) check.
It also asserts that Prometheus loaded every rule of the file and evaluated each without
error. Exit 0 when all hold; otherwise prints what failed and exits 1.
"""
import json
import re
import sys
import time
import urllib.parse
import urllib.request

import yaml

GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "1m", "__range": "1m"}


def get(url, path, **params):
    query = urllib.parse.urlencode(params)
    with urllib.request.urlopen(f"{url}{path}?{query}", timeout=5) as answer:
        body = json.load(answer)
    if body.get("status") != "success":
        raise RuntimeError(f"{path}: {body}")
    return body["data"]


def boolify(expr):
    """Adds `bool` after each comparison operator outside label matchers and strings."""
    out, i, depth, quote = [], 0, 0, None
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "\"'`":
            quote = c
            out.append(c)
        elif c == "{":
            depth += 1
            out.append(c)
        elif c == "}":
            depth -= 1
            out.append(c)
        elif depth == 0 and expr.startswith(("==", "!=", ">=", "<="), i):
            out.append(expr[i:i + 2] + " bool")
            i += 1
        elif depth == 0 and c in "<>":
            out.append(c + " bool")
        else:
            out.append(c)
        i += 1
    return "".join(out)


def dashboard_values(dashboard):
    values = dict(GRAFANA_INTERVALS)
    for var in dashboard.get("templating", {}).get("list", []):
        if var["type"] == "datasource":
            continue
        current = var.get("current", {}).get("value")
        chosen = current if isinstance(current, list) else [current]
        chosen = [var.get("allValue", ".*") if v == "$__all" else v for v in chosen]
        values[var["name"]] = "|".join(chosen)
    return values


def substitute(expr, values):
    def one(match):
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"unknown dashboard variable ${name} in {expr}")
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def panels(dashboard):
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])  # rows, collapsed or not


def main():
    url, alerts_path, dashboard_path, timeout = sys.argv[1:5]
    rules = yaml.safe_load(open(alerts_path))
    dashboard = json.load(open(dashboard_path))
    values = dashboard_values(dashboard)

    checks = []  # (what, query)
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            checks.append((f'panel "{panel["title"]}" {target["refId"]}',
                           substitute(target["expr"], values)))
    names = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                checks.append((f"recording rule {rule['record']}", rule["record"]))
                names.append(rule["record"])
            else:
                checks.append((f"alert {rule['alert']}", boolify(rule["expr"])))
                names.append(rule["alert"])

    deadline = time.monotonic() + float(timeout)
    pending = list(checks)
    while True:
        still = []
        for what, query in pending:
            result = get(url, "/api/v1/query", query=query)["result"]
            if result:
                print(f"ok: {what}: {len(result)} series")
            else:
                still.append((what, query))
        pending = still
        if not pending or time.monotonic() > deadline:
            break
        time.sleep(0.5)  # the next scrape (1 s interval) brings more

    loaded = {}
    for group in get(url, "/api/v1/rules")["groups"]:
        for rule in group["rules"]:
            loaded[rule["name"]] = rule
    failures = [f"no data: {what}\n    {query}" for what, query in pending]
    for name in names:
        rule = loaded.get(name)
        if rule is None:
            failures.append(f"Prometheus did not load rule {name}")
        elif rule.get("health") != "ok":
            failures.append(f"rule {name}: health {rule.get('health')}: {rule.get('lastError')}")
    healthy = sum(1 for name in names if loaded.get(name, {}).get("health") == "ok")
    print(f"{len(checks) - len(pending)} of {len(checks)} expressions returned data; "
          f"{healthy} of {len(names)} rules loaded and evaluated without error")
    if failures:
        print("\n".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
