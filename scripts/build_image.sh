#!/usr/bin/env bash
# Build the training image, tagged with the package version from pyproject.toml.
# Usage: [TORCH_SPEC="torch==X torchvision==Y"] scripts/build_image.sh [docker build args...]
# `make docker` sets TORCH_SPEC from the Makefile, so the image gets the same pins.
set -euo pipefail
cd "$(dirname "$0")/.."
# the first `version = "..."` line is [project]'s; no Python >= 3.11 needed on the host
version=$(sed -n '/^version = "/{s/^version = "\(.*\)"$/\1/p;q;}' pyproject.toml)
if [[ -z "${version}" ]]; then
    echo "error: no 'version = \"...\"' line in pyproject.toml" >&2
    exit 2
fi
image="classifier-training:${version}"
build_args=()
if [[ -n "${TORCH_SPEC:-}" ]]; then
    build_args+=(--build-arg "TORCH_SPEC=${TORCH_SPEC}")
fi
# the ${a[@]+...} form: an empty array is "unbound" under set -u in bash < 4.4 (macOS)
docker build --tag "${image}" ${build_args[@]+"${build_args[@]}"} "$@" .
echo "built ${image}"
