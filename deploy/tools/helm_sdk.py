"""Helm's Go SDK through the C API of the helm-sdkpy wheel, without its Python wrapper.

The wheel bundles helm_sdkpy/_lib/linux-amd64/libhelm_sdkpy.so (Helm 4, built with cgo).
Its Python wrapper wants Python 3.12; this module loads the library with cffi directly, so
it works on Debian bookworm's 3.11. Used: version, lint, and install (against
deploy/tools/fake_kube.py, to render a chart: the library has no `template`).
"""

import json
import os
import sys

import cffi

_CDEF = """
typedef unsigned long long helm_sdkpy_handle;
char* helm_sdkpy_last_error(void);
void helm_sdkpy_free(void* ptr);
char* helm_sdkpy_version_string(void);
int helm_sdkpy_config_create(char* namespace, char* kubeconfig, char* kubecontext,
                             char* options_json, helm_sdkpy_handle* handle_out);
void helm_sdkpy_config_destroy(helm_sdkpy_handle handle);
int helm_sdkpy_lint(helm_sdkpy_handle handle, char* chart_path, char** result_json);
int helm_sdkpy_install(helm_sdkpy_handle handle, char* release_name, char* chart_path,
                       char* values_json, char* version, char* options_json,
                       char** result_json);
"""

LINT_SEVERITY = {0: "unknown", 1: "info", 2: "warning", 3: "error"}


class HelmSdk:
    def __init__(self, lib_path):
        self.ffi = cffi.FFI()
        self.ffi.cdef(_CDEF)
        self.lib = self.ffi.dlopen(lib_path)

    def _c(self, s):
        return self.ffi.new("char[]", s.encode())

    def _take(self, ptr):
        if ptr == self.ffi.NULL:
            return ""
        s = self.ffi.string(ptr).decode("utf-8", "replace")
        self.lib.helm_sdkpy_free(ptr)
        return s

    def _last_error(self):
        return self._take(self.lib.helm_sdkpy_last_error())

    def _config(self, namespace, kubeconfig):
        handle = self.ffi.new("helm_sdkpy_handle *")
        rc = self.lib.helm_sdkpy_config_create(
            self._c(namespace), self._c(kubeconfig), self._c(""), self._c("{}"), handle)
        if rc != 0:
            raise RuntimeError("helm_sdkpy_config_create failed: " + self._last_error())
        return handle[0]

    def version(self):
        return self._take(self.lib.helm_sdkpy_version_string())

    def lint(self, chart_path):
        """Lint a chart directory with its own values.yaml; returns the parsed result.
        Lint contacts no cluster, so no kubeconfig is needed."""
        handle = self._config("default", "")
        try:
            out = self.ffi.new("char **")
            rc = self.lib.helm_sdkpy_lint(handle, self._c(os.path.abspath(chart_path)), out)
            if rc != 0:
                raise RuntimeError("helm lint failed to run: " + self._last_error())
            return json.loads(self._take(out[0]) or "{}")
        finally:
            self.lib.helm_sdkpy_config_destroy(handle)

    def install(self, kubeconfig, namespace, release, chart_path, values=None, timeout=60):
        """`helm install` without --wait into the cluster the kubeconfig names; returns the
        release (name, manifest, hooks, info.notes, ...)."""
        handle = self._config(namespace, kubeconfig)
        try:
            out = self.ffi.new("char **")
            opts = {"create_namespace": False, "wait": False, "timeout_seconds": timeout,
                    "wait_for_jobs": False, "server_side_apply": "false",
                    "force_conflicts": False, "disable_openapi_validation": True,
                    "skip_schema_validation": False, "rollback_on_failure": False,
                    "take_ownership": False}
            rc = self.lib.helm_sdkpy_install(
                handle, self._c(release), self._c(os.path.abspath(chart_path)),
                self._c(json.dumps(values) if values else ""), self._c(""),
                self._c(json.dumps(opts)), out)
            if rc != 0:
                raise RuntimeError(self._last_error() or "helm install failed")
            return json.loads(self._take(out[0]) or "{}")
        finally:
            self.lib.helm_sdkpy_config_destroy(handle)


if __name__ == "__main__":
    sdk = HelmSdk(sys.argv[1])
    print(sdk.version())
    print(json.dumps(sdk.lint(sys.argv[2]), indent=2))
