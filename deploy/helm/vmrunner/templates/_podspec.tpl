{{/* The pod spec shared by the Pod and the StatefulSet. */}}
{{- define "vmrunner.podSpec" -}}
{{- $privileged := eq .Values.kvm.mode "privileged" }}
{{- if .Values.serviceAccountName }}
serviceAccountName: {{ .Values.serviceAccountName }}
{{- end }}
automountServiceAccountToken: false
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
terminationGracePeriodSeconds: {{ include "vmrunner.gracePeriod" . }}
{{- with include "vmrunner.podSecurityContext" . | fromYaml }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .Values.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: vmrunner
    image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
    imagePullPolicy: {{ .Values.image.pullPolicy }}
    args:
      - --log-format={{ .Values.logFormat }}
      - --log-level={{ .Values.logLevel }}
      - run
      - --config={{ include "vmrunner.configDir" . }}/config.yaml
    env:
      # the runner warns (by key path) when powerdownTimeout no longer fits (docs/guide/kubernetes.md)
      - name: VMRUNNER_TERMINATION_GRACE_PERIOD
        value: {{ include "vmrunner.gracePeriod" . | quote }}
    {{- if .Values.metrics.enabled }}
    ports:
      - name: metrics
        containerPort: {{ .Values.metrics.port }}
        protocol: TCP
    {{- end }}
    {{- with include "vmrunner.resources" . | fromYaml }}
    resources:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- with include "vmrunner.containerSecurityContext" . | fromYaml }}
    securityContext:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    {{- if .Values.probes.startup.enabled }}
    startupProbe:
      {{- include "vmrunner.probe" (list . "live") | nindent 6 }}
      periodSeconds: {{ .Values.probes.startup.periodSeconds }}
      failureThreshold: {{ .Values.probes.startup.failureThreshold }}
    {{- end }}
    {{- if .Values.probes.readiness.enabled }}
    readinessProbe:
      {{- include "vmrunner.probe" (list . "ready") | nindent 6 }}
      periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
      failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
    {{- end }}
    {{- if .Values.probes.liveness.enabled }}
    livenessProbe:
      {{- include "vmrunner.probe" (list . "live") | nindent 6 }}
      periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
      failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
    {{- end }}
    volumeMounts:
      # the whole directory, never a subPath: the kubelet does not update subPath mounts
      - name: config
        mountPath: {{ include "vmrunner.configDir" . }}
        readOnly: true
      - name: vm-data
        mountPath: {{ include "vmrunner.dataDir" . }}
      - name: runtime
        mountPath: {{ include "vmrunner.runtimeDir" . }}
      {{- if include "vmrunner.readOnlyRoot" . }}
      - name: tmp
        mountPath: /tmp
      {{- end }}
      {{- if .Values.metrics.enabled }}
      - name: api-token
        mountPath: {{ include "vmrunner.metricsTokenDir" . }}
        readOnly: true
      {{- end }}
      {{- if or .Values.templates.files .Values.templates.volume }}
      - name: templates
        mountPath: {{ include "vmrunner.templatesDir" . }}
        readOnly: true
      {{- end }}
      {{- range .Values.disks }}
      {{- if eq (.volumeMode | default "Block") "Filesystem" }}
      - name: disk-{{ .name }}
        mountPath: {{ required (printf "disks %s: mountPath is required for volumeMode Filesystem" .name) .mountPath }}
        {{- if .readOnly }}
        readOnly: true
        {{- end }}
      {{- end }}
      {{- end }}
      {{- with .Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    {{- $blocks := list }}
    {{- range .Values.disks }}{{ if eq (.volumeMode | default "Block") "Block" }}{{ $blocks = append $blocks . }}{{ end }}{{ end }}
    {{- with $blocks }}
    volumeDevices:
      {{- range . }}
      - name: disk-{{ .name }}
        devicePath: {{ required (printf "disks %s: devicePath is required for volumeMode Block" .name) .devicePath }}
      {{- end }}
    {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "vmrunner.fullname" . }}
  - name: vm-data
    {{- toYaml (.Values.dataVolume | default (dict "emptyDir" dict)) | nindent 4 }}
  - name: runtime
    emptyDir:
      medium: Memory
      sizeLimit: 16Mi
  {{- if include "vmrunner.readOnlyRoot" . }}
  - name: tmp
    emptyDir:
      medium: Memory
      sizeLimit: 16Mi
  {{- end }}
  {{- if .Values.metrics.enabled }}
  - name: api-token
    secret:
      secretName: {{ include "vmrunner.metricsSecret" . }}
      defaultMode: 0400
  {{- end }}
  {{- if .Values.templates.files }}
  - name: templates
    configMap:
      name: {{ include "vmrunner.fullname" . }}-templates
  {{- else if .Values.templates.volume }}
  - name: templates
    {{- toYaml .Values.templates.volume | nindent 4 }}
  {{- end }}
  {{- range .Values.disks }}
  - name: disk-{{ .name }}
    {{- toYaml (required (printf "disks %s: volume is required" .name) .volume) | nindent 4 }}
  {{- end }}
  {{- with .Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
