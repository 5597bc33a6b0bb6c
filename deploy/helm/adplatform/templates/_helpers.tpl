{{/* Chart name, truncated to the 63 characters a label value may have. */}}
{{- define "adplatform.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-scoped name; role objects append "-<role>", so keep room for it. */}}
{{- define "adplatform.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "adplatform.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "adplatform.selectorLabels" -}}
app.kubernetes.io/name: {{ include "adplatform.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "adplatform.labels" -}}
helm.sh/chart: {{ include "adplatform.chart" . }}
{{ include "adplatform.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: adplatform
{{- end -}}

{{/* Labels of one role's objects. Call with (dict "root" $ "role" "decide"). */}}
{{- define "adplatform.roleSelectorLabels" -}}
{{ include "adplatform.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "adplatform.roleLabels" -}}
{{ include "adplatform.labels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end -}}

{{- define "adplatform.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "adplatform.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "adplatform.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Deep merge of two maps, returned as YAML: maps merge key by key, anything else in "over"
replaces what is in "base". Unlike sprig's merge/mergeOverwrite it lets false, 0 and ""
override a default (a role can switch off its PDB, say).
Call with (dict "base" $defaults "over" $overrides); read back with fromYaml.
*/}}
{{- define "adplatform.deepMerge" -}}
{{- $out := deepCopy (default (dict) .base) -}}
{{- range $k, $v := (default (dict) .over) -}}
{{- $cur := get $out $k -}}
{{- if and (kindIs "map" $v) (kindIs "map" $cur) -}}
{{- $_ := set $out $k (fromYaml (include "adplatform.deepMerge" (dict "base" $cur "over" $v))) -}}
{{- else -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* One role's effective settings as YAML. Call with (dict "root" $ "role" "decide"). */}}
{{- define "adplatform.roleSettings" -}}
{{- $over := get .root.Values.roles .role -}}
{{- include "adplatform.deepMerge" (dict "base" .root.Values.roleDefaults "over" $over) -}}
{{- end -}}

{{/*
config.toml from .Values.config: top-level scalars, then one [table] per map. Values are
written as JSON, which is valid TOML for strings, integers, booleans and arrays of them.
Integers are printed without a fraction even though Helm may hold them as float64.
*/}}
{{- define "adplatform.tomlValue" -}}
{{- if kindIs "float64" . -}}
{{- if eq (float64 (int64 .)) . -}}{{ int64 . }}{{- else -}}{{ . }}{{- end -}}
{{- else if kindIs "map" . -}}
{{- fail "config: tables nested more than one level deep are not supported" -}}
{{- else -}}
{{- toJson . -}}
{{- end -}}
{{- end -}}

{{- define "adplatform.configToml" -}}
# Rendered by the adplatform Helm chart from .Values.config. Secrets come from the environment.
{{- range $k, $v := .Values.config }}
{{- if not (or (kindIs "map" $v) (kindIs "invalid" $v)) }}
{{ $k }} = {{ include "adplatform.tomlValue" $v }}
{{- end }}
{{- end }}
{{- range $section, $table := .Values.config }}
{{- if kindIs "map" $table }}

[{{ $section }}]
{{- range $k, $v := $table }}
{{- if not (kindIs "invalid" $v) }}
{{ $k }} = {{ include "adplatform.tomlValue" $v }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{ end -}}

{{/* The environment every adplatform container gets (config file, secrets by reference). */}}
{{- define "adplatform.commonEnv" -}}
- name: ADP_CONFIG
  value: /etc/adplatform/config.toml
{{- range $name, $key := .Values.secrets.env }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.secrets.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end -}}
