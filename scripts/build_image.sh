#!/usr/bin/env bash
# Build the training image, tagged with the package version from pyproject.toml.
# Usage: scripts/build_image.sh [extra docker build arguments...]
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
image="classifier-training:${version}"
docker build --tag "${image}" "$@" .
echo "built ${image}"
