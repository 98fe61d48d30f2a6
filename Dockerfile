# syntax=docker/dockerfile:1
# ddcompat: the admission webhook image. Non-root (65532), works with a read-only root filesystem
# (the chart mounts an emptyDir at /tmp), pinned base, wheel built in a separate stage.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
COPY policies ./policies
# operator/ddcompat/policies links to ../../policies; the wheel carries the files themselves
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="ddcompat" \
      org.opencontainers.image.description="Admission webhook checking ddtrace (Python) workloads against Datadog's compatibility tables" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://example.invalid/ddcompat"
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 HOME=/tmp
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-compile /wheels/*.whl && rm -rf /wheels \
 && python -m compileall -q /usr/local/lib/python3.11/site-packages/ddcompat
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["ddcompat"]
CMD ["serve"]
