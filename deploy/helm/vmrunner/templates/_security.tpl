{{/* Least privilege (docs/guide/kubernetes.md, "Security"). Root is needed only for a privileged
     pod or a tap NIC (qemu-bridge-helper creates the tap and joins the bridge, CAP_NET_ADMIN);
     otherwise the pod runs as security.runAsUser with every capability dropped. */}}

{{/* "true" when a vm.network entry is a tap (type defaults to tap, as in the runner). */}}
{{- define "vmrunner.usesTap" -}}
{{- $tap := false }}
{{- range .Values.vm.network | default list }}
{{- if eq (.type | default "tap") "tap" }}{{ $tap = true }}{{ end }}
{{- end }}
{{- $tap }}
{{- end }}

{{/* "true" when the container runs as root (privileged mode or a tap NIC), else "". */}}
{{- define "vmrunner.needsRoot" -}}
{{- if or (eq .Values.kvm.mode "privileged") (eq (include "vmrunner.usesTap" .) "true") }}true{{ end }}
{{- end }}

{{/* "true" when the root filesystem is mounted read-only (never in privileged mode). */}}
{{- define "vmrunner.readOnlyRoot" -}}
{{- if and (ne .Values.kvm.mode "privileged") .Values.security.readOnlyRootFilesystem }}true{{ end }}
{{- end }}

{{/* The pod's securityContext: the computed one, then .Values.podSecurityContext over it. */}}
{{- define "vmrunner.podSecurityContext" -}}
{{- $context := dict }}
{{- if ne .Values.kvm.mode "privileged" }}
{{- $_ := set $context "seccompProfile" (dict "type" "RuntimeDefault") }}
{{- if include "vmrunner.needsRoot" . }}
{{- $_ := set $context "runAsUser" 0 }}
{{- $_ := set $context "runAsNonRoot" false }}
{{- else }}
{{- $_ := set $context "runAsNonRoot" true }}
{{- $_ := set $context "runAsUser" (int .Values.security.runAsUser) }}
{{- $_ := set $context "runAsGroup" (int .Values.security.runAsGroup) }}
{{- $_ := set $context "fsGroup" (int .Values.security.runAsGroup) }}
{{- with .Values.security.supplementalGroups }}{{ $_ := set $context "supplementalGroups" . }}{{ end }}
{{- end }}
{{- end }}
{{- toYaml (mergeOverwrite $context (deepCopy .Values.podSecurityContext)) }}
{{- end }}

{{/* The container's securityContext: privileged: true, or no privilege escalation, every
     capability dropped (NET_ADMIN added back for a tap) and a read-only root filesystem;
     then .Values.securityContext over it. */}}
{{- define "vmrunner.containerSecurityContext" -}}
{{- $context := dict }}
{{- if eq .Values.kvm.mode "privileged" }}
{{- $_ := set $context "privileged" true }}
{{- else }}
{{- $_ := set $context "allowPrivilegeEscalation" false }}
{{- $caps := dict "drop" (list "ALL") }}
{{- if eq (include "vmrunner.usesTap" .) "true" }}{{ $_ := set $caps "add" (list "NET_ADMIN") }}{{ end }}
{{- $_ := set $context "capabilities" $caps }}
{{- $_ := set $context "readOnlyRootFilesystem" (eq (include "vmrunner.readOnlyRoot" .) "true") }}
{{- if not (include "vmrunner.needsRoot" .) }}
{{- $_ := set $context "runAsNonRoot" true }}
{{- $_ := set $context "runAsUser" (int .Values.security.runAsUser) }}
{{- $_ := set $context "runAsGroup" (int .Values.security.runAsGroup) }}
{{- end }}
{{- end }}
{{- toYaml (mergeOverwrite $context (deepCopy .Values.securityContext)) }}
{{- end }}
