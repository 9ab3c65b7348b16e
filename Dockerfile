# syntax=docker/dockerfile:1
#
# crm-service image: a release build on rust:1.95-slim-bookworm, run on distroless cc-debian12
# (glibc and libgcc only: no shell, no package manager) as the nonroot user 65532.
#
# NOT BUILT YET: the machine this file was written on has no Docker engine, so `docker build` has
# never run against it. Build and smoke-test it before relying on it:
#   docker build -t crm-service:dev .
#   docker run --rm crm-service:dev --help
#   docker run --rm -p 50051:50051 crm-service:dev        # SQLite in /home/nonroot, development key
# Needs BuildKit (the default builder since Docker 23) for the RUN cache mounts.
#
# No protoc and no system SQLite: build.rs compiles proto/ with protox, SQLite is bundled
# (libsqlite3-sys), and the C parts (SQLite, ring) are built by the gcc that the rust image ships.

ARG RUST_IMAGE=rust:1.95-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

FROM ${RUST_IMAGE} AS build
WORKDIR /src

# 1. Dependencies: this layer depends only on the manifest and the lock file, so a source change
#    does not download the crates again. The stub targets exist only so cargo can read the package;
#    nothing is compiled here.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src && touch src/lib.rs src/main.rs \
    && cargo fetch --locked \
    && rm -rf src

# 2. The contract, the build script and the sources; target/ lives in a cache mount, so a rebuild
#    recompiles only what changed, and the binary is copied out of it.
COPY build.rs ./
COPY proto ./proto
COPY src ./src
RUN --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin crm-service \
    && install -D -m 0755 target/release/crm-service /out/crm-service

FROM ${RUNTIME_IMAGE}
LABEL org.opencontainers.image.title="crm-service" \
      org.opencontainers.image.description="gRPC service that owns a CRM's customers and makes deleting one safe, reviewable and reversible" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/crm-service /usr/local/bin/crm-service
# The binary's default is 127.0.0.1:50051, unreachable from outside a container.
ENV CRM_LISTEN=0.0.0.0:50051
# Writable for the nonroot user: a local `docker run` keeps its SQLite file and development key
# here. The Helm chart runs with a read-only root filesystem against PostgreSQL instead.
WORKDIR /home/nonroot
USER 65532:65532
# 50051 gRPC; 9464 Prometheus /metrics when CRM_METRICS_LISTEN is set.
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/crm-service"]
CMD ["serve"]
