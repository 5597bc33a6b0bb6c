"""Runs the real binary's `adplatform check-config` on the config.toml the chart renders, once
per role with that role's environment (ADP_SERVER_ROLES and the secrets the chart takes from
its Secret, here with placeholder values), so a values key the application does not know, or a
combination it refuses, fails the deployment checks instead of a rollout.

Also runs it with the environment of every adplatform service in docker-compose.yml.

usage: check_rendered_config.py --bin ADPLATFORM [--compose docker-compose.yml] RENDERED_DIR
"""

import argparse
import glob
import os
import subprocess
import sys
import tempfile

import yaml

ROLES = ["decide", "bid", "track", "api", "ingest"]
PLACEHOLDER_SECRETS = {
    "ADP_AUTH_ADMIN_KEY": "placeholder-admin-key-0123456789",
    "ADP_TRACKING_SIGNING_KEYS": "k1:0123456789abcdef0123456789abcdef",
    "ADP_CLICKHOUSE_PASSWORD": "placeholder",
}


def check_compose(binary, path):
    with open(path) as f:
        compose = yaml.safe_load(f)
    failures, checked = 0, []
    for name, svc in (compose.get("services") or {}).items():
        env = svc.get("environment") or {}
        if not isinstance(env, dict) or not any(k.startswith("ADP_") for k in env):
            continue
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("ADP_")}
        run_env.update({k: str(v) for k, v in env.items()})
        r = subprocess.run([binary, "check-config"], env=run_env, capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            print(f"  FAIL docker-compose.yml service {name}: {r.stderr.strip()}")
            failures += 1
        checked.append(name)
    if not failures:
        print(f"  ok   docker-compose.yml: check-config accepts services {checked}")
    return failures


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--compose")
    ap.add_argument("rendered")
    args = ap.parse_args()
    failures = check_compose(args.bin, args.compose) if args.compose else 0
    files = sorted(glob.glob(os.path.join(args.rendered, "*.yaml")))
    if not files:
        print(f"  FAIL no rendered manifests in {args.rendered}")
        return 1
    for path in files:
        with open(path) as f:
            docs = [d for d in yaml.safe_load_all(f) if d]
        configs = [d for d in docs if d.get("kind") == "ConfigMap" and "config.toml" in d.get("data", {})]
        roles = {
            d["metadata"]["labels"].get("app.kubernetes.io/component")
            for d in docs
            if d.get("kind") == "Deployment"
        }
        if not configs:
            print(f"  FAIL {os.path.basename(path)}: no config.toml ConfigMap")
            failures += 1
            continue
        with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as tmp:
            tmp.write(configs[0]["data"]["config.toml"])
            cfg_path = tmp.name
        file_failures = 0
        try:
            for role in ROLES:
                if roles and role not in roles:
                    continue
                env = {k: v for k, v in os.environ.items() if not k.startswith("ADP_")}
                env.update(PLACEHOLDER_SECRETS)
                env["ADP_SERVER_ROLES"] = role
                r = subprocess.run(
                    [args.bin, "--config", cfg_path, "check-config"],
                    env=env, capture_output=True, text=True, timeout=60,
                )
                if r.returncode != 0:
                    print(f"  FAIL {os.path.basename(path)} role {role}: {r.stderr.strip()}")
                    file_failures += 1
            failures += file_failures
            if not file_failures:
                print(f"  ok   {os.path.basename(path)}: check-config accepts it for roles {sorted(r for r in roles if r)}")
        finally:
            os.unlink(cfg_path)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
