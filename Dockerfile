# syntax=docker/dockerfile:1
# The Rollwise controller image: `rollwise controller run` as an unprivileged user.
#   docker build -t rollwise:0.1.0 .
# Install it in a cluster with `rollwise install --print --image <this image> | kubectl apply -f -`.

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
# Wheels for Rollwise and every dependency, so that the final image needs no compiler or cache.
RUN pip wheel --no-cache-dir --wheel-dir /wheels '.[kubernetes]'

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels 'rollwise[kubernetes]' \
    && useradd --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin rollwise
# Numeric, so that the pod's runAsNonRoot can check it.
USER 10001:10001
WORKDIR /tmp
# Health (liveness/readiness) and Prometheus metrics.
EXPOSE 8080 9090
ENTRYPOINT ["rollwise", "controller", "run"]
