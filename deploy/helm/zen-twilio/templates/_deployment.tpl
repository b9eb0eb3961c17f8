{{/*
zen.deployment: one stage's Deployment, as deploy/k8s/base/<stage>/deployment.yaml.
Arguments: root, name (ingester|transformer|forwarder), portName, envFrom
(the ConfigMaps it reads, in order), secretEnv (variables from Secrets).
*/}}
{{- define "zen.deployment" -}}
{{- $root := .root }}
{{- $v := index $root.Values .name }}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "zen.metadata" (dict "root" $root "name" .name "component" .name) | nindent 2 }}
spec:
  {{- /* With an autoscaler, it owns the replica count: an upgrade must not reset it. */}}
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: {{ .name }}
  template:
    metadata:
      labels:
        {{- include "zen.podLabels" (dict "root" $root "name" .name "component" .name) | nindent 8 }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ $v.port | quote }}
        prometheus.io/path: /metrics
        {{- include "zen.configChecksum" $root | nindent 8 }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: zen-{{ .name }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              app.kubernetes.io/name: {{ .name }}
      containers:
        - name: {{ .name }}
          image: {{ include "zen.image" (dict "root" $root "image" $v.image) }}
          {{- with $root.Values.image.pullPolicy }}
          imagePullPolicy: {{ . }}
          {{- end }}
          envFrom:
            {{- range .envFrom }}
            - configMapRef:
                name: {{ . }}
            {{- end }}
          env:
            # pkg/gctune sets the Go soft memory limit to 90% of this.
            - name: CONTAINER_MEMORY_LIMIT
              valueFrom:
                resourceFieldRef:
                  containerName: {{ .name }}
                  resource: limits.memory
                  divisor: "1"
            - name: LISTEN_ADDR
              value: {{ printf ":%v" $v.port | quote }}
            - name: PACKAGE_DIR
              value: /etc/zen/package
            {{- with include "zen.literalEnv" $v.env | trim }}{{ . | nindent 12 }}{{ end }}
            {{- with include "zen.natsEnv" (dict "root" $root "client" .name) | trim }}{{ . | nindent 12 }}{{ end }}
            {{- with include "zen.secretEnv" (merge (dict) $v.secretEnv .secretEnv) | trim }}{{ . | nindent 12 }}{{ end }}
          ports:
            - name: {{ .portName }}
              containerPort: {{ $v.port }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: {{ .portName }}
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 2
          livenessProbe:
            httpGet:
              path: /healthz
              port: {{ .portName }}
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          {{- with $v.preStopSleepSeconds }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ . }}
          {{- end }}
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            {{- include "zen.packageVolumeMount" . | nindent 12 }}
            {{- with include "zen.natsVolumeMount" (dict "root" $root "client" .name) | trim }}{{ . | nindent 12 }}{{ end }}
      volumes:
        - name: package
          configMap:
            name: zen-package
        {{- with include "zen.natsVolume" (dict "root" $root "client" .name) | trim }}{{ . | nindent 8 }}{{ end }}
{{- end }}
