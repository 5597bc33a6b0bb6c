"""A throw-away, in-memory Kubernetes API server, just enough for `helm install` to render.

The Helm SDK library has lint but no `template`; its install action does render, but only
against a cluster. This server answers the discovery, create, get, list, watch, patch and
delete calls an install makes, on loopback, and keeps the objects it is sent, so the
rendered manifests can be read back and schema-checked. It schedules nothing and runs
nothing: a Job it stores is marked Complete at once, so pre-install hooks "succeed".
"""

import base64
import json
import os
import sys
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

KUBE_VERSION = ("1", "32")

# group/version -> [(resource, kind, namespaced)]
RESOURCES = {
    "v1": [
        ("namespaces", "Namespace", False),
        ("configmaps", "ConfigMap", True),
        ("secrets", "Secret", True),
        ("services", "Service", True),
        ("serviceaccounts", "ServiceAccount", True),
        ("pods", "Pod", True),
        ("persistentvolumeclaims", "PersistentVolumeClaim", True),
        ("events", "Event", True),
    ],
    "apps/v1": [
        ("deployments", "Deployment", True),
        ("statefulsets", "StatefulSet", True),
        ("daemonsets", "DaemonSet", True),
        ("replicasets", "ReplicaSet", True),
    ],
    "batch/v1": [("jobs", "Job", True), ("cronjobs", "CronJob", True)],
    "autoscaling/v2": [("horizontalpodautoscalers", "HorizontalPodAutoscaler", True)],
    "policy/v1": [("poddisruptionbudgets", "PodDisruptionBudget", True)],
    "networking.k8s.io/v1": [
        ("ingresses", "Ingress", True),
        ("networkpolicies", "NetworkPolicy", True),
    ],
    "rbac.authorization.k8s.io/v1": [
        ("roles", "Role", True),
        ("rolebindings", "RoleBinding", True),
        ("clusterroles", "ClusterRole", False),
        ("clusterrolebindings", "ClusterRoleBinding", False),
    ],
    "monitoring.coreos.com/v1": [
        ("servicemonitors", "ServiceMonitor", True),
        ("podmonitors", "PodMonitor", True),
        ("prometheusrules", "PrometheusRule", True),
    ],
}

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


def _resource_list(gv):
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": [
            {"name": r, "singularName": k.lower(), "namespaced": ns, "kind": k, "verbs": VERBS}
            for r, k, ns in RESOURCES[gv]
        ],
    }


def _groups():
    groups = []
    for gv in RESOURCES:
        if "/" not in gv:
            continue
        group, version = gv.split("/")
        v = {"groupVersion": gv, "version": version}
        groups.append({"name": group, "versions": [v], "preferredVersion": v})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


PATH = re.compile(
    r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))"
    r"(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>[^/]+)(?:/(?P<name>[^/]+))?(?:/(?P<sub>status))?$"
)


def _kind(gv, resource):
    for r, k, _ in RESOURCES.get(gv, []):
        if r == resource:
            return k
    return None


def _merge_patch(target, patch):
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = _merge_patch(out.get(k), v)
    return out


# -- the typed clients (Helm's release storage) send protobuf; decode the little they send.
def _pb_fields(buf):
    i, out = 0, []
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wt = key >> 3, key & 7
        if wt == 0:
            val, i = _varint(buf, i)
        elif wt == 2:
            n, i = _varint(buf, i)
            val, i = buf[i:i + n], i + n
        elif wt == 1:
            val, i = buf[i:i + 8], i + 8
        elif wt == 5:
            val, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("unsupported protobuf wire type")
        out.append((field, val))
    return out


def _varint(buf, i):
    shift = val = 0
    while True:
        b = buf[i]
        i += 1
        val |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return val, i


def _pb_map(entries, as_bytes=False):
    out = {}
    for raw in entries:
        kv = dict(_pb_fields(raw))
        v = kv.get(2, b"")
        out[kv.get(1, b"").decode()] = (base64.b64encode(v).decode() if as_bytes
                                        else v.decode())
    return out


def _pb_object(body):
    """Secret or ConfigMap from a k8s protobuf envelope ("k8s\\0" + runtime.Unknown)."""
    if not body.startswith(b"k8s\x00"):
        raise ValueError("not a Kubernetes protobuf body")
    unknown = dict(_pb_fields(body[4:]))
    tm = dict(_pb_fields(unknown.get(1, b"")))
    kind = tm.get(2, b"").decode()
    fields = _pb_fields(unknown.get(2, b""))
    meta_f = _pb_fields(next((v for f, v in fields if f == 1), b""))
    meta = {}
    for f, v in meta_f:
        if f in (1, 2, 3):
            meta[{1: "name", 2: "generateName", 3: "namespace"}[f]] = v.decode()
    meta["labels"] = _pb_map([v for f, v in meta_f if f == 11])
    meta["annotations"] = _pb_map([v for f, v in meta_f if f == 12])
    obj = {"apiVersion": tm.get(1, b"v1").decode(), "kind": kind, "metadata": meta}
    if kind == "Secret":
        obj["data"] = _pb_map([v for f, v in fields if f == 2], as_bytes=True)
        obj["type"] = next((v.decode() for f, v in fields if f == 3), "Opaque")
    elif kind == "ConfigMap":
        obj["data"] = _pb_map([v for f, v in fields if f == 2])
    else:
        raise ValueError(f"protobuf {kind} is not supported")
    return obj


def _pb_str(field, s):
    data = s.encode() if isinstance(s, str) else s
    return bytes([field << 3 | 2, len(data)]) + data


# openapi_v2.Document{swagger: "2.0", info: {title, version}, paths: {}}
_EMPTY_OPENAPI_V2 = (_pb_str(1, "2.0") + _pb_str(2, _pb_str(1, "fake") + _pb_str(2, "v1"))
                     + _pb_str(8, b""))


def _selected(obj, label_sel, field_sel):
    labels = obj.get("metadata", {}).get("labels") or {}
    for term in filter(None, (label_sel or "").split(",")):
        if "!=" in term:
            k, v = term.split("!=", 1)
            if labels.get(k) == v:
                return False
        elif "=" in term:
            k, v = term.replace("==", "=").split("=", 1)
            if labels.get(k) != v:
                return False
        elif labels.get(term) is None:
            return False
    for term in filter(None, (field_sel or "").split(",")):
        k, v = term.replace("==", "=").split("=", 1)
        if k == "metadata.name" and obj["metadata"].get("name") != v:
            return False
        if k == "metadata.namespace" and obj["metadata"].get("namespace") != v:
            return False
    return True


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.objects = {}  # (gv, resource, ns, name) -> object
        self.rv = 1
        self.created = []  # every object created, in order (the rendered release)
        self.unknown = []  # paths asked for that this server does not know

    def next_rv(self):
        self.rv += 1
        return str(self.rv)


class Handler(BaseHTTPRequestHandler):
    store = None  # set by serve()
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet unless FAKE_KUBE_DEBUG is set
        if os.environ.get("FAKE_KUBE_DEBUG"):
            sys.stderr.write("fake-kube: " + (fmt % args) + "\n")

    def _send(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _status(self, code, reason, message):
        self._send(code, {"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Failure", "message": message, "reason": reason,
                          "code": code})

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        if "protobuf" in (self.headers.get("Content-Type") or ""):
            return _pb_object(raw)
        return json.loads(raw) if raw else {}

    def _route(self):
        url = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        m = PATH.match(url.path)
        if not m:
            return url.path, q, None
        gv = "v1" if m.group("cv") else f"{m.group('g')}/{m.group('v')}"
        return url.path, q, (gv, m.group("res"), m.group("ns") or "", m.group("name"))

    # -- discovery and reads
    def do_GET(self):
        path, q, r = self._route()
        if path == "/version":
            return self._send(200, {"major": KUBE_VERSION[0], "minor": KUBE_VERSION[1],
                                    "gitVersion": f"v{KUBE_VERSION[0]}.{KUBE_VERSION[1]}.0",
                                    "platform": "linux/amd64"})
        if path == "/api":
            return self._send(200, {"kind": "APIVersions", "versions": ["v1"],
                                    "serverAddressByClientCIDRs": [
                                        {"clientCIDR": "0.0.0.0/0",
                                         "serverAddress": "127.0.0.1"}]})
        if path == "/apis":
            return self._send(200, _groups())
        if path == "/api/v1":
            return self._send(200, _resource_list("v1"))
        m = re.match(r"^/apis/([^/]+/[^/]+)$", path)
        if m:
            if m.group(1) in RESOURCES:
                return self._send(200, _resource_list(m.group(1)))
            return self._status(404, "NotFound", "no such group version")
        if path == "/openapi/v2":
            # Client-side validation reads this; an empty document makes every kind
            # "unknown", which kubectl's validator skips. Schema checks happen later, with
            # kubernetes-validate, on the objects this server collected.
            data = _EMPTY_OPENAPI_V2
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if path == "/openapi/v3":
            return self._send(200, {"paths": {}})
        if r is None or _kind(r[0], r[1]) is None:
            self.store.unknown.append(path)
            return self._status(404, "NotFound", f"unknown path {path}")
        gv, res, ns, name = r
        st = self.store
        if name:
            with st.lock:
                obj = st.objects.get((gv, res, ns, name))
            if obj is None:
                return self._status(404, "NotFound", f'{res} "{name}" not found')
            return self._send(200, obj)
        if q.get("watch") in ("true", "1"):
            return self._watch(gv, res, ns, q)
        items, rv = self._items(gv, res, ns, q)
        return self._send(200, {"kind": _kind(gv, res) + "List", "apiVersion": gv,
                                "metadata": {"resourceVersion": rv}, "items": items})

    def _items(self, gv, res, ns, q):
        st = self.store
        with st.lock:
            items = [json.loads(json.dumps(o)) for (g, rr, n, _), o in st.objects.items()
                     if g == gv and rr == res and (not ns or n == ns)
                     and _selected(o, q.get("labelSelector"), q.get("fieldSelector"))]
            return items, str(st.rv)

    def _watch(self, gv, res, ns, q):
        """Informers ask for a streamed list (sendInitialEvents): send the objects there
        are as ADDED, the bookmark that ends the initial list, then end the watch."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def chunk(event):
            data = json.dumps(event).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        items, rv = self._items(gv, res, ns, q)
        if q.get("sendInitialEvents") == "true":
            for obj in items:
                chunk({"type": "ADDED", "object": obj})
            chunk({"type": "BOOKMARK", "object": {
                "kind": _kind(gv, res), "apiVersion": gv,
                "metadata": {"resourceVersion": rv,
                             "annotations": {"k8s.io/initial-events-end": "true"}}}})
        self.wfile.flush()
        time.sleep(1.0)
        self.wfile.write(b"0\r\n\r\n")
        return None

    # -- writes
    def do_POST(self):
        _, _, r = self._route()
        if r is None or _kind(r[0], r[1]) is None:
            return self._status(404, "NotFound", "unknown resource")
        gv, res, ns, _ = r
        obj = self._body()
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name:
            return self._status(422, "Invalid", "metadata.name is required")
        st = self.store
        with st.lock:
            key = (gv, res, ns, name)
            if key in st.objects:
                return self._status(409, "AlreadyExists", f'{res} "{name}" already exists')
            st.created.append(json.loads(json.dumps(obj)))
            if ns:
                meta["namespace"] = ns
            meta.update(uid=str(uuid.uuid4()), resourceVersion=st.next_rv(),
                        creationTimestamp="2026-01-01T00:00:00Z", generation=1)
            if res == "jobs":
                obj["status"] = {"succeeded": 1, "startTime": "2026-01-01T00:00:00Z",
                                 "completionTime": "2026-01-01T00:00:01Z",
                                 "conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                                                {"type": "Complete", "status": "True"}]}
            st.objects[key] = obj
        return self._send(201, obj)

    def _update(self, patch):
        _, _, r = self._route()
        if r is None or not r[3]:
            return self._status(404, "NotFound", "unknown resource")
        gv, res, ns, name = r[:4]
        body = self._body()
        st = self.store
        with st.lock:
            key = (gv, res, ns, name)
            cur = st.objects.get(key)
            if cur is None:
                return self._status(404, "NotFound", f'{res} "{name}" not found')
            new = _merge_patch(cur, body) if patch else body
            new.setdefault("metadata", {})["resourceVersion"] = st.next_rv()
            st.objects[key] = new
        return self._send(200, new)

    def do_PUT(self):
        return self._update(False)

    def do_PATCH(self):
        return self._update(True)

    def do_DELETE(self):
        self._body()  # delete options; read so the connection stays in step
        _, _, r = self._route()
        if r is None or not r[3]:
            return self._status(404, "NotFound", "unknown resource")
        st = self.store
        with st.lock:
            obj = st.objects.pop(r[:4], None)
        if obj is None:
            return self._status(404, "NotFound", f'{r[1]} "{r[3]}" not found')
        return self._send(200, {"kind": "Status", "apiVersion": "v1", "status": "Success"})


def serve():
    """Start the server on a free loopback port; returns (server, store, url)."""
    store = Store()
    handler = type("BoundHandler", (Handler,), {"store": store})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, store, f"http://127.0.0.1:{server.server_address[1]}"
