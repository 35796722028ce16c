# dnswatch image: slim, non-root, no build tools at run time.
#   docker build -t ghcr.io/hubble-dns-watcher/dnswatch:0.1.0 .
# The base is pinned to an exact Python and Debian release; pin its digest too in your registry
# mirror (`docker buildx imagetools inspect python:3.11.11-slim-bookworm`).
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY watcher ./watcher
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1
RUN groupadd --gid 10001 dnswatch \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin dnswatch
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
EXPOSE 9910
ENTRYPOINT ["dnswatch"]
CMD ["run"]
