#!/usr/bin/env bash
# Regenerate the committed Python stubs from proto/*.proto (needs grpcio-tools).
set -euo pipefail
cd "$(dirname "$0")"
for v in v1 v1alpha2; do
  python -m grpc_tools.protoc -Iproto --python_out=. --grpc_python_out=. --pyi_out=. "proto/api_${v}.proto"
  # protoc emits absolute imports; make them package-relative.
  sed -i "s/^import api_${v}_pb2 as/from refpull._cri import api_${v}_pb2 as/" "api_${v}_pb2_grpc.py"
done
