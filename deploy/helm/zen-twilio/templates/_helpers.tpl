{{/*
Object names are fixed (ingester, zen-common, …) as in deploy/k8s, so the
runbooks and the NetworkPolicies read the same: one release per namespace.
*/}}

{{/* zen.labels: the labels of an object; arguments: root, name, component. */}}
{{- define "zen.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: zen-twilio
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- end }}

{{/* zen.podLabels: a pod template's labels (no version, so an upgrade of the chart alone rolls nothing). */}}
{{- define "zen.podLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/part-of: zen-twilio
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{/*
zen.metadata: name, namespace and labels; arguments: root, name, component
and app (the app.kubernetes.io/name label, default name).
*/}}
{{- define "zen.metadata" -}}
name: {{ .name }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "zen.labels" (merge (dict "name" (.app | default .name)) .) | nindent 2 }}
{{- end }}

{{/* zen.image: <registry>/<repository>:<tag>; argument: root, image (repository[, tag]). */}}
{{- define "zen.image" -}}
{{- $tag := .image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- with .root.Values.image.registry -}}{{ . }}/{{- end -}}
{{ .image.repository }}:{{ $tag }}
{{- end }}

{{/*
zen.str: a value as the services read it. YAML numbers arrive as float64
(3221225472 would print as 3.221225472e+09): whole numbers print as integers.
*/}}
{{- define "zen.str" -}}
{{- if and (kindIs "float64" .) (eq . (float64 (int64 .))) -}}
{{ int64 . }}
{{- else -}}
{{ . }}
{{- end -}}
{{- end }}

{{/* zen.configMapData: a map of variables as ConfigMap data, values quoted strings. */}}
{{- define "zen.configMapData" -}}
{{- range $k, $v := . }}
{{ $k }}: {{ include "zen.str" $v | quote }}
{{- end }}
{{- end }}

{{/* zen.secretEnv: variable -> {name, key[, optional]} as secretKeyRef env entries. */}}
{{- define "zen.secretEnv" -}}
{{- range $k, $ref := . }}
- name: {{ $k }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "the Secret name of %s is required" $k) $ref.name }}
      key: {{ required (printf "the Secret key of %s is required" $k) $ref.key }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end }}
{{- end }}

{{/* zen.literalEnv: variable -> value as env entries. */}}
{{- define "zen.literalEnv" -}}
{{- range $k, $v := . }}
- name: {{ $k }}
  value: {{ include "zen.str" $v | quote }}
{{- end }}
{{- end }}

{{/* zen.natsCredentials: the credentials of one client; arguments: root, client. */}}
{{- define "zen.natsCredentials" -}}
{{- $c := index .root.Values.nats.credentials .client -}}
{{- if not $c -}}
{{- fail (printf "nats.credentials.%s is not set" .client) -}}
{{- end -}}
{{- toJson $c -}}
{{- end }}

{{/* zen.natsEnv: how a client authenticates to NATS; arguments: root, client. */}}
{{- define "zen.natsEnv" -}}
{{- $c := include "zen.natsCredentials" . | fromJson -}}
{{- if $c.credsSecret }}
- name: NATS_CREDS
  value: /etc/zen/nats/{{ $c.credsKey | default "creds" }}
{{- else }}
- name: NATS_USER
  value: {{ required (printf "nats.credentials.%s.user is required" .client) $c.user | quote }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $c.existingSecret | default .root.Values.nats.existingSecret | required "nats.existingSecret is required: the Secret of the NATS passwords" }}
      key: {{ required (printf "nats.credentials.%s.passwordKey is required" .client) $c.passwordKey }}
{{- end }}
{{- end }}

{{/* zen.natsVolumeMount / zen.natsVolume: the .creds file of a client, when it has one. */}}
{{- define "zen.natsVolumeMount" -}}
{{- $c := include "zen.natsCredentials" . | fromJson -}}
{{- if $c.credsSecret }}
- name: nats-creds
  mountPath: /etc/zen/nats
  readOnly: true
{{- end }}
{{- end }}
{{- define "zen.natsVolume" -}}
{{- $c := include "zen.natsCredentials" . | fromJson -}}
{{- if $c.credsSecret }}
- name: nats-creds
  secret:
    secretName: {{ $c.credsSecret }}
    items:
      - key: {{ $c.credsKey | default "creds" }}
        path: {{ $c.credsKey | default "creds" }}
{{- end }}
{{- end }}

{{/* zen.natsMonitoringEndpoint: host:port of the NATS monitoring endpoint KEDA reads. */}}
{{- define "zen.natsMonitoringEndpoint" -}}
{{- .Values.nats.monitoringEndpoint | default (printf "nats-headless.%s.svc.%s:8222" .Release.Namespace .Values.clusterDomain) -}}
{{- end }}

{{/*
zen.configChecksum: a hash of the ConfigMaps, as a pod annotation, so a
changed setting rolls the pods (kustomize's hashed ConfigMap names do the
same in deploy/k8s).
*/}}
{{- define "zen.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmaps.yaml") . | sha256sum }}
{{- end }}

{{/* zen.packageVolume: the transform package, mounted at PACKAGE_DIR. */}}
{{- define "zen.packageVolumeMount" -}}
- name: package
  mountPath: /etc/zen/package
  readOnly: true
{{- end }}
