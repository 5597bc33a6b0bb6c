"""Check the data-plane values files against the upstream charts they are written for.

  python3 deploy/tools/check_values.py --upstream ../shared/helm-upstream deploy/helm

For every values file in FILES:
  1. each key path must exist in the upstream chart's values.yaml or values.schema.json
     (below the free-form subtrees listed in FREE, anything goes: pod specs, cluster
     properties, ...). A key the chart doesn't know is silently ignored by Helm, which is
     how drafts end up "configuring" nothing;
  2. where the chart ships a values.schema.json, the upstream defaults with this file
     layered on top (what Helm validates) must pass it.
Exit status 1 on any failure.
"""

import argparse
import copy
import json
import os
import sys

import jsonschema
import yaml

# our file (relative to deploy/helm) -> upstream folder
FILES = {
    "scylladb/operator/values-staging.yaml": "scylla-operator",
    "scylladb/operator/values-production.yaml": "scylla-operator",
    "scylladb/values-staging.yaml": "scylla",
    "scylladb/values-production.yaml": "scylla",
    "scylladb/manager/values-production.yaml": "scylla-manager",
    "redpanda/values-staging.yaml": "redpanda",
    "redpanda/values-production.yaml": "redpanda",
    "clickhouse/values-staging.yaml": "clickhouse-operator",
    "clickhouse/values-production.yaml": "clickhouse-operator",
    "dragonflydb/values-staging.yaml": "dragonfly",
    "dragonflydb/values-production.yaml": "dragonfly",
    "minio/values-staging.yaml": "minio",
    "minio/values-production.yaml": "minio",
    "kube-prometheus-stack/values.yaml": "kube-prometheus-stack",
}

# Subtrees whose keys are not the chart's but Kubernetes' or the program's own: not checked
# key by key (the schema, where there is one, still applies). Paths use "[]" for list items.
FREE = {
    "scylla-operator": ["resources", "webhookServerResources", "nodeSelector",
                        "webhookServerNodeSelector", "tolerations", "affinity",
                        "securityContext"],
    "scylla": ["racks[].resources", "racks[].agentResources", "racks[].placement",
               "racks[].volumes", "racks[].volumeMounts", "racks[].agentVolumeMounts",
               "backups[]", "repairs[]", "serviceMonitor.labels"],
    "scylla-manager": ["resources", "nodeSelector", "tolerations", "affinity",
                       "scylla.racks[].resources", "scylla.racks[].placement",
                       "scylla.racks[].storage", "scylla.scyllaImage", "scylla.agentImage"],
    "redpanda": ["config.cluster", "config.node", "statefulset.podTemplate.spec",
                 "podTemplate.spec"],
    "clickhouse-operator": ["operator.resources", "metrics.resources", "nodeSelector",
                            "tolerations", "affinity", "podSecurityContext",
                            "operator.containerSecurityContext",
                            "metrics.containerSecurityContext", "serviceMonitor.additionalLabels"],
    "dragonfly": ["resources", "podSecurityContext", "securityContext", "nodeSelector",
                  "tolerations", "affinity", "extraArgs", "serviceMonitor.labels"],
    "minio": ["resources", "nodeSelector", "tolerations", "affinity", "buckets[]",
              "policies[]", "users[]", "environment", "metrics.serviceMonitor.additionalLabels"],
    "kube-prometheus-stack": ["prometheus.prometheusSpec.storageSpec",
                              "prometheus.prometheusSpec.resources",
                              "alertmanager.alertmanagerSpec.storage",
                              "grafana.persistence", "grafana.resources",
                              "grafana.admin", "grafana.sidecar"],
}


# Charts whose values.schema.json describes the custom resource rather than the chart's own
# values (scylla: generated from the ScyllaCluster spec, so it lists `version`,
# `repository`, ... which the chart ignores). Their keys are checked against values.yaml
# plus the keys their templates read that values.yaml leaves out (EXTRA); the schema is
# still validated against.
VALUES_ONLY = {"scylla", "scylla-manager"}
_SCYLLA_TEMPLATE_KEYS = ["dnsDomains", "exposeOptions", "alternator.port",
                         "racks[].agentResources", "racks[].volumes", "racks[].volumeMounts",
                         "racks[].agentVolumeMounts", "racks[].placement.podAffinity",
                         "racks[].placement.podAntiAffinity"]
EXTRA = {
    "scylla": _SCYLLA_TEMPLATE_KEYS,
    "scylla-manager": [f"scylla.{k}" for k in _SCYLLA_TEMPLATE_KEYS],
}


def coalesce(base, over):
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


class Schema:
    """Just enough JSON Schema walking to ask "does this key exist here?"."""

    def __init__(self, root):
        self.root = root or {}

    def resolve(self, node):
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 50:
            ref = node["$ref"]
            if not ref.startswith("#/"):
                return {}
            node = self.root
            for part in ref[2:].split("/"):
                node = node.get(part.replace("~1", "/").replace("~0", "~"), {})
            seen += 1
        return node if isinstance(node, dict) else {}

    def variants(self, node):
        node = self.resolve(node)
        out = [node]
        for k in ("anyOf", "oneOf", "allOf"):
            for sub in node.get(k, []) or []:
                out.extend(self.variants(sub))
        return out

    def child(self, node, key):
        """(exists, child schema, free) for a map key."""
        if node is None:
            return False, None, False
        found, kids, free = False, [], False
        for v in self.variants(node):
            props = v.get("properties") or {}
            if key in props:
                found = True
                kids.append(props[key])
            for pat, sub in (v.get("patternProperties") or {}).items():
                import re
                if re.search(pat, key):
                    found = True
                    kids.append(sub)
            ap = v.get("additionalProperties")
            if isinstance(ap, dict) and ap:
                found = True
                kids.append(ap)
            elif ap is True or (v.get("type") == "object" and not props and ap is None
                                and "patternProperties" not in v):
                free = True
        return found, ({"anyOf": kids} if kids else None), free

    def items(self, node):
        kids = [v.get("items") for v in self.variants(node) if isinstance(v.get("items"), dict)]
        return {"anyOf": kids} if kids else None


def walk(ours, upstream, schema, snode, path, free, problems, extra=frozenset()):
    if isinstance(ours, dict):
        for k, v in ours.items():
            p = f"{path}.{k}" if path else str(k)
            if p in free or p in extra:
                continue
            in_values = isinstance(upstream, dict) and k in upstream
            in_schema, schild, sfree = schema.child(snode, k) if snode is not None else (False, None, False)
            up_free = isinstance(upstream, dict) and not upstream and upstream is not None and path
            if not (in_values or in_schema or sfree or up_free):
                problems.append(f"unknown key `{p}` (not in the chart's values.yaml or schema)")
                continue
            walk(v, upstream.get(k) if in_values else None, schema, schild, p, free, problems, extra)
    elif isinstance(ours, list):
        p = f"{path}[]"
        if p in free:
            return
        up_item = upstream[0] if isinstance(upstream, list) and upstream else None
        s_item = schema.items(snode) if snode is not None else None
        for item in ours:
            if isinstance(item, dict) and up_item is None and s_item is None:
                continue  # a list the chart leaves open (e.g. extraArgs of objects)
            walk(item, up_item, schema, s_item, p, free, problems, extra)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--upstream", required=True)
    ap.add_argument("helm_dir")
    args = ap.parse_args()
    failures = 0
    checked = 0
    for rel, chart in FILES.items():
        path = os.path.join(args.helm_dir, rel)
        if not os.path.exists(path):
            print(f"  FAIL {rel}: missing")
            failures += 1
            continue
        try:
            with open(path) as f:
                ours = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            print(f"  FAIL {rel}: not YAML: {str(e).splitlines()[0]}")
            failures += 1
            continue
        with open(os.path.join(args.upstream, chart, "values.yaml")) as f:
            upstream = yaml.safe_load(f) or {}
        schema_path = os.path.join(args.upstream, chart, "values.schema.json")
        schema_doc = None
        if os.path.exists(schema_path):
            with open(schema_path) as f:
                schema_doc = json.load(f)
        schema = Schema(schema_doc)
        problems = []
        key_schema = None if chart in VALUES_ONLY else schema_doc
        walk(ours, upstream, schema, key_schema, "", set(FREE.get(chart, [])), problems,
             frozenset(EXTRA.get(chart, [])))
        if schema_doc is not None:
            merged = coalesce(upstream, ours)
            # "http://json-schema.org/schema#" (scylla charts) names no draft: use 2020-12,
            # as Helm does.
            validator = jsonschema.validators.validator_for(
                schema_doc, default=jsonschema.Draft202012Validator)
            if "json-schema.org/schema#" in schema_doc.get("$schema", ""):
                validator = jsonschema.Draft202012Validator
            validator = validator(schema_doc)
            for err in sorted(validator.iter_errors(merged), key=lambda e: list(e.path))[:20]:
                where = ".".join(str(p) for p in err.path) or "(top)"
                problems.append(f"schema: {where}: {err.message[:200]}")
        checked += 1
        if problems:
            failures += len(problems)
            for pr in problems:
                print(f"  FAIL {rel} ({chart}): {pr}")
        else:
            how = "keys + values.schema.json" if schema_doc is not None else "keys"
            print(f"  ok   {rel} against {chart} ({how})")
    if failures:
        print(f"values: {failures} problem(s)")
        sys.exit(1)
    print(f"values: {checked} data-plane values files match their upstream charts")


if __name__ == "__main__":
    main()
