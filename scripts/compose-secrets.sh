#!/usr/bin/env bash
# Writes every secret docker-compose.yml needs into an env file (default .env),
# each a fresh 32 random bytes in hex, for any the file does not hold yet: a
# first `make up` gets them all, a later one only those added since. Secrets
# already there are never changed. The file is readable by its owner only.
set -euo pipefail
file=${1:-.env}
secrets=(
  CADENZA_JWT_SECRET
  CADENZA_URL_SIGNING_KEY
  CADENZA_MESH_GATEWAY_TO_PROJECT_SECRET
  CADENZA_MESH_GATEWAY_TO_GENERATION_SECRET
  CADENZA_MESH_PROJECT_TO_STORAGE_SECRET
  CADENZA_MESH_GENERATION_TO_STORAGE_SECRET
  MINIO_ROOT_PASSWORD
)
umask 077
touch "$file"
chmod 600 "$file"
written=()
for name in "${secrets[@]}"; do
  if ! grep -Eq "^${name}=.+" "$file"; then
    # A blank `NAME=` line (copied from .env.example) gives way to the new one.
    sed -i "/^${name}=\$/d" "$file"
    printf '%s=%s\n' "$name" "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >>"$file"
    written+=("$name")
  fi
done
if [ ${#written[@]} -gt 0 ]; then
  echo "wrote ${#written[@]} new secret(s) to $file: ${written[*]}"
fi
