{{/* Names and labels. */}}
{{- define "vmrunner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vmrunner.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "vmrunner.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "vmrunner.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "vmrunner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vmrunner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vmrunner.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "vmrunner.selectorLabels" . }}
app.kubernetes.io/component: vm-runner
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Fixed paths inside the container (the image's mount points). */}}
{{- define "vmrunner.configDir" -}}/etc/opt/vmrunner{{- end }}
{{- define "vmrunner.templatesDir" -}}/opt/vmrunner/templates{{- end }}
{{- define "vmrunner.dataDir" -}}/var/local/vm-data{{- end }}
{{- define "vmrunner.runtimeDir" -}}/run/vmrunner{{- end }}

{{/* vm.powerdownTimeout as the runner reads it (default 900; 0 is a valid value). */}}
{{- define "vmrunner.powerdownTimeout" -}}
{{- if hasKey .Values.vm "powerdownTimeout" }}{{ int .Values.vm.powerdownTimeout }}{{ else }}900{{ end }}
{{- end }}

{{/* terminationGracePeriodSeconds: explicit, else powerdownTimeout + margin; never less. */}}
{{- define "vmrunner.gracePeriod" -}}
{{- $minimum := add (include "vmrunner.powerdownTimeout" . | int) (int .Values.terminationGracePeriod.margin) }}
{{- $seconds := .Values.terminationGracePeriod.seconds }}
{{- if kindIs "invalid" $seconds }}{{ $minimum }}
{{- else if lt (int $seconds) $minimum }}
{{- fail (printf "terminationGracePeriod.seconds: %d is less than vm.powerdownTimeout + terminationGracePeriod.margin (%d): the kubelet would kill a VM that is still shutting down" (int $seconds) $minimum) }}
{{- else }}{{ int $seconds }}
{{- end }}
{{- end }}

{{/* The config.yaml document. */}}
{{- define "vmrunner.config" -}}
{{- $vm := deepCopy .Values.vm }}
{{- if not $vm.name }}{{ $_ := set $vm "name" (include "vmrunner.fullname" .) }}{{ end }}
{{- if and (eq .Values.kvm.mode "none") (not (has ($vm.accelerator | default "kvm") (list "tcg" "auto" "none"))) }}
{{- fail "kvm.mode none: the pod has no /dev/kvm, so set vm.accelerator to tcg or auto" }}
{{- end }}
{{- $runner := deepCopy .Values.runner }}
{{- $_ := set $runner "dataDir" (include "vmrunner.dataDir" .) }}
{{- $_ := set $runner "runtimeDir" (include "vmrunner.runtimeDir" .) }}
{{- $_ := set $runner "vm" $vm }}
{{- if .Values.metrics.enabled }}
{{- $api := deepCopy (index $runner "/Api" | default dict) }}
{{- $_ := set $api "listen" (printf "0.0.0.0:%d" (int .Values.metrics.port)) }}
{{- $_ := set $api "tokenFile" (printf "%s/%s" (include "vmrunner.metricsTokenDir" .) .Values.metrics.tokenSecret.key) }}
{{- $_ := set $runner "/Api" $api }}
{{- end }}
{{- dict "/Runner" $runner | toYaml }}
{{- end }}

{{/* A probe: curl asks the runner's API (GET /live, /ready) on its unix socket; exec form,
     no shell, no Python and no configuration parsing (~16 ms CPU against ~0.2-0.7 s for
     `vmrunner probe`, benchmarks/probe.py). Exit 0 on 200, 22 on 503, 7 when nothing
     listens. Call with (list . "live"). */}}
{{- define "vmrunner.probe" -}}
{{- $root := index . 0 -}}
exec:
  command: ["/usr/bin/curl", "-fsS", "-o", "/dev/null", "--max-time", "4", "--unix-socket", "{{ include "vmrunner.runtimeDir" $root }}/api.sock", "http://localhost/{{ index . 1 }}"]
timeoutSeconds: 5
{{- end }}

{{/* The Secret holding the API's bearer token for the metrics listener (required). */}}
{{- define "vmrunner.metricsSecret" -}}
{{- required "metrics.tokenSecret.name: the metrics listener needs a Secret with its bearer token" .Values.metrics.tokenSecret.name }}
{{- end }}

{{- define "vmrunner.metricsTokenDir" -}}/etc/opt/vmrunner-api{{- end }}
