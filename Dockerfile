# The trtllm-operator image: the operator's venv on a slim Python, run as a non-root user. The
# CPU-only fetch Jobs run this image too (build_jobs/run.py from their ConfigMap, with python3 and
# huggingface_hub from this venv: the `fetch` extra), as uid 65532.
# Build: docker build -t <registry>/trtllm-operator:<tag> .
# tests/unit/test_dockerfile.py parses this file and replays the builder's steps in a fresh venv, so keep
# every install step a RUN with plain shell commands that refer to the venv as "$VIRTUAL_ENV".
# Without Docker: `python -m hack.images build` builds this file with buildah on a local Debian base
# (--build-arg BASE_IMAGE; pip's CA bundle and config are build-time mounts only).

# The base is a build argument (default: the public image) so a mirror, a digest or a local base can be
# given without editing this file: --build-arg BASE_IMAGE=<ref> (hack/images.py passes the local one).
ARG BASE_IMAGE=python:3.11.14-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ENV VIRTUAL_ENV=/opt/venv \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv "$VIRTUAL_ENV"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
COPY build_jobs/ build_jobs/
RUN "$VIRTUAL_ENV/bin/python" -m pip install pip==25.3 \
 && "$VIRTUAL_ENV/bin/python" -m pip install --only-binary=:all: --no-binary=trtllm-operator ".[fetch]" \
 && mkdir -p "$VIRTUAL_ENV/share/trtllm-operator" \
 && cp -r build_jobs "$VIRTUAL_ENV/share/trtllm-operator/build_jobs"

FROM ${BASE_IMAGE}
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TRTLLM_BUILD_JOBS_DIR=/opt/venv/share/trtllm-operator/build_jobs \
    USER=trtllm-operator \
    LOGNAME=trtllm-operator
COPY --from=builder /opt/venv /opt/venv
# A passwd entry for the run-time uid: getpass.getuser() (kopf's peering identity) looks it up.
RUN echo 'trtllm-operator:x:65532:65532:trtllm-operator:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'trtllm-operator:x:65532:' >> /etc/group
USER 65532:65532
EXPOSE 8080 9090
ENTRYPOINT ["trtllm-operator"]
