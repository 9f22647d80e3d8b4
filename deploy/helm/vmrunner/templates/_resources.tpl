{{/* Container resources from the VM (docs/guide/kubernetes.md, "Resources"):
       memory request = currentRam (default maximumRam) + resourcesFromVm.memoryOverheadMiB
       memory limit   = maximumRam + resourcesFromVm.memoryOverheadMiB
       cpu request    = currentCpus (default maximumCpus) + resourcesFromVm.cpuOverheadMillis
     no CPU limit (a CFS quota stalls the vCPU threads); each key set in .Values.resources
     wins over the computed one. */}}

{{/* A memory size as the runner reads it (bytes, or a number with B, K/Ki/KiB, M/Mi/MiB,
     G/Gi/GiB, T/Ti/TiB: powers of 1024; kB, MB, GB, TB: powers of 1000), in MiB rounded
     up. Call with (list VALUE "KEY PATH"). */}}
{{- define "vmrunner.mebibytes" -}}
{{- $value := index . 0 }}{{ $key := index . 1 }}
{{- $text := toString $value | trim }}
{{- if not (regexMatch "^[0-9]+(\\.[0-9]+)?([eE][+]?[0-9]+)? *[A-Za-z]*$" $text) }}
{{- fail (printf "%s: cannot read %q as a memory size (e.g. 1 GiB, 512Mi, 2G)" $key $text) }}
{{- end }}
{{- $number := regexFind "^[0-9]+(\\.[0-9]+)?([eE][+]?[0-9]+)?" $text | float64 }}
{{- $unit := regexFind "[A-Za-z]*$" $text }}
{{- $factors := dict "" 1 "B" 1 "K" 1024 "Ki" 1024 "KiB" 1024 "M" 1048576 "Mi" 1048576 "MiB" 1048576 "G" 1073741824 "Gi" 1073741824 "GiB" 1073741824 "T" 1099511627776 "Ti" 1099511627776 "TiB" 1099511627776 "kB" 1000 "KB" 1000 "MB" 1000000 "GB" 1000000000 "TB" 1000000000000 }}
{{- if not (hasKey $factors $unit) }}
{{- fail (printf "%s: unknown unit %q in %q" $key $unit $text) }}
{{- end }}
{{- divf (mulf $number (index $factors $unit)) 1048576 | ceil | int64 }}
{{- end }}

{{/* The container's resources (YAML), computed and merged with .Values.resources. */}}
{{- define "vmrunner.resources" -}}
{{- $resources := deepCopy .Values.resources }}
{{- $requests := $resources.requests | default dict }}
{{- $limits := $resources.limits | default dict }}
{{- $auto := .Values.resourcesFromVm }}
{{- if $auto.enabled }}
{{- $vm := .Values.vm }}
{{- $maximum := include "vmrunner.mebibytes" (list (required "vm.maximumRam is required" $vm.maximumRam) "vm.maximumRam") | int64 }}
{{- $current := $maximum }}
{{- if hasKey $vm "currentRam" }}{{ $current = include "vmrunner.mebibytes" (list $vm.currentRam "vm.currentRam") | int64 }}{{ end }}
{{- $overhead := int64 $auto.memoryOverheadMiB }}
{{- $cpus := int64 ($vm.currentCpus | default $vm.maximumCpus | default 1) }}
{{- if not (hasKey $requests "memory") }}{{ $_ := set $requests "memory" (printf "%dMi" (add $current $overhead)) }}{{ end }}
{{- if not (hasKey $limits "memory") }}{{ $_ := set $limits "memory" (printf "%dMi" (add $maximum $overhead)) }}{{ end }}
{{- if not (hasKey $requests "cpu") }}{{ $_ := set $requests "cpu" (printf "%dm" (add (mul $cpus 1000) (int64 $auto.cpuOverheadMillis))) }}{{ end }}
{{- end }}
{{- if ne .Values.kvm.mode "privileged" }}
{{- if eq .Values.kvm.mode "devicePlugin" }}{{ $_ := set $limits .Values.kvm.resourceName 1 }}{{ end }}
{{- if eq (include "vmrunner.usesTap" .) "true" }}{{ $_ := set $limits .Values.kvm.tunResourceName 1 }}{{ end }}
{{- end }}
{{- with $requests }}{{ $_ := set $resources "requests" . }}{{ end }}
{{- with $limits }}{{ $_ := set $resources "limits" . }}{{ end }}
{{- toYaml $resources }}
{{- end }}
