# syntax=docker/dockerfile:1
# Container image of misp-lookup: a Rust build stage and a slim Debian runtime.
#
# NOTE: this Dockerfile has never been built in this repository's CI, because no container
# engine runs there. ci/deploy-checks/check_dockerfile.py parses it with BuildKit's parser,
# checks its structure and runs the HEALTHCHECK command against a live service.
#
#   docker build -t misp-lookup .
#   docker run --rm -p 8080:8080 misp-lookup serve --demo

FROM rust:1-bookworm AS builder
WORKDIR /src
COPY . .
# The cache mounts keep the crate downloads and build artefacts between builds, so the binary
# is copied out of target/ inside the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/misp-lookup /out/misp-lookup

FROM debian:bookworm-slim
# ca-certificates provides the system trust store for MISP's TLS certificate.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 10001 misp-lookup \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin misp-lookup
COPY --from=builder /out/misp-lookup /usr/local/bin/misp-lookup

# The service listens on 127.0.0.1:8080 by default, which a container port cannot reach.
ENV MISP_LOOKUP_LISTEN=0.0.0.0:8080 \
    MISP_LOOKUP_LOG_FORMAT=json
EXPOSE 8080
USER 10001:10001

# The image has no curl, so bash's /dev/tcp sends the request. The port follows
# MISP_LOOKUP_LISTEN, so overriding it keeps the check working.
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${MISP_LOOKUP_LISTEN##*:} && printf 'GET /healthz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == 'HTTP/1.'[01]' 200 '* ]]"]

ENTRYPOINT ["/usr/local/bin/misp-lookup"]
CMD ["serve"]
