#!/usr/bin/env bash
# Build AdPlatform for release: the binary, the container image, and (with --push) push it.
#
#   scripts/build.sh [--dry-run] [--no-binary] [--no-image] [--push]
#                    [--image REPO] [--tag TAG] [--platform linux/amd64] [--geoip] [--pgo]
#
#   binary  cargo build --release --locked -p adplatform  -> target/release/adplatform
#   image   docker build (the multi-stage Dockerfile builds the binary itself, so the image
#           never contains anything from the host) tagged REPO:TAG and REPO:latest
#   --pgo   profile-guided: the binary from scripts/build-pgo.sh
#           (-> target/pgo/build/release/adplatform; needs llvm-profdata, python3, curl) and the
#           image with Dockerfile ARG PGO=1 (the same script inside the build stage). Two full
#           release builds and a minute of training; BENCHMARKS.md "Session 14" has what it gains
#   --geoip bakes the free IP-to-country database into the image (Dockerfile ARG GEOIP=1;
#           then set config.geo.mmdb_path, see deploy/helm/adplatform/values.yaml)
#   push    docker push REPO:TAG (and :latest); prints the pushed digest for the chart's
#           image.digest
#
# REPO defaults to $ADP_IMAGE or registry.gitlab.com/adplatform/adplatform (the chart's
# image.repository); TAG to $ADP_IMAGE_TAG or the current commit (what
# scripts/deploy-full-stack.sh deploys by default). BUILDER=podman uses podman instead.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

BINARY=1
IMAGE_BUILD=1
PUSH=0
IMAGE="${ADP_IMAGE:-registry.gitlab.com/adplatform/adplatform}"
TAG="${ADP_IMAGE_TAG:-}"
PLATFORM="${ADP_PLATFORM:-linux/amd64}"
BUILDER="${BUILDER:-docker}"
GEOIP=0
PGO=0
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --no-binary) BINARY=0 ;;
        --no-image) IMAGE_BUILD=0 ;;
        --push) PUSH=1 ;;
        --image) IMAGE="${2:?--image needs a value}"; shift ;;
        --tag) TAG="${2:?--tag needs a value}"; shift ;;
        --platform) PLATFORM="${2:?--platform needs a value}"; shift ;;
        --geoip) GEOIP=1 ;;
        --pgo) PGO=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
export DRY_RUN
if [ -z "$TAG" ]; then
    TAG="$(git rev-parse --short=12 HEAD 2>/dev/null || true)"
    [ -n "$TAG" ] || die "no --tag given and no git commit to derive it from"
fi
if [ "$PUSH" = 1 ] && [ "$IMAGE_BUILD" = 0 ]; then
    die "--push needs the image step (drop --no-image)"
fi

tools=()
[ "$BINARY" = 1 ] && tools+=(cargo)
[ "$IMAGE_BUILD" = 1 ] && tools+=("$BUILDER")
[ "${#tools[@]}" -gt 0 ] && need_tools "${tools[@]}"

if [ "$BINARY" = 1 ]; then
    if [ "$PGO" = 1 ]; then
        log "release binary, profile-guided (scripts/build-pgo.sh)"
        run scripts/build-pgo.sh
        run target/pgo/build/release/adplatform --version
    else
        log "release binary"
        run cargo build --release --locked -p adplatform
        run target/release/adplatform --version
    fi
fi

if [ "$IMAGE_BUILD" = 1 ]; then
    how="$PLATFORM"
    if [ "$PGO" = 1 ]; then how="$how, profile-guided"; fi
    log "container image $IMAGE:$TAG ($how)"
    created="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    run env DOCKER_BUILDKIT=1 "$BUILDER" build --platform "$PLATFORM" \
        --build-arg "VERSION=$TAG" --build-arg "CREATED=$created" --build-arg "GEOIP=$GEOIP" --build-arg "PGO=$PGO" \
        --tag "$IMAGE:$TAG" --tag "$IMAGE:latest" .
    # The image runs as a non-root user and answers --version without any configuration.
    run "$BUILDER" run --rm "$IMAGE:$TAG" --version
fi

if [ "$PUSH" = 1 ]; then
    log "push"
    run "$BUILDER" push "$IMAGE:$TAG"
    run "$BUILDER" push "$IMAGE:latest"
    if [ "$DRY_RUN" != 1 ]; then
        digest="$("$BUILDER" inspect --format '{{index .RepoDigests 0}}' "$IMAGE:$TAG")"
        note "pushed $digest  (helm: --set image.digest=${digest#*@})"
    fi
fi
