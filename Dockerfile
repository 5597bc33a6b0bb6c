# syntax=docker/dockerfile:1
# AdPlatform container image: the single `adplatform` binary on a distroless base.
#
#   docker build -t adplatform .          (or scripts/build.sh)
#   docker run --rm -p 8080:8080 adplatform serve --demo
#
# Stage 1 builds the release binary with the workspace's locked dependencies; stage 2 is
# gcr.io/distroless/cc (glibc, libgcc, OpenSSL, CA certificates, tzdata; no shell, no
# package manager) running as the unprivileged "nonroot" user (65532). The process writes
# only to its data directory, so the root filesystem can be mounted read-only.

ARG RUST_VERSION=1.95
# GEOIP=1 bakes the free IP-to-country database (scripts/fetch-geoip.sh, from the npm registry)
# into the image at /usr/share/adplatform/geoip/geo-whois-asn-country.mmdb; set
# `geo.mmdb_path` (Helm: config.geo.mmdb_path) to that path to use it.
ARG GEOIP=0
# PGO=1 builds the binary profile-guided (scripts/build-pgo.sh: an instrumented build trained
# under the load generator's scenarios, then the optimised build): +60-70% bids and +39%
# decisions per core in BENCHMARKS.md "Session 14", for two full release builds and a minute of
# training instead of one build (~30 min instead of ~10 on two cores).
ARG PGO=0

FROM rust:${RUST_VERSION}-bookworm AS build
ARG GEOIP
ARG PGO
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Build tools some -sys crates need (bundled librdkafka builds with cmake); with PGO=1 also what
# the training needs (llvm-profdata from Debian's llvm-19, which reads the raw profiles of the
# pinned rustc; python3 and curl for the training server). Versions come with the pinned rust
# image's Debian release.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config \
 && if [ "$PGO" = 1 ]; then apt-get install -y --no-install-recommends llvm-19 python3 curl; fi \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Cache the registry and the target dir between builds (BuildKit); the binary is copied
# out of the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    if [ "$PGO" = 1 ]; then \
        scripts/build-pgo.sh \
     && install -D -m 0755 target/pgo/build/release/adplatform /out/usr/local/bin/adplatform; \
    else \
        cargo build --release --locked -p adplatform \
     && install -D -m 0755 target/release/adplatform /out/usr/local/bin/adplatform; \
    fi \
 && mkdir -p /out/var/lib/adplatform /out/usr/share/adplatform \
 && if [ "$GEOIP" = 1 ]; then scripts/fetch-geoip.sh /out/usr/share/adplatform/geoip; fi
# The runtime image has only glibc, libgcc/libstdc++ and OpenSSL: fail here, with the list,
# if the binary links anything else (then add the library or link it statically).
RUN ldd /out/usr/local/bin/adplatform | tee /tmp/ldd \
 && if grep -vE 'linux-vdso|ld-linux|lib(c|m|dl|rt|pthread|gcc_s|stdc\+\+|ssl|crypto)\.so' /tmp/ldd; then \
        echo "adplatform links libraries the distroless runtime lacks (above)" >&2; exit 1; \
    fi

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=dev
ARG CREATED=unknown
LABEL org.opencontainers.image.title="adplatform" \
      org.opencontainers.image.description="Self-hosted ad server: ad decisions, OpenRTB bidding, tracking, reporting" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.created="${CREATED}"
COPY --from=build /out/usr/local/bin/adplatform /usr/local/bin/adplatform
COPY --from=build --chown=65532:65532 /out/var/lib/adplatform /var/lib/adplatform
COPY --from=build /out/usr/share/adplatform /usr/share/adplatform
# In a container the server must listen on all interfaces; the data dir is the one
# directory the process writes (mount a volume or emptyDir there).
ENV ADP_SERVER_LISTEN=0.0.0.0:8080 \
    ADP_SERVER_DATA_DIR=/var/lib/adplatform \
    ADP_LOG_FORMAT=json
USER 65532:65532
EXPOSE 8080
VOLUME ["/var/lib/adplatform"]
ENTRYPOINT ["/usr/local/bin/adplatform"]
CMD ["serve"]
