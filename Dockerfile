# tenantd, one binary for every service of the compose lab (compose.yaml).
#
#   docker build -t tenantd:dev .
#
# Build stage: the workspace, release profile, the lockfile as committed.
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p tenantd \
 && install -D target/release/tenantd /out/tenantd

# Run stage: the binary, the lab's configuration, and curl for the health checks.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /srv/tenantd --create-home tenantd
COPY --from=build /out/tenantd /usr/local/bin/tenantd
COPY --chown=tenantd config /srv/tenantd/config
WORKDIR /srv/tenantd
USER tenantd
ENTRYPOINT ["tenantd"]
CMD ["lab"]
