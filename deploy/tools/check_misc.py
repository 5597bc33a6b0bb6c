"""Structural checks of docker-compose.yml, .gitlab-ci.yml and the application config the
deployment layer hands to adplatform.

  python3 deploy/tools/check_misc.py REPO_ROOT

- docker-compose.yml: the four stores and the five roles are there; each role container
  runs `serve` with ADP_MODE=distributed and its own ADP_SERVER_ROLES; the migrations
  (`migrate --scylla`, `migrate --clickhouse`) run before any role; every depends_on names
  a service; every ADP_* variable names a known config key.
- adplatform chart: every key of `config` in values*.yaml is a known config key.
- .gitlab-ci.yml: the stages build, test, bench, image, deploy exist; every job's stage is
  declared and its `needs` are jobs; the test job runs .ci/run; scripts it calls exist.
Known keys are those of config/adplatform.example.toml (a test keeps it complete; the
binary's own check-config runs on the rendered config in check_rendered_config.py).
Exit status 1 on any failure.
"""

import os
import re
import sys
import tomllib

import yaml

ROLES = ["decide", "bid", "track", "api", "ingest"]
STORES = ["scylla", "redpanda", "dragonfly", "clickhouse"]
ENV_ALIASES = {"ADP_CONFIG", "ADP_ADMIN_KEY"}


def known_keys(root):
    with open(os.path.join(root, "config", "adplatform.example.toml"), "rb") as f:
        example = tomllib.load(f)
    keys = set()
    for k, v in example.items():
        if isinstance(v, dict):
            keys.update(f"{k}.{kk}" for kk in v)
        else:
            keys.add(k)
    return keys


def env_to_key(name, keys):
    """ADP_SERVER_MAX_BODY_BYTES -> server.max_body_bytes, if such a key is known."""
    rest = name[len("ADP_"):].lower()
    if rest in keys:
        return rest
    for k in keys:
        if "." in k and k.replace(".", "_") == rest:
            return k
    return None


def check_compose(root, keys, fails):
    path = os.path.join(root, "docker-compose.yml")
    with open(path) as f:
        doc = yaml.safe_load(f)
    services = doc.get("services") or {}
    for s in STORES + ROLES + ["migrate-scylla", "migrate-clickhouse"]:
        if s not in services:
            fails.append(f"docker-compose.yml: no service {s}")
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for d in (deps if isinstance(deps, (dict, list)) else []):
            if d not in services:
                fails.append(f"docker-compose.yml: {name} depends on unknown service {d}")
        env = svc.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) for e in env)
        for var in env:
            if var.startswith("ADP_") and var not in ENV_ALIASES and not env_to_key(var, keys):
                fails.append(f"docker-compose.yml: {name}: {var} is not a known config key")
    for role in ROLES:
        svc = services.get(role) or {}
        env = svc.get("environment") or {}
        if svc.get("command") != ["serve"]:
            fails.append(f"docker-compose.yml: {role} does not run `serve`")
        if env.get("ADP_SERVER_ROLES") != role:
            fails.append(f"docker-compose.yml: {role} has ADP_SERVER_ROLES={env.get('ADP_SERVER_ROLES')}")
        if env.get("ADP_MODE") != "distributed":
            fails.append(f"docker-compose.yml: {role} is not in distributed mode")
        deps = svc.get("depends_on") or {}
        for m in ("migrate-scylla", "migrate-clickhouse"):
            cond = (deps.get(m) or {}).get("condition") if isinstance(deps, dict) else None
            if cond != "service_completed_successfully":
                fails.append(f"docker-compose.yml: {role} does not wait for {m} to complete")
    for m, arg in (("migrate-scylla", "--scylla"), ("migrate-clickhouse", "--clickhouse")):
        if (services.get(m) or {}).get("command") != ["migrate", arg]:
            fails.append(f"docker-compose.yml: {m} does not run `migrate {arg}`")


def check_chart_config(root, keys, fails):
    chart = os.path.join(root, "deploy", "helm", "adplatform")
    for fn in sorted(os.listdir(chart)):
        if not (fn.startswith("values") and fn.endswith(".yaml")):
            continue
        with open(os.path.join(chart, fn)) as f:
            cfg = (yaml.safe_load(f) or {}).get("config") or {}
        for k, v in cfg.items():
            names = [f"{k}.{kk}" for kk in v] if isinstance(v, dict) else [k]
            for n in names:
                if n not in keys:
                    fails.append(f"adplatform chart {fn}: config key {n} is not a known config key")


def check_gitlab(root, fails):
    with open(os.path.join(root, ".gitlab-ci.yml")) as f:
        doc = yaml.safe_load(f)
    stages = doc.get("stages") or []
    for s in ("build", "test", "bench", "image", "deploy"):
        if s not in stages:
            fails.append(f".gitlab-ci.yml: stage {s} missing")
    reserved = {"stages", "variables", "default", "workflow", "include", "image", "services",
                "cache", "before_script", "after_script"}
    jobs = {k: v for k, v in doc.items() if k not in reserved and not k.startswith(".")
            and isinstance(v, dict)}
    for name, job in jobs.items():
        if job.get("stage") not in stages:
            fails.append(f".gitlab-ci.yml: job {name} has undeclared stage {job.get('stage')}")
        for n in job.get("needs") or []:
            n = n.get("job") if isinstance(n, dict) else n
            if n not in jobs:
                fails.append(f".gitlab-ci.yml: job {name} needs unknown job {n}")
        for line in (job.get("before_script") or []) + (job.get("script") or []):
            for script in re.findall(r"(?:^|\s)((?:scripts/[\w.-]+\.sh)|\.ci/run)\b", line):
                if not os.path.exists(os.path.join(root, script)):
                    fails.append(f".gitlab-ci.yml: job {name} calls missing {script}")
    if not any(".ci/run" in " ".join(j.get("script") or []) for j in jobs.values()):
        fails.append(".gitlab-ci.yml: no job runs .ci/run (the README's test command)")


def main():
    root = sys.argv[1]
    fails = []
    keys = known_keys(root)
    check_compose(root, keys, fails)
    check_chart_config(root, keys, fails)
    check_gitlab(root, fails)
    for f in fails:
        print(f"  FAIL {f}")
    if fails:
        print(f"misc: {len(fails)} problem(s)")
        sys.exit(1)
    print("  ok   docker-compose.yml (stores, roles, migrations first, known ADP_* keys)")
    print("  ok   adplatform chart config keys are known config keys")
    print("  ok   .gitlab-ci.yml (stages, needs, scripts, .ci/run)")


if __name__ == "__main__":
    main()
