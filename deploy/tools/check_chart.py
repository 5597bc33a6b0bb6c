"""Lint, render and check the adplatform Helm chart, offline, for each values file.

  python3 deploy/tools/check_chart.py --lib .../libhelm_sdkpy.so deploy/helm/adplatform

For the chart defaults and each values-<env>.yaml beside them:
  1. helm lint (Helm 4 SDK) of a temporary copy of the chart whose values.yaml is the
     defaults with that file layered on top, as `helm -f` would; severity 3 fails.
  2. render: `helm install` against an in-memory fake API server (fake_kube.py), which is
     the only way the SDK library renders; its manifest and hooks are the output.
  3. kubernetes-validate --strict on every object, for the Kubernetes versions in
     KUBE_VERSIONS (custom resources such as ServiceMonitor have no schema there: listed).
  4. the chart's promises: non-root, read-only root filesystem, probes on /healthz and
     /readyz, resources, a Service, PDB and topology spread per role, an HPA when asked,
     secrets by reference only, config.toml that parses and names the data plane, the
     migrate hook, and production sized as planned.
Exit status 1 on any failure; the last line is a summary.
"""

import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import tomllib

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fake_kube  # noqa: E402
import helm_sdk  # noqa: E402

KUBE_VERSIONS = ["1.30.0", "1.33.0"]
ROLES = ["decide", "bid", "track", "api", "ingest"]
SECRET_ENV = {"ADP_AUTH_ADMIN_KEY", "ADP_TRACKING_SIGNING_KEYS", "ADP_CLICKHOUSE_PASSWORD"}
REQUIRED_CONFIG = {
    "scylla": ["nodes", "keyspace", "replication", "local_dc"],
    "dragonfly": ["url"],
    "kafka": ["brokers", "topic_prefix"],
    "clickhouse": ["url", "database", "user"],
    "server": ["listen", "data_dir"],
}
# What each environment must come out as: role -> (min, max replicas, cpu, memory limits).
SIZING = {
    "production": {"decide": (50, 500, "8", "16Gi")},
}


class Report:
    def __init__(self):
        self.failures = []
        self.notes = []

    def fail(self, where, msg):
        self.failures.append(f"{where}: {msg}")
        print(f"  FAIL {where}: {msg}")

    def ok(self, msg):
        print(f"  ok   {msg}")


def coalesce(base, over):
    """Helm's layering of a values file over defaults: maps merge, null deletes, the rest
    replaces."""
    if not isinstance(base, dict) or not isinstance(over, dict):
        return copy.deepcopy(over)
    out = copy.deepcopy(base)
    for k, v in over.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = coalesce(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def lint(sdk, chart, values, label, rep):
    with tempfile.TemporaryDirectory() as tmp:
        copy_dir = os.path.join(tmp, os.path.basename(chart.rstrip("/")))
        shutil.copytree(chart, copy_dir)
        with open(os.path.join(copy_dir, "values.yaml"), "w") as f:
            yaml.safe_dump(values, f, sort_keys=False)
        for extra in os.listdir(copy_dir):
            if extra.startswith("values-"):
                os.remove(os.path.join(copy_dir, extra))
        res = sdk.lint(copy_dir)
    worst = 0
    for m in res.get("Messages") or []:
        sev = m.get("Severity", 0)
        worst = max(worst, sev)
        if sev >= 2:
            # The library returns empty error texts: the path and severity are what we get.
            print(f"  lint {helm_sdk.LINT_SEVERITY.get(sev, sev)} in {m.get('Path')}")
    if worst >= 3:
        rep.fail(label, "helm lint found errors (severity 3; the library gives no text: "
                        "the render step below usually names the template and line)")
    else:
        rep.ok(f"helm lint ({helm_sdk.LINT_SEVERITY.get(worst)} at worst)")


def render(sdk, chart, env_values, namespace, rep, label):
    server, store, url = fake_kube.serve()
    try:
        with tempfile.NamedTemporaryFile("w", suffix=".kubeconfig", delete=False) as kc:
            yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": url}}],
                "users": [{"name": "fake", "user": {"token": "fake"}}],
                "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "fake",
                                                          "namespace": namespace}}],
                "current-context": "fake"}, kc)
        try:
            rel = sdk.install(kc.name, namespace, "adplatform", chart, env_values)
        except RuntimeError as e:
            rep.fail(label, f"render failed: {e}")
            return None
        finally:
            os.unlink(kc.name)
    finally:
        server.shutdown()
    text = rel.get("manifest", "")
    hooks = []
    for h in rel.get("hooks") or []:
        text += "\n---\n" + h.get("manifest", "")
        hooks.append(h)
    docs = [d for d in yaml.safe_load_all(text) if d]
    rep.ok(f"rendered {len(docs)} objects ({len(hooks)} hooks)")
    return docs, text


def validate(docs, rep, label):
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError, ValidationError

    unchecked = set()
    bad = 0
    for version in KUBE_VERSIONS:
        for d in docs:
            name = f"{d.get('kind')}/{d.get('metadata', {}).get('name')}"
            try:
                kubernetes_validate.validate(d, version, strict=True)
            except SchemaNotFoundError:
                unchecked.add(d.get("kind"))
            except ValidationError as e:
                bad += 1
                path = "/".join(str(p) for p in e.path)
                rep.fail(label, f"{name} invalid for Kubernetes {version} at {path}: {e.message}")
    if not bad:
        rep.ok(f"kubernetes-validate --strict for {', '.join(KUBE_VERSIONS)}"
               + (f" (no schema, not checked: {', '.join(sorted(unchecked))})" if unchecked else ""))


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def check_promises(docs, values, envname, rep, label):
    errors_before = len(rep.failures)
    deployments = by_kind(docs, "Deployment")
    services = by_kind(docs, "Service")
    pdbs = by_kind(docs, "PodDisruptionBudget")
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    jobs = by_kind(docs, "Job")
    cms = by_kind(docs, "ConfigMap")

    if by_kind(docs, "Secret"):
        rep.fail(label, "the chart renders a Secret; secrets must only be referenced")

    enabled = [r for r in ROLES if (values.get("roles", {}).get(r) or {}).get("enabled", True)]
    for role in enabled:
        name = f"adplatform-{role}"
        d = deployments.get(name)
        if d is None:
            rep.fail(label, f"no Deployment {name}")
            continue
        spec = d["spec"]["template"]["spec"]
        c = spec["containers"][0]
        sc = c.get("securityContext", {})
        psc = spec.get("securityContext", {})
        if not sc.get("readOnlyRootFilesystem"):
            rep.fail(label, f"{name}: root filesystem is not read-only")
        if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
            rep.fail(label, f"{name}: may run as root")
        if sc.get("allowPrivilegeEscalation") is not False:
            rep.fail(label, f"{name}: allowPrivilegeEscalation is not false")
        if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
            rep.fail(label, f"{name}: liveness probe is not on /healthz")
        if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
            rep.fail(label, f"{name}: readiness probe is not on /readyz")
        res = c.get("resources", {})
        if not res.get("requests") or not res.get("limits"):
            rep.fail(label, f"{name}: requests and limits must both be set")
        env = {e["name"]: e for e in c.get("env", [])}
        if env.get("ADP_SERVER_ROLES", {}).get("value") != role:
            rep.fail(label, f"{name}: ADP_SERVER_ROLES is not {role!r}")
        for s in SECRET_ENV:
            if s not in env or "secretKeyRef" not in env[s].get("valueFrom", {}):
                rep.fail(label, f"{name}: {s} must come from a secretKeyRef")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
        vols = {v["name"]: v for v in spec.get("volumes", [])}
        data_dir = values["config"]["server"]["data_dir"]
        if "emptyDir" not in vols.get(mounts.get(data_dir, ""), {}):
            rep.fail(label, f"{name}: data_dir {data_dir} is not an emptyDir mount")
        if not spec.get("topologySpreadConstraints"):
            rep.fail(label, f"{name}: no topology spread constraints")
        if name not in services:
            rep.fail(label, f"{name}: no Service")
        if name not in pdbs:
            rep.fail(label, f"{name}: no PodDisruptionBudget")
        if "replicas" not in d["spec"] and name not in hpas:
            rep.fail(label, f"{name}: no replicas and no HPA")
        if name in hpas and "replicas" in d["spec"]:
            rep.fail(label, f"{name}: has both an HPA and a fixed replica count")
        want = SIZING.get(envname, {}).get(role)
        if want:
            lo, hi, cpu, mem = want
            h = hpas.get(name, {}).get("spec", {})
            if (h.get("minReplicas"), h.get("maxReplicas")) != (lo, hi):
                rep.fail(label, f"{name}: HPA {h.get('minReplicas')}..{h.get('maxReplicas')}, "
                                f"planned {lo}..{hi}")
            lim = res.get("limits", {})
            if (str(lim.get("cpu")), str(lim.get("memory"))) != (cpu, mem):
                rep.fail(label, f"{name}: limits {lim}, planned cpu {cpu} memory {mem}")

    migrate = jobs.get("adplatform-migrate")
    if values.get("migrate", {}).get("enabled", True):
        if migrate is None:
            rep.fail(label, "no migrate Job")
        else:
            hook = migrate["metadata"].get("annotations", {}).get("helm.sh/hook", "")
            if set(hook.split(",")) != {"pre-install", "pre-upgrade"}:
                rep.fail(label, f"migrate Job hook is {hook!r}")
            spec = migrate["spec"]["template"]["spec"]
            steps = [c["args"] for c in spec.get("initContainers", []) + spec["containers"]]
            if ["migrate", "--scylla"] not in steps or ["migrate", "--clickhouse"] not in steps:
                rep.fail(label, f"migrate Job does not run both migrations: {steps}")

    cm = cms.get("adplatform-config")
    if cm is None:
        rep.fail(label, "no ConfigMap adplatform-config")
    else:
        try:
            cfg = tomllib.loads(cm["data"]["config.toml"])
        except tomllib.TOMLDecodeError as e:
            rep.fail(label, f"config.toml does not parse: {e}")
            cfg = {}
        if cfg.get("mode") != "distributed":
            rep.fail(label, "config.toml: mode is not distributed")
        if cfg.get("store", {}).get("backend") != "scylla":
            rep.fail(label, "config.toml: store.backend is not scylla")
        for section, keys in REQUIRED_CONFIG.items():
            for k in keys:
                if not cfg.get(section, {}).get(k):
                    rep.fail(label, f"config.toml: {section}.{k} is missing")
        for section, table in cfg.items():
            for k in (table if isinstance(table, dict) else {}):
                if any(w in k for w in ("password", "admin_key", "signing_keys", "secret")):
                    rep.fail(label, f"config.toml: secret {section}.{k} must come from a Secret")
        if isinstance(cfg.get("server", {}).get("threads"), float):
            rep.fail(label, "config.toml: server.threads rendered as a float")
        listen_port = int(str(cfg.get("server", {}).get("listen", ":0")).rsplit(":", 1)[1])
        if listen_port != int(values.get("containerPort", 8080)):
            rep.fail(label, "config.toml: server.listen port is not containerPort")
    if len(rep.failures) == errors_before:
        rep.ok("chart promises (security, probes, per-role objects, secrets, config, hook"
               + (", sizing" if envname in SIZING else "") + ")")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True, help="libhelm_sdkpy.so")
    ap.add_argument("--out", help="directory to write the rendered manifests to")
    ap.add_argument("chart")
    args = ap.parse_args()

    sdk = helm_sdk.HelmSdk(args.lib)
    print(f"helm SDK: {sdk.version()}")
    rep = Report()
    with open(os.path.join(args.chart, "values.yaml")) as f:
        defaults = yaml.safe_load(f)
    envs = [("defaults", None)] + sorted(
        (fn[len("values-"):-len(".yaml")], os.path.join(args.chart, fn))
        for fn in os.listdir(args.chart) if fn.startswith("values-") and fn.endswith(".yaml"))
    for env, path in envs:
        label = f"chart adplatform: {env}"
        print(f"-- {label}")
        over = {}
        if path:
            with open(path) as f:
                over = yaml.safe_load(f) or {}
        merged = coalesce(defaults, over)
        lint(sdk, args.chart, merged, label, rep)
        out = render(sdk, args.chart, over, "adplatform", rep, label)
        if out is None:
            continue
        docs, text = out
        if args.out:
            os.makedirs(args.out, exist_ok=True)
            with open(os.path.join(args.out, f"adplatform-{env}.yaml"), "w") as f:
                f.write(text)
        validate(docs, rep, label)
        check_promises(docs, merged, env, rep, label)
    if rep.failures:
        print(f"chart: {len(rep.failures)} failure(s)")
        sys.exit(1)
    print(f"chart: {len(envs)} values sets linted, rendered and checked")


if __name__ == "__main__":
    main()
