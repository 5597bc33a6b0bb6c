#!/usr/bin/env bash
# Deploy everything AdPlatform needs onto the current Kubernetes cluster: the data plane
# (scripts/deploy-dataplane.sh), the application's Secret, the adplatform chart (whose
# pre-install/pre-upgrade hook Job runs `adplatform migrate --scylla` and
# `adplatform migrate --clickhouse`), then checks that every role is ready and answers.
#
#   scripts/deploy-full-stack.sh staging|production [--dry-run] [--context CTX]
#                                [--image-repository REPO] [--image-tag TAG]
#                                [--skip-dataplane] [--timeout 20m]
#
# --image-tag         the image to run (default: ADP_IMAGE_TAG, else the current commit,
#                     as scripts/build.sh tags it)
# --image-repository  default: ADP_IMAGE, else the chart's image.repository
# --dry-run    print every command of the whole plan, change nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

ENVIRONMENT=""
SKIP_DATAPLANE=0
TIMEOUT=20m
IMAGE_TAG="${ADP_IMAGE_TAG:-}"
IMAGE_REPOSITORY="${ADP_IMAGE:-}"
while [ $# -gt 0 ]; do
    case "$1" in
        staging | production) ENVIRONMENT="$1" ;;
        --dry-run) DRY_RUN=1 ;;
        --context) KUBE_CONTEXT="${2:?--context needs a value}"; shift ;;
        --image-tag) IMAGE_TAG="${2:?--image-tag needs a value}"; shift ;;
        --image-repository) IMAGE_REPOSITORY="${2:?--image-repository needs a value}"; shift ;;
        --skip-dataplane) SKIP_DATAPLANE=1 ;;
        --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[ -n "$ENVIRONMENT" ] || { usage >&2; die "name the environment: staging or production"; }
export DRY_RUN KUBE_CONTEXT
if [ -z "$IMAGE_TAG" ]; then
    IMAGE_TAG="$(git rev-parse --short=12 HEAD 2>/dev/null || true)"
    [ -n "$IMAGE_TAG" ] || die "no --image-tag given and no git commit to derive it from"
fi

NS=adplatform
CHART=deploy/helm/adplatform
ROLES=(decide bid track api ingest)

need_tools kubectl helm openssl

# 1. data plane
if [ "$SKIP_DATAPLANE" = 0 ]; then
    args=("$ENVIRONMENT" --timeout "$TIMEOUT")
    [ "$DRY_RUN" = 1 ] && args+=(--dry-run)
    [ -n "$KUBE_CONTEXT" ] && args+=(--context "$KUBE_CONTEXT")
    printf '+ %s\n' "$(quote scripts/deploy-dataplane.sh "${args[@]}")"
    scripts/deploy-dataplane.sh "${args[@]}"
else
    log "data plane skipped (--skip-dataplane): it must already be deployed"
fi

# 2. the application's Secret: referenced by the chart, never created by it
log "application secrets ($NS/adplatform-secrets)"
ensure_namespace "$NS"
CH_PASSWORD="$(secret_value clickhouse adplatform-clickhouse password)"
ensure_secret "$NS" adplatform-secrets \
    "admin-key=adp_$(gen_secret 24)" \
    "tracking-signing-keys=k1:$(gen_secret 32)" \
    "clickhouse-password=$CH_PASSWORD"
note "read the admin key with: $(kubectl_cmd) -n $NS get secret adplatform-secrets -o jsonpath='{.data.admin-key}' | base64 -d"

# 3. the application. --wait covers the Deployments; the migrate hook Job runs first and
# Helm stops the release if it fails (the previous ReplicaSets keep serving).
log "adplatform $IMAGE_TAG (schema migrations run first, in the chart's pre-upgrade hook)"
image_args=(--set-string "image.tag=$IMAGE_TAG")
[ -z "$IMAGE_REPOSITORY" ] || image_args+=(--set-string "image.repository=$IMAGE_REPOSITORY")
h upgrade --install adplatform "$CHART" --namespace "$NS" \
    -f "$CHART/values-$ENVIRONMENT.yaml" "${image_args[@]}" \
    --wait --timeout "$TIMEOUT"

# 4. check: the migrations ran, every role rolled out, every role answers /readyz
log "checks"
k -n "$NS" wait --for=condition=Complete --timeout=5m job/adplatform-migrate
k -n "$NS" logs job/adplatform-migrate --all-containers --tail=50
for role in "${ROLES[@]}"; do
    k -n "$NS" rollout status "deployment/adplatform-$role" --timeout="$TIMEOUT"
done
for role in "${ROLES[@]}"; do
    k -n "$NS" exec "deployment/adplatform-$role" -- adplatform check-config
done
probe_urls=()
for role in "${ROLES[@]}"; do
    probe_urls+=("http://adplatform-$role.$NS.svc/readyz")
done
# A throw-away curl pod inside the cluster: readiness as the Services see it.
k -n "$NS" run "adp-smoke-$$" --rm -i --restart=Never --quiet \
    --image=curlimages/curl:8.11.1 --command -- \
    curl -fsS --retry 5 --retry-delay 3 --retry-all-errors "${probe_urls[@]}"

if [ "$DRY_RUN" = 1 ]; then
    log "end of plan for '$ENVIRONMENT' (dry run: nothing was changed)"
else
    log "AdPlatform is running in '$ENVIRONMENT'"
    note "decide: $(kubectl_cmd) -n $NS port-forward svc/adplatform-decide 8080:80  then  curl -s localhost:8080/v1/decide -d '{\"placements\":[{\"id\":\"...\"}]}'"
    note "Grafana dashboard 'AdPlatform': $(kubectl_cmd) -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80"
fi
