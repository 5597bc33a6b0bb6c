# shellcheck shell=bash
# Helpers shared by scripts/deploy-dataplane.sh and scripts/deploy-full-stack.sh.
# Sourced, never run. Every command that changes anything goes through `run`, `run_sh` or
# `ensure_secret`, so --dry-run prints the whole plan and touches nothing.

DRY_RUN="${DRY_RUN:-0}"
KUBE_CONTEXT="${KUBE_CONTEXT:-}"

log() { printf '\n== %s\n' "$*"; }
note() { printf '   %s\n' "$*"; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Print a command (shell-quoted), then run it unless this is a dry run.
run() {
    printf '+ %s\n' "$(quote "$@")"
    if [ "$DRY_RUN" = 1 ]; then
        return 0
    fi
    "$@"
}

# Same for a pipeline or anything needing the shell; the argument is one string.
run_sh() {
    printf '+ %s\n' "$1"
    if [ "$DRY_RUN" = 1 ]; then
        return 0
    fi
    bash -o pipefail -c "$1"
}

quote() {
    local out="" a
    for a in "$@"; do
        if [[ "$a" =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then
            out+="$a "
        elif [[ "$a" != *"'"* ]]; then
            out+="'$a' "
        else
            out+="$(printf '%q' "$a") "
        fi
    done
    printf '%s' "${out% }"
}

# kubectl / helm with the chosen context, if one was given.
k() {
    if [ -n "$KUBE_CONTEXT" ]; then
        run kubectl --context "$KUBE_CONTEXT" "$@"
    else
        run kubectl "$@"
    fi
}
h() {
    if [ -n "$KUBE_CONTEXT" ]; then
        run helm --kube-context "$KUBE_CONTEXT" "$@"
    else
        run helm "$@"
    fi
}
kubectl_cmd() {
    if [ -n "$KUBE_CONTEXT" ]; then
        printf 'kubectl --context %q' "$KUBE_CONTEXT"
    else
        printf 'kubectl'
    fi
}
helm_cmd() {
    if [ -n "$KUBE_CONTEXT" ]; then
        printf 'helm --kube-context %q' "$KUBE_CONTEXT"
    else
        printf 'helm'
    fi
}

# need_tools TOOL... : every missing tool gets its own message. A dry run only notes them,
# so the plan can be printed on a machine without the tools.
need_tools() {
    local missing=0 t hint
    for t in "$@"; do
        if command -v "$t" >/dev/null 2>&1; then
            continue
        fi
        case "$t" in
            kubectl) hint="install kubectl matching the cluster (k3s nodes have it as 'k3s kubectl')" ;;
            helm) hint="install Helm 3.8+ (https://helm.sh/docs/intro/install/)" ;;
            openssl) hint="apt-get install openssl (generates the secrets it creates)" ;;
            curl) hint="apt-get install curl" ;;
            docker) hint="install Docker with BuildKit (or set BUILDER=podman)" ;;
            cargo) hint="install Rust with rustup (https://rustup.rs)" ;;
            *) hint="install it and re-run" ;;
        esac
        if [ "$DRY_RUN" = 1 ]; then
            note "note: '$t' is not installed here; a real run needs it: $hint"
        else
            printf 'error: %s is required but not found: %s\n' "$t" "$hint" >&2
            missing=1
        fi
    done
    [ "$missing" = 0 ] || exit 1
}

# gen_secret BYTES : a random secret value (hex), or a placeholder in a dry run.
gen_secret() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '<generated>'
    else
        openssl rand -hex "$1"
    fi
}

# ensure_secret NAMESPACE NAME KEY=VALUE... : create the Secret unless it exists. Values are
# never printed. Existing Secrets are left alone (rotate them by hand, see docs/DEPLOY.md).
ensure_secret() {
    local ns="$1" name="$2" kv args=()
    shift 2
    for kv in "$@"; do
        args+=(--from-literal="$kv")
    done
    printf '+ %s -n %s get secret %s || %s -n %s create secret generic %s %s\n' \
        "$(kubectl_cmd)" "$ns" "$name" "$(kubectl_cmd)" "$ns" "$name" \
        "$(for kv in "$@"; do printf -- '--from-literal=%s=<redacted> ' "${kv%%=*}"; done)"
    if [ "$DRY_RUN" = 1 ]; then
        return 0
    fi
    if kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} -n "$ns" get secret "$name" >/dev/null 2>&1; then
        note "secret $ns/$name exists; kept"
    else
        kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} -n "$ns" create secret generic "$name" "${args[@]}" >/dev/null
        note "secret $ns/$name created"
    fi
}

# secret_value NAMESPACE NAME KEY : print a key of an existing Secret (real runs only).
secret_value() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '<from %s/%s>' "$1" "$2"
        return 0
    fi
    kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} -n "$1" get secret "$2" \
        -o "jsonpath={.data.$3}" | base64 -d
}

ensure_namespace() {
    run_sh "$(kubectl_cmd) create namespace $1 --dry-run=client -o yaml | $(kubectl_cmd) apply -f -"
}

# wait_generation NAMESPACE RESOURCE/NAME TIMEOUT : wait until the operator has seen the
# latest spec (status.observedGeneration == metadata.generation), so that the condition
# waits that follow don't pass on the status of the previous spec.
wait_generation() {
    local ns="$1" obj="$2" timeout="$3" gen nsargs=()
    [ -z "$ns" ] || nsargs=(-n "$ns")
    printf '+ %s%s wait %s --for=jsonpath={.status.observedGeneration}=<metadata.generation> --timeout=%s\n' \
        "$(kubectl_cmd)" "${ns:+ -n $ns}" "$obj" "$timeout"
    if [ "$DRY_RUN" = 1 ]; then
        return 0
    fi
    gen="$(kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} "${nsargs[@]}" get "$obj" -o 'jsonpath={.metadata.generation}')"
    kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} "${nsargs[@]}" wait "$obj" \
        --for="jsonpath={.status.observedGeneration}=$gen" --timeout="$timeout"
}
