#!/usr/bin/env bash
# Regenerate the committed Python stubs (needs grpcio-tools). proto/api_v1.proto is the
# one source: runtime.v1alpha2 has the same messages, so its proto is derived here.
set -euo pipefail
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp proto/api_v1.proto "$tmp/"
sed -e 's/package runtime.v1;/package runtime.v1alpha2;/' \
    -e 's#pkg/apis/runtime/v1/api.proto#pkg/apis/runtime/v1alpha2/api.proto#' \
    proto/api_v1.proto > "$tmp/api_v1alpha2.proto"
for v in v1 v1alpha2; do
  python -m grpc_tools.protoc -I"$tmp" --python_out=. --grpc_python_out=. --pyi_out=. "$tmp/api_${v}.proto"
  # protoc emits absolute imports; make them package-relative.
  sed -i "s/^import api_${v}_pb2 as/from refpull.cri.api import api_${v}_pb2 as/" "api_${v}_pb2_grpc.py"
done
