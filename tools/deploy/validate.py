"""Checks rendered Kubernetes manifests beyond what the API schemas say.

usage: validate.py [--core-out FILE] MANIFEST...

- Every document is a named object; no two share kind, namespace and name.
- The custom resources the chart may render (cert-manager Certificate, Prometheus
  Operator ServiceMonitor and PrometheusRule) are checked against the structural
  schemas in crd-schemas.json: kubernetes-validate has no schemas for them, and the
  real CRDs are not on this machine. Those schemas list only the fields the chart
  writes, so a misspelt field fails here. Any other kind outside the Kubernetes API
  groups is an error (it would go unchecked).
- The chart's promises: pods run as non-root 65532 with a read-only root file
  system, no privilege escalation, every capability dropped and the RuntimeDefault
  seccomp profile; every container has resource requests and limits, every
  Deployment gRPC readiness and liveness probes; no ServiceAccount token is
  mounted; secret values reach env only through secretKeyRef, never inline or in a
  ConfigMap.
- --core-out writes the documents of the Kubernetes API groups to FILE, for
  `kubernetes-validate --strict`.

Exits 1 listing every problem found.
"""

import argparse
import json
import pathlib
import re
import sys

import jsonschema
import yaml

HERE = pathlib.Path(__file__).resolve().parent
CRD_SCHEMAS = json.loads((HERE / "crd-schemas.json").read_text())
# API groups kubernetes-validate knows (core is "").
CORE_GROUPS = {
    "", "apps", "batch", "autoscaling", "policy", "networking.k8s.io", "rbac.authorization.k8s.io",
    "storage.k8s.io", "scheduling.k8s.io", "coordination.k8s.io", "discovery.k8s.io",
}
# Names that hold secrets: never as a plain env value or ConfigMap entry.
# (URLs of Postgres and RabbitMQ carry passwords.)
SECRET_NAME = re.compile(r"(_SECRETS?|_PASSWORD|_TOKEN|_KEY|_KEY_ID|_DATABASE_URL|_AMQP_URL)$")
# Names that look secret but are not.
NOT_SECRET: set[str] = set()


def group_of(api_version: str) -> str:
    return api_version.split("/")[0] if "/" in api_version else ""


def where(doc) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('name')}"


def pod_problems(doc, pod_spec, needs_probes):
    out = []
    name = where(doc)
    if pod_spec.get("automountServiceAccountToken") is not False:
        out.append(f"{name}: automountServiceAccountToken must be false")
    psc = pod_spec.get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True:
        out.append(f"{name}: pod securityContext.runAsNonRoot must be true")
    if (psc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        out.append(f"{name}: pod seccompProfile must be RuntimeDefault")
    for c in pod_spec.get("initContainers", []) + pod_spec.get("containers", []):
        cname = f"{name} container {c.get('name')}"
        sc = c.get("securityContext") or {}
        expect = {
            "runAsNonRoot": True,
            "runAsUser": 65532,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
        }
        for key, value in expect.items():
            if sc.get(key) != value:
                out.append(f"{cname}: securityContext.{key} must be {value!r}, is {sc.get(key)!r}")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            out.append(f"{cname}: securityContext.capabilities.drop must be [ALL]")
        if (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            out.append(f"{cname}: seccompProfile must be RuntimeDefault")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                if r not in (res.get(kind) or {}):
                    out.append(f"{cname}: resources.{kind}.{r} missing")
        if needs_probes:
            for probe in ("readinessProbe", "livenessProbe"):
                if "grpc" not in (c.get(probe) or {}):
                    out.append(f"{cname}: {probe} must be a gRPC probe")
        if not any(m.get("mountPath") == "/tmp" for m in c.get("volumeMounts", [])):
            out.append(f"{cname}: /tmp must be a writable volume (read-only root file system)")
        for env in c.get("env", []):
            n = env.get("name", "")
            if "value" in env and SECRET_NAME.search(n) and n not in NOT_SECRET:
                out.append(f"{cname}: {n} is inlined; it must come from a secretKeyRef")
    return out


def check(docs):
    problems, seen = [], set()
    core = []
    for doc in docs:
        for field in ("apiVersion", "kind"):
            if not doc.get(field):
                problems.append(f"a document without {field}: {str(doc)[:80]}")
        meta = doc.get("metadata") or {}
        if not meta.get("name"):
            problems.append(f"{doc.get('kind')} without metadata.name")
        key = (doc.get("kind"), meta.get("namespace"), meta.get("name"))
        if key in seen:
            problems.append(f"{where(doc)} appears twice")
        seen.add(key)

        group = group_of(doc.get("apiVersion", ""))
        kind = doc.get("kind")
        if group in CORE_GROUPS:
            core.append(doc)
        else:
            schema = CRD_SCHEMAS.get(f"{doc.get('apiVersion')}/{kind}")
            if schema is None:
                problems.append(f"{where(doc)}: no schema for {doc.get('apiVersion')} {kind}")
            else:
                validator = jsonschema.Draft7Validator(schema)
                for err in sorted(validator.iter_errors(doc), key=lambda e: list(e.path)):
                    path = ".".join(str(p) for p in err.path)
                    problems.append(f"{where(doc)}: {path}: {err.message}")

        if kind == "Deployment":
            problems += pod_problems(doc, doc["spec"]["template"]["spec"], needs_probes=True)
        elif kind == "Job":
            problems += pod_problems(doc, doc["spec"]["template"]["spec"], needs_probes=False)
        elif kind == "ServiceAccount":
            if doc.get("automountServiceAccountToken") is not False:
                problems.append(f"{where(doc)}: automountServiceAccountToken must be false")
        elif kind == "ConfigMap":
            for n in doc.get("data") or {}:
                if SECRET_NAME.search(n) and n not in NOT_SECRET:
                    problems.append(f"{where(doc)}: {n} looks secret; it belongs in the Secret")
    return problems, core


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--core-out")
    parser.add_argument("manifests", nargs="+")
    args = parser.parse_args()
    docs = []
    for path in args.manifests:
        with open(path) as f:
            docs += [d for d in yaml.safe_load_all(f) if d]
    if not docs:
        print("validate.py: no documents", file=sys.stderr)
        return 1
    problems, core = check(docs)
    if args.core_out:
        with open(args.core_out, "w") as f:
            yaml.safe_dump_all(core, f, sort_keys=False)
    for p in problems:
        print(f"  {p}", file=sys.stderr)
    if problems:
        print(f"validate.py: {len(problems)} problem(s) in {', '.join(args.manifests)}", file=sys.stderr)
        return 1
    custom = len(docs) - len(core)
    print(f"  {len(docs)} objects: policies hold; {custom} custom resources match their schemas")
    return 0


if __name__ == "__main__":
    sys.exit(main())
