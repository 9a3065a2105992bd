# Training image for the GPU recipe (train_jersey_ocr_resnet18: 224 px, bf16,
# pretrained). Build with `make docker` (scripts/build_image.sh); run with the
# dataset and an output folder mounted, e.g.
#   docker run --gpus all -v /data/jerseys:/data -v $PWD/outputs:/app/outputs \
#     classifier-training:0.1.0 data.data_root=/data
# Any classifier-train override can follow the image name.
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    TORCH_HOME=/app/.torch

WORKDIR /app

# torch first, in its own layer: it is by far the largest and changes least.
# PyPI's Linux x86_64 wheels of torch are CUDA builds. `make docker` passes the
# Makefile's TORCH_SPEC; this default is the same pins (tests/test_docker.py).
ARG TORCH_SPEC="torch==2.14.1 torchvision==0.29.1"
# hadolint cannot see the == pins inside the variable.
# hadolint ignore=DL3013
RUN pip install ${TORCH_SPEC}

COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install . && useradd --uid 1000 --create-home trainer && chown trainer /app

# numeric, so that the host resolves the same user (hadolint DL3066)
USER 1000
ENTRYPOINT ["classifier-train"]
