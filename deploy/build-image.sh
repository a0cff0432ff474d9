#!/usr/bin/env bash
# Builds the warpmesh container image FROM scratch around a static binary.
# Usage: deploy/build-image.sh [tag]   (default tag warpmesh:dev)
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-warpmesh:dev}"
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$ctx/warpmesh" ./cmd/warpmesh
docker build -q -f deploy/Dockerfile -t "$tag" "$ctx"
