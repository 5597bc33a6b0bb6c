#!/usr/bin/env bash
# Deploy AdPlatform's data plane onto the current Kubernetes cluster: cert-manager, the
# monitoring stack, ScyllaDB (operator + cluster), Redpanda, DragonflyDB, ClickHouse
# (operator + installation) and MinIO, with the values in deploy/helm/*/values-<ENV>.yaml.
#
#   scripts/deploy-dataplane.sh staging|production [--dry-run] [--context CTX]
#                               [--skip-monitoring] [--timeout 20m]
#
# Idempotent: every step is `helm upgrade --install` or `kubectl apply`, so re-running it
# upgrades in place. It waits on what really says a store is ready: the ScyllaCluster's
# conditions, Redpanda's own health check, the ClickHouseInstallation's status, rollouts of
# the stores' StatefulSets, never just "the operator pod is running". Operator charts are
# installed without `helm --wait` and then waited on by rollout, because installing an
# operator creates no cluster: the custom resource that follows does.
#
# --dry-run prints every command and changes nothing (no cluster or tools needed).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/lib.sh
. deploy/lib.sh

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

ENVIRONMENT=""
SKIP_MONITORING=0
TIMEOUT=20m
while [ $# -gt 0 ]; do
    case "$1" in
        staging | production) ENVIRONMENT="$1" ;;
        --dry-run) DRY_RUN=1 ;;
        --context) KUBE_CONTEXT="${2:?--context needs a value}"; shift ;;
        --skip-monitoring) SKIP_MONITORING=1 ;;
        --timeout) TIMEOUT="${2:?--timeout needs a value}"; shift ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
[ -n "$ENVIRONMENT" ] || { usage >&2; die "name the environment: staging or production"; }
export DRY_RUN KUBE_CONTEXT

# Chart versions, pinned. deploy/helm/*/values-*.yaml are written against these (their
# upstream values.yaml copies are in ../shared/helm-upstream); bump them together.
CERT_MANAGER_VERSION=v1.18.2
KUBE_PROMETHEUS_STACK_VERSION=88.5.3
SCYLLA_OPERATOR_VERSION=v1.21.1
REDPANDA_VERSION=26.2.2
DRAGONFLY_VERSION=v1.40.1
CLICKHOUSE_OPERATOR_VERSION=0.25.6
MINIO_VERSION=5.4.0
# The ScyllaDB local CSI driver (production StorageClass scylladb-local-xfs) is not a chart:
# its manifests come from the operator's repository at the same release.
LOCAL_CSI_BASE="https://raw.githubusercontent.com/scylladb/scylla-operator/${SCYLLA_OPERATOR_VERSION}/examples/common/local-volume-provisioner/local-csi-driver"

V=deploy/helm
M=deploy/manifests
KC="$(kubectl_cmd)"

if [ "$DRY_RUN" = 1 ]; then
    log "data plane for '$ENVIRONMENT' (dry run: commands are printed, nothing is changed)"
else
    log "data plane for '$ENVIRONMENT'"
fi
need_tools kubectl helm openssl
if [ "$DRY_RUN" != 1 ]; then
    kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} version >/dev/null 2>&1 \
        || die "kubectl cannot reach a cluster (context: ${KUBE_CONTEXT:-current}); see docs/DEPLOY.md"
    if [ "$ENVIRONMENT" = production ]; then
        n="$(kubectl ${KUBE_CONTEXT:+--context "$KUBE_CONTEXT"} get nodes -l scylla.scylladb.com/node-type=scylla -o name | wc -l)"
        [ "$n" -ge 6 ] || die "production needs 6 nodes labelled scylla.scylladb.com/node-type=scylla, found $n (ansible/playbooks/k3s.yml labels them from the inventory)"
    fi
fi

log "chart repositories"
run helm repo add jetstack https://charts.jetstack.io --force-update
run helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update
run helm repo add scylla https://scylla-operator-charts.storage.googleapis.com/stable --force-update
run helm repo add redpanda https://charts.redpanda.com --force-update
run helm repo add clickhouse-operator https://docs.altinity.com/clickhouse-operator/ --force-update
run helm repo add minio https://charts.min.io/ --force-update
run helm repo update

log "namespaces"
for ns in cert-manager monitoring scylla-operator scylla redpanda dragonfly clickhouse minio; do
    ensure_namespace "$ns"
done
[ "$ENVIRONMENT" = production ] && ensure_namespace scylla-manager

log "credentials (generated once, kept in Secrets, never printed)"
ensure_secret monitoring grafana-admin admin-user=admin "admin-password=$(gen_secret 24)"
ensure_secret minio minio-root rootUser=adplatform "rootPassword=$(gen_secret 24)"
ensure_secret clickhouse adplatform-clickhouse "password=$(gen_secret 24)"
ensure_secret clickhouse clickhouse-operator-credentials "password=$(gen_secret 24)"
if [ "$ENVIRONMENT" = production ]; then
    # Scylla Manager's agent on each Scylla node backs up to MinIO with these credentials.
    MINIO_USER="$(secret_value minio minio-root rootUser)"
    MINIO_PASSWORD="$(secret_value minio minio-root rootPassword)"
    AGENT_CONFIG="$(printf 's3:\n  provider: Minio\n  endpoint: http://minio.minio.svc.cluster.local:9000\n  access_key_id: %s\n  secret_access_key: %s\n' "$MINIO_USER" "$MINIO_PASSWORD")"
    ensure_secret scylla scylla-agent-config "scylla-manager-agent.yaml=$AGENT_CONFIG"
fi

if [ "$ENVIRONMENT" = production ]; then
    log "ingress: k3s' Traefik on the serving nodes, on the load balancer's NodePorts"
    k apply -f "$M/traefik/helmchartconfig-production.yaml"
    # k3s' helm-controller re-installs Traefik with these values; the DaemonSet rolling out
    # on the serving nodes is the sign it is done.
    k -n kube-system rollout status daemonset/traefik --timeout="$TIMEOUT"
fi

log "cert-manager (certificates for the scylla-operator webhook)"
h upgrade --install cert-manager jetstack/cert-manager --namespace cert-manager \
    --version "$CERT_MANAGER_VERSION" -f "$V/cert-manager/values.yaml"
for d in cert-manager cert-manager-cainjector cert-manager-webhook; do
    k -n cert-manager rollout status "deployment/$d" --timeout="$TIMEOUT"
done

if [ "$SKIP_MONITORING" = 0 ]; then
    log "monitoring: kube-prometheus-stack (also the ServiceMonitor/PrometheusRule CRDs the charts below use)"
    h upgrade --install kube-prometheus-stack prometheus-community/kube-prometheus-stack \
        --namespace monitoring --version "$KUBE_PROMETHEUS_STACK_VERSION" \
        -f "$V/kube-prometheus-stack/values.yaml"
    k wait --for=condition=Established --timeout=2m \
        crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com
    k -n monitoring rollout status deployment/kube-prometheus-stack-operator --timeout="$TIMEOUT"
else
    log "monitoring skipped: the ServiceMonitor CRD must already exist"
    k get crd servicemonitors.monitoring.coreos.com prometheusrules.monitoring.coreos.com
fi

log "ScyllaDB operator"
# Helm installs a chart's CRDs on first install only and never upgrades them: apply them
# from the pinned chart on every run.
run_sh "$(helm_cmd) show crds scylla/scylla-operator --version $SCYLLA_OPERATOR_VERSION | $KC apply --server-side --force-conflicts -f -"
h upgrade --install scylla-operator scylla/scylla-operator --namespace scylla-operator \
    --version "$SCYLLA_OPERATOR_VERSION" -f "$V/scylladb/operator/values-$ENVIRONMENT.yaml"
# The operator and its webhook must be serving before a ScyllaCluster can be admitted.
k -n scylla-operator rollout status deployment/scylla-operator --timeout="$TIMEOUT"
k -n scylla-operator rollout status deployment/webhook-server --timeout="$TIMEOUT"

if [ "$ENVIRONMENT" = production ]; then
    log "ScyllaDB nodes: local CSI driver and NodeConfig (RAID0 + XFS on the NVMe partitions)"
    for f in 00_namespace.yaml 00_clusterrole_def.yaml 00_clusterrole.yaml \
        00_scylladb-local-xfs.storageclass.yaml 10_csidriver.yaml 10_serviceaccount.yaml \
        20_clusterrolebinding.yaml 50_daemonset.yaml; do
        k apply --server-side -f "$LOCAL_CSI_BASE/$f"
    done
    k -n local-csi-driver rollout status daemonset/local-csi-driver --timeout="$TIMEOUT"
    k apply --server-side -f "$M/scylla/nodeconfig-production.yaml"
    wait_generation "" nodeconfigs.scylla.scylladb.com/scylla-nodes "$TIMEOUT"
    k wait --for=condition=Progressing=False --timeout="$TIMEOUT" nodeconfigs.scylla.scylladb.com/scylla-nodes
    k wait --for=condition=Degraded=False --timeout="$TIMEOUT" nodeconfigs.scylla.scylladb.com/scylla-nodes
    k wait --for=condition=Available=True --timeout="$TIMEOUT" nodeconfigs.scylla.scylladb.com/scylla-nodes
fi

log "ScyllaDB cluster"
h upgrade --install scylla scylla/scylla --namespace scylla \
    --version "$SCYLLA_OPERATOR_VERSION" -f "$V/scylladb/values-$ENVIRONMENT.yaml"
wait_generation scylla scyllaclusters.scylla.scylladb.com/scylla "$TIMEOUT"
k -n scylla wait --for=condition=Progressing=False --timeout="$TIMEOUT" scyllaclusters.scylla.scylladb.com/scylla
k -n scylla wait --for=condition=Degraded=False --timeout="$TIMEOUT" scyllaclusters.scylla.scylladb.com/scylla
k -n scylla wait --for=condition=Available=True --timeout="$TIMEOUT" scyllaclusters.scylla.scylladb.com/scylla

if [ "$ENVIRONMENT" = production ]; then
    log "Scylla Manager (backups to MinIO, repairs)"
    h upgrade --install scylla-manager scylla/scylla-manager --namespace scylla-manager \
        --version "$SCYLLA_OPERATOR_VERSION" -f "$V/scylladb/manager/values-production.yaml"
    k -n scylla-manager rollout status deployment/scylla-manager --timeout="$TIMEOUT"
fi

log "Redpanda"
# No --wait: the chart's post-install job (cluster properties) is a hook Helm waits for
# anyway; the brokers are waited on below.
h upgrade --install redpanda redpanda/redpanda --namespace redpanda \
    --version "$REDPANDA_VERSION" -f "$V/redpanda/values-$ENVIRONMENT.yaml" --timeout "$TIMEOUT"
k -n redpanda rollout status statefulset/redpanda --timeout="$TIMEOUT"
# Healthy = every broker up and no leaderless or under-replicated partitions.
k -n redpanda exec redpanda-0 -c redpanda -- \
    timeout 600 rpk cluster health --watch --exit-when-healthy

log "DragonflyDB"
h upgrade --install dragonfly oci://ghcr.io/dragonflydb/dragonfly/helm/dragonfly \
    --namespace dragonfly --version "$DRAGONFLY_VERSION" -f "$V/dragonflydb/values-$ENVIRONMENT.yaml"
# storage.enabled makes it a StatefulSet; its readiness probe pings Dragonfly itself.
k -n dragonfly rollout status statefulset/dragonfly --timeout="$TIMEOUT"

log "ClickHouse operator"
# The operator's own ClickHouse user: its password comes from a Secret, handed to Helm in a
# private temporary values file so that it is never on a command line or in the output.
CH_VALUES="<private temp file>"
if [ "$DRY_RUN" != 1 ]; then
    CH_VALUES="$(mktemp)"
    trap 'rm -f "$CH_VALUES"' EXIT
    chmod 600 "$CH_VALUES"
    printf 'secret:\n  password: "%s"\n' "$(secret_value clickhouse clickhouse-operator-credentials password)" >"$CH_VALUES"
fi
note "($CH_VALUES holds secret.password, read from Secret clickhouse/clickhouse-operator-credentials)"
h upgrade --install clickhouse-operator clickhouse-operator/altinity-clickhouse-operator \
    --namespace clickhouse --version "$CLICKHOUSE_OPERATOR_VERSION" \
    -f "$V/clickhouse/values-$ENVIRONMENT.yaml" -f "$CH_VALUES"
k -n clickhouse rollout status deployment/clickhouse-operator --timeout="$TIMEOUT"

log "ClickHouse"
if [ "$ENVIRONMENT" = production ]; then
    k -n clickhouse apply -f "$M/clickhouse/clickhousekeeperinstallation-production.yaml"
    k -n clickhouse wait --for=jsonpath='{.status.status}'=Completed --timeout="$TIMEOUT" \
        clickhousekeeperinstallations.clickhouse-keeper.altinity.com/adplatform-keeper
fi
k -n clickhouse apply -f "$M/clickhouse/clickhouseinstallation-$ENVIRONMENT.yaml"
# The operator sets status.status to Completed once every host of the installation is
# reconciled and answering; InProgress until then.
k -n clickhouse wait --for=jsonpath='{.status.status}'=Completed --timeout="$TIMEOUT" \
    clickhouseinstallations.clickhouse.altinity.com/adplatform

log "MinIO (backups)"
h upgrade --install minio minio/minio --namespace minio --version "$MINIO_VERSION" \
    -f "$V/minio/values-$ENVIRONMENT.yaml" --timeout "$TIMEOUT"
if [ "$ENVIRONMENT" = production ]; then
    k -n minio rollout status statefulset/minio --timeout="$TIMEOUT"
else
    k -n minio rollout status deployment/minio --timeout="$TIMEOUT"
fi

if [ "$DRY_RUN" = 1 ]; then
    log "end of plan for '$ENVIRONMENT' (dry run); endpoints once deployed:"
else
    log "data plane for '$ENVIRONMENT' is ready"
fi
note "ScyllaDB   scylla-client.scylla.svc:9042 (datacenter dc1)"
note "Redpanda   redpanda-0.redpanda.redpanda.svc:9093 (Kafka API)"
note "Dragonfly  dragonfly.dragonfly.svc:6379"
note "ClickHouse clickhouse-adplatform.clickhouse.svc:8123 (user adplatform, Secret clickhouse/adplatform-clickhouse)"
note "MinIO      minio.minio.svc:9000 (Secret minio/minio-root)"
note "Grafana    kubectl -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80"
