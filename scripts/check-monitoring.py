#!/usr/bin/env python3
"""Checks the monitoring files against each other and against the code.

    scripts/check-monitoring.py [--scrape FILE ...] [--scrape-warn-only] [--no-promtool]

- helm/cadenza/files/alerts.yaml: a Prometheus rules file (`groups:`); every
  alerting rule has `alert`, `expr`, `for`, `labels.severity` and the annotations
  `summary`, `description` and `runbook_url`; every runbook URL points at
  docs/operations.md#anchor, and the anchor is a heading of that file.
- helm/cadenza/files/dashboard.json: valid JSON, a Grafana dashboard with schemaVersion
  >= 39, a `datasource` variable of type prometheus used by every panel and query,
  unique panel ids, and panels laid out on the 24-column grid without overlapping.
- Every `cadenza_*` metric that the alerts and the dashboard name (less a
  `_bucket`, `_sum` or `_count` suffix) is one the services emit: a string literal
  "cadenza_..." in the Rust sources under services/ and libs/ (tests left out),
  plus PENDING_METRICS below. With `--scrape`, each name must also appear in the
  given Prometheus text files (`curl -s localhost:9091/metrics > project.txt`,
  one per service), and the labels the queries select on must appear on it there.
  Counters appear in a scrape only once something has counted: `--scrape-warn-only`
  reports absent names without failing.
- If `promtool` is on PATH (Debian package `prometheus`), it checks the rules file
  and every dashboard query too; `--no-promtool` skips that.

Python 3.11 with PyYAML. Exits 0 when everything holds, 1 with a message per problem.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

# Metrics the alerts and the dashboard use that are being added to the services.
# Each MUST exist in the code: once a name is found in the Rust sources this script
# says so, and the entry should be removed; when the list is empty, remove it.
PENDING_METRICS: set[str] = set()

SEVERITIES = {"critical", "warning", "info"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")
METRIC = re.compile(r"\b(cadenza_[a-zA-Z0-9_]+)")
SUFFIXES = ("_bucket", "_sum", "_count")
# Labels Prometheus or the Prometheus Operator add to every scraped series, and
# the histogram's own.
TARGET_LABELS = {
    "job", "instance", "namespace", "pod", "container", "endpoint", "service",
    "exported_service", "le", "__name__",
}
GRID_COLUMNS = 24


class Report:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.warnings: list[str] = []
        self.notes: list[str] = []

    def error(self, where: str, message: str) -> None:
        if f"{where}: {message}" not in self.errors:
            self.errors.append(f"{where}: {message}")

    def warn(self, where: str, message: str) -> None:
        if f"{where}: {message}" not in self.warnings:
            self.warnings.append(f"{where}: {message}")


# ------------------------------------------------------------------ known names


def metrics_in_source(root: Path) -> set[str]:
    """String literals "cadenza_..." in the Rust sources, tests and benches left out."""
    names: set[str] = set()
    literal = re.compile(r'"(cadenza_[a-z0-9_]+)"')
    for top in ("services", "libs"):
        for path in (root / top).rglob("*.rs"):
            parts = set(path.relative_to(root).parts)
            if parts & {"target", "tests", "benches"}:
                continue
            names.update(literal.findall(path.read_text(encoding="utf-8", errors="replace")))
    return names


def parse_scrape(path: Path) -> dict[str, set[str]]:
    """Metric family -> label names seen, from Prometheus text exposition."""
    families: dict[str, set[str]] = {}
    typed: dict[str, str] = {}
    sample = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+\S+")
    label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            parts = line.split()
            if len(parts) >= 4 and parts[1] == "TYPE":
                typed[parts[2]] = parts[3]
                families.setdefault(parts[2], set())
            continue
        match = sample.match(line)
        if not match:
            continue
        name = match.group(1)
        base = name
        for suffix in SUFFIXES:
            stem = name[: -len(suffix)]
            if name.endswith(suffix) and typed.get(stem) in ("histogram", "summary"):
                base = stem
                break
        labels = {m.group(1) for m in label.finditer(match.group(3) or "")}
        families.setdefault(base, set()).update(labels)
        families.setdefault(name, set()).update(labels)
    return families


def base_name(name: str, known: set[str] | dict) -> str | None:
    """The known metric `name` refers to, allowing the histogram suffixes."""
    if name in known:
        return name
    for suffix in SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in known:
            return name[: -len(suffix)]
    return None


def strip_suffix(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


# ------------------------------------------------------------------ runbook anchors


def github_slugs(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings of a Markdown file."""
    slugs: set[str] = set()
    seen: dict[str, int] = {}
    fence = None
    for line in markdown.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            marker = stripped[:3]
            fence = None if fence == marker else (fence or marker)
            continue
        if fence:
            continue
        match = re.match(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if not match:
            continue
        text = match.group(2)
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
        slug = "".join(
            ch for ch in text.lower()
            if ch in " -_" or unicodedata.category(ch)[0] in ("L", "N")
        ).replace(" ", "-")
        if slug in seen:
            seen[slug] += 1
            slug = f"{slug}-{seen[slug]}"
        else:
            seen[slug] = 0
        slugs.add(slug)
    return slugs


# ------------------------------------------------------------------ selectors


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric, label names matched on) for each `cadenza_x{...}` in a query."""
    found = []
    for match in re.finditer(r"\b(cadenza_[a-zA-Z0-9_]+)\s*(\{([^}]*)\})?", expr):
        labels = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", match.group(3) or ""))
        found.append((match.group(1), labels))
    return found


# ------------------------------------------------------------------ alerts


def check_alerts(path: Path, anchors: set[str], runbook: str, report: Report) -> list[tuple[str, str]]:
    """Checks the rules file; returns (where, expr) of every rule."""
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    exprs: list[tuple[str, str]] = []
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        report.error(where, f"cannot be read as YAML: {err}")
        return exprs
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list) or not doc["groups"]:
        report.error(where, "must be a mapping with a non-empty `groups:` list")
        return exprs
    extra = set(doc) - {"groups"}
    if extra:
        report.error(where, f"unexpected top-level keys {sorted(extra)} (the chart puts this file into a PrometheusRule spec)")
    group_names: set[str] = set()
    alert_names: set[str] = set()
    for g, group in enumerate(doc["groups"]):
        gwhere = f"{where}: groups[{g}]"
        if not isinstance(group, dict):
            report.error(gwhere, "must be a mapping")
            continue
        name = group.get("name")
        if not isinstance(name, str) or not name:
            report.error(gwhere, "has no `name`")
        elif name in group_names:
            report.error(gwhere, f"group name `{name}` is used twice")
        else:
            group_names.add(name)
            gwhere = f"{where}: group {name}"
        rules = group.get("rules")
        if not isinstance(rules, list) or not rules:
            report.error(gwhere, "has no `rules`")
            continue
        for r, rule in enumerate(rules):
            rwhere = f"{gwhere}: rules[{r}]"
            if not isinstance(rule, dict):
                report.error(rwhere, "must be a mapping")
                continue
            expr = rule.get("expr")
            if isinstance(rule.get("alert"), str):
                rwhere = f"{gwhere}: {rule['alert']}"
            if not isinstance(expr, (str, int, float)) or not str(expr).strip():
                report.error(rwhere, "has no `expr`")
            else:
                exprs.append((rwhere, str(expr)))
            if "record" in rule:
                continue
            alert = rule.get("alert")
            if not isinstance(alert, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*", alert or ""):
                report.error(rwhere, "needs `alert:` with a CamelCase name")
                continue
            if alert in alert_names:
                report.error(rwhere, "alert name used twice")
            alert_names.add(alert)
            duration = rule.get("for")
            if not isinstance(duration, str) or not DURATION.match(duration):
                report.error(rwhere, "needs `for:` with a duration such as 5m")
            labels = rule.get("labels") or {}
            severity = labels.get("severity") if isinstance(labels, dict) else None
            if severity not in SEVERITIES:
                report.error(rwhere, f"needs `labels.severity` in {sorted(SEVERITIES)}, has {severity!r}")
            annotations = rule.get("annotations") or {}
            if not isinstance(annotations, dict):
                report.error(rwhere, "`annotations` must be a mapping")
                continue
            for key in ("summary", "description", "runbook_url"):
                if not isinstance(annotations.get(key), str) or not annotations[key].strip():
                    report.error(rwhere, f"needs `annotations.{key}`")
            url = annotations.get("runbook_url")
            if isinstance(url, str) and url.strip():
                match = re.fullmatch(r"(?:.*/)?" + re.escape(runbook) + r"#([^#\s]+)", url.strip())
                if not match:
                    report.error(rwhere, f"runbook_url `{url}` must point at {runbook}#<anchor>")
                elif match.group(1) not in anchors:
                    report.error(rwhere, f"runbook_url anchor `#{match.group(1)}` is no heading of {runbook}")
    if not alert_names:
        report.error(where, "defines no alert")
    return exprs


# ------------------------------------------------------------------ dashboard


def all_panels(panels: list) -> list[dict]:
    out = []
    for panel in panels or []:
        if isinstance(panel, dict):
            out.append(panel)
            out.extend(all_panels(panel.get("panels", [])))
    return out


def uses_datasource_variable(datasource) -> bool:
    if isinstance(datasource, dict):
        return datasource.get("uid") in ("${datasource}", "$datasource")
    return datasource in ("${datasource}", "$datasource")


def check_dashboard(path: Path, report: Report) -> list[tuple[str, str]]:
    where = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)
    exprs: list[tuple[str, str]] = []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        report.error(where, f"is not valid JSON: {err}")
        return exprs
    if not isinstance(doc, dict):
        report.error(where, "must be a JSON object (a dashboard)")
        return exprs
    if not isinstance(doc.get("schemaVersion"), int) or doc["schemaVersion"] < 39:
        report.error(where, f"schemaVersion must be >= 39, is {doc.get('schemaVersion')!r}")
    if not doc.get("title"):
        report.error(where, "has no title")
    if not doc.get("uid"):
        report.error(where, "has no uid (provisioned dashboards need a stable one)")
    variables = {v.get("name"): v for v in doc.get("templating", {}).get("list", []) if isinstance(v, dict)}
    ds = variables.get("datasource")
    if not ds or ds.get("type") != "datasource" or ds.get("query") != "prometheus":
        report.error(where, "needs a template variable `datasource` of type datasource with query prometheus")
    for name, variable in variables.items():
        if variable.get("type") == "query" and not uses_datasource_variable(variable.get("datasource")):
            report.error(where, f"variable `{name}` must query through ${{datasource}}")
    if not {"namespace", "job"} & set(variables):
        report.error(where, "needs a `namespace` or `job` variable")

    panels = all_panels(doc.get("panels", []))
    if not panels:
        report.error(where, "has no panels")
    ids: dict[int, str] = {}
    boxes: list[tuple[str, int, int, int, int]] = []
    for n, panel in enumerate(panels):
        title = panel.get("title") or f"panels[{n}]"
        pwhere = f"{where}: panel `{title}`"
        pid = panel.get("id")
        if not isinstance(pid, int):
            report.error(pwhere, "has no integer id")
        elif pid in ids:
            report.error(pwhere, f"id {pid} is also panel `{ids[pid]}`'s")
        else:
            ids[pid] = title
        grid = panel.get("gridPos")
        if not isinstance(grid, dict) or not all(isinstance(grid.get(k), int) for k in "xywh"):
            report.error(pwhere, "needs gridPos with integer x, y, w and h")
        else:
            x, y, w, h = (grid[k] for k in "xywh")
            if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > GRID_COLUMNS:
                report.error(pwhere, f"gridPos {grid} is off the {GRID_COLUMNS}-column grid")
            else:
                boxes.append((title, x, y, w, h))
        if panel.get("type") == "row":
            continue
        if not uses_datasource_variable(panel.get("datasource")):
            report.error(pwhere, "must use the ${datasource} variable")
        targets = panel.get("targets") or []
        if not targets:
            report.error(pwhere, "has no queries")
        for t, target in enumerate(targets):
            if not uses_datasource_variable(target.get("datasource", panel.get("datasource"))):
                report.error(f"{pwhere}: query {target.get('refId', t)}", "must use the ${datasource} variable")
            expr = target.get("expr")
            if not isinstance(expr, str) or not expr.strip():
                report.error(f"{pwhere}: query {target.get('refId', t)}", "has no expr")
            else:
                exprs.append((f"{pwhere}: query {target.get('refId', t)}", expr))
    for i, (ta, xa, ya, wa, ha) in enumerate(boxes):
        for tb, xb, yb, wb, hb in boxes[i + 1:]:
            if xa < xb + wb and xb < xa + wa and ya < yb + hb and yb < ya + ha:
                report.error(where, f"panels `{ta}` and `{tb}` overlap")
    return exprs


# ------------------------------------------------------------------ metrics


def check_metrics(
    exprs: list[tuple[str, str]],
    known: set[str],
    scraped: dict[str, set[str]] | None,
    scrape_warn_only: bool,
    report: Report,
) -> set[str]:
    used: set[str] = set()
    absent: dict[str, list[str]] = {}
    for where, expr in exprs:
        for name, labels in selectors(expr):
            base = base_name(name, known)
            if base is None:
                report.error(where, f"`{name}` is no metric the services emit (not in the Rust sources nor PENDING_METRICS)")
                used.add(strip_suffix(name))
                continue
            used.add(base)
            if scraped is None:
                continue
            family = base_name(name, scraped)
            if family is None:
                places = absent.setdefault(base, [])
                if where not in places:
                    places.append(where)
                continue
            missing = labels - scraped[family] - TARGET_LABELS
            if missing and scraped[family]:
                message = f"`{name}` has no label {sorted(missing)} in the scraped output (it has {sorted(scraped[family])})"
                (report.warn if scrape_warn_only else report.error)(where, message)
    for name, places in sorted(absent.items()):
        more = f" and {len(places) - 1} more" if len(places) > 1 else ""
        message = f"`{name}` does not appear in the scraped output (used by {places[0]}{more})"
        (report.warn if scrape_warn_only else report.error)("scrape", message)
    return used


def check_with_promtool(alerts: Path, dashboard_exprs: list[tuple[str, str]], report: Report) -> str:
    promtool = shutil.which("promtool")
    if not promtool:
        return "promtool not found: PromQL syntax not checked"
    failed = False
    result = subprocess.run([promtool, "check", "rules", str(alerts)], capture_output=True, text=True)
    if result.returncode != 0:
        failed = True
        report.error(str(alerts), "promtool check rules failed:\n" + (result.stdout + result.stderr).strip())
    # Dashboard queries, with Grafana's variables replaced, as recording rules.
    rules = []
    for n, (_, expr) in enumerate(dashboard_exprs):
        concrete = (
            expr.replace("$__rate_interval", "5m").replace("$__interval", "1m")
            .replace("${namespace}", ".*").replace("$namespace", ".*")
            .replace("${job}", ".*").replace("$job", ".*")
        )
        rules.append({"record": f"dashboard:query_{n}", "expr": concrete})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, handle)
        temporary = Path(handle.name)
    try:
        result = subprocess.run([promtool, "check", "rules", str(temporary)], capture_output=True, text=True)
        if result.returncode != 0:
            failed = True
            output = result.stdout + result.stderr
            for match in re.finditer(r"dashboard:query_(\d+)", output):
                where, expr = dashboard_exprs[int(match.group(1))]
                report.error(where, f"promtool rejects `{expr}`")
            report.error("dashboard", "promtool rejected dashboard queries:\n" + output.strip())
    finally:
        temporary.unlink(missing_ok=True)
    if failed:
        return "promtool found problems"
    return "promtool: rules and dashboard queries parse"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=Path, default=ROOT / "helm/cadenza/files/alerts.yaml")
    parser.add_argument("--dashboard", type=Path, default=ROOT / "helm/cadenza/files/dashboard.json")
    parser.add_argument("--runbook", type=Path, default=ROOT / "docs/operations.md")
    parser.add_argument("--source-root", type=Path, default=ROOT, help="where services/ and libs/ are")
    parser.add_argument("--scrape", type=Path, nargs="+", metavar="FILE",
                        help="Prometheus text files (a /metrics scrape of each service)")
    parser.add_argument("--scrape-warn-only", action="store_true",
                        help="names or labels absent from the scrapes are warnings, not errors")
    parser.add_argument("--no-promtool", action="store_true", help="do not run promtool even if found")
    args = parser.parse_args()

    report = Report()
    try:
        runbook_text = args.runbook.read_text(encoding="utf-8")
    except OSError as err:
        report.error(str(args.runbook), f"cannot be read: {err}")
        runbook_text = ""
    anchors = github_slugs(runbook_text)
    runbook_rel = "docs/operations.md"
    if args.runbook.resolve().is_relative_to(ROOT):
        runbook_rel = args.runbook.resolve().relative_to(ROOT).as_posix()

    alert_exprs = check_alerts(args.alerts, anchors, runbook_rel, report)
    dashboard_exprs = check_dashboard(args.dashboard, report)

    in_source = metrics_in_source(args.source_root)
    for name in sorted(PENDING_METRICS & in_source):
        report.notes.append(f"{name} is now in the Rust sources: remove it from PENDING_METRICS")
    known = in_source | PENDING_METRICS
    scraped = None
    if args.scrape:
        scraped = {}
        for path in args.scrape:
            try:
                for family, labels in parse_scrape(path).items():
                    scraped.setdefault(family, set()).update(labels)
            except OSError as err:
                report.error(str(path), f"cannot be read: {err}")
    used = check_metrics(alert_exprs + dashboard_exprs, known, scraped, args.scrape_warn_only, report)

    promtool_note = "promtool skipped"
    if not args.no_promtool:
        promtool_note = check_with_promtool(args.alerts, dashboard_exprs, report)

    for note in report.notes:
        print(f"note: {note}")
    for warning in report.warnings:
        print(f"warning: {warning}")
    for error in report.errors:
        print(f"error: {error}", file=sys.stderr)
    alerts = sum(1 for where, _ in alert_exprs)
    summary = (
        f"{alerts} rules, {len(dashboard_exprs)} dashboard queries, "
        f"{len(used)} cadenza metrics referenced ({len(used & PENDING_METRICS)} pending in code); {promtool_note}"
    )
    if report.errors:
        print(f"check-monitoring: {len(report.errors)} problem(s); {summary}", file=sys.stderr)
        return 1
    print(f"check-monitoring: OK: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
