{{/* Names, labels and the pieces every workload shares. */}}

{{- define "okrstream.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The services' facts (files/services.yaml) and the registry's topics (files/topics.json). */}}
{{- define "okrstream.services" -}}
{{- .Files.Get "files/services.yaml" -}}
{{- end -}}

{{- define "okrstream.topics" -}}
{{- .Files.Get "files/topics.json" -}}
{{- end -}}

{{- define "okrstream.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "okrstream.labels" -}}
{{ include "okrstream.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: okrstream
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "okrstream.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The consumer groups of drift: one per shard. */}}
{{- define "okrstream.driftGroups" -}}
{{- $n := int .Values.services.drift.shards -}}
{{- if eq $n 1 -}}
- drift.alerts
{{- else -}}
{{- range $i := until $n }}
- {{ printf "drift.alerts.shard-%d-of-%d" $i $n }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Every consumer group the release runs: their dead-letter topics are created with the registry's. */}}
{{- define "okrstream.consumerGroups" -}}
{{- $services := include "okrstream.services" . | fromYaml -}}
{{- $groups := list -}}
{{- range $name := keys $services | sortAlpha -}}
{{- $groups = concat $groups (get (get $services $name) "groups") -}}
{{- end -}}
{{- $groups = concat $groups (include "okrstream.driftGroups" . | fromYamlArray) -}}
{{- toYaml (sortAlpha $groups) -}}
{{- end -}}

{{/* The fewest partitions among the topics a service consumes: its autoscaler's ceiling. */}}
{{- define "okrstream.partitionCeiling" -}}
{{- $topics := (include "okrstream.topics" .root | fromJson).topics -}}
{{- $ceiling := 0 -}}
{{- range $consumed := .consumes -}}
{{- range $topic := $topics -}}
{{- if eq $topic.name $consumed -}}
{{- if or (eq $ceiling 0) (lt (int $topic.partitions) $ceiling) -}}
{{- $ceiling = int $topic.partitions -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $ceiling -}}
{{- end -}}

{{/* Environment every service gets: Kafka, PostgreSQL, HTTP, logs, telemetry. Args: root, component, facts. */}}
{{- define "okrstream.env" -}}
{{- $v := .root.Values -}}
- name: POD_NAME
  valueFrom: {fieldRef: {fieldPath: metadata.name}}
- name: POD_NAMESPACE
  valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: "k8s.pod.name=$(POD_NAME),k8s.namespace.name=$(POD_NAMESPACE),service.instance.id=$(POD_NAME)"
- name: OKR_HTTP_HOST
  value: "0.0.0.0"
- name: OKR_HTTP_PORT
  value: "8000"
- name: OKR_LOG_LEVEL
  value: {{ $v.logLevel | quote }}
- name: OKR_LOG_FORMAT
  value: json
{{- with $v.telemetry.otlpEndpoint }}
- name: OKR_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if .facts.kafka }}
- name: OKR_KAFKA_BOOTSTRAP
  value: {{ $v.kafka.bootstrap | quote }}
- name: OKR_KAFKA_CREATE_TOPICS
  value: "false"
{{- end }}
{{- if .facts.postgres }}
- name: OKR_EVENT_STORE
  value: postgres
- name: OKR_POSTGRES_DSN
  valueFrom:
    secretKeyRef: {name: {{ $v.postgres.existingSecret | quote }}, key: {{ $v.postgres.dsnKey | quote }}}
- name: OKR_POSTGRES_SCHEMA
  value: {{ $v.postgres.schema | quote }}
{{- end }}
{{- with .facts.tokensEnv }}
- name: {{ . }}
  value: /etc/okrstream/tokens/{{ $v.tokens.key }}
{{- end }}
{{- end -}}

{{/* Extra settings from values: only the service's own OKR_ settings (the deploy tests check the names). */}}
{{- define "okrstream.extraEnv" -}}
{{- $list := list -}}
{{- range $name := keys .env | sortAlpha -}}
{{- $list = append $list (dict "name" $name "value" (get $.env $name | toString)) -}}
{{- end -}}
{{- toYaml $list -}}
{{- end -}}

{{/* The pod template shared by the Deployments and the StatefulSet. Args: root, component, facts, spec, env (list), volumes, mounts. */}}
{{- define "okrstream.podTemplate" -}}
{{- $v := .root.Values -}}
metadata:
  labels:
    {{- include "okrstream.labels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include (print .root.Template.BasePath "/configmap.yaml") .root | sha256sum }}
spec:
  serviceAccountName: {{ include "okrstream.fullname" .root }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 40
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- if $v.topologySpread.enabled }}
  topologySpreadConstraints:
    {{- range $key := list "topology.kubernetes.io/zone" "kubernetes.io/hostname" }}
    - maxSkew: {{ $v.topologySpread.maxSkew }}
      topologyKey: {{ $key }}
      whenUnsatisfiable: ScheduleAnyway
      labelSelector:
        matchLabels:
          {{- include "okrstream.selectorLabels" $ | nindent 10 }}
    {{- end }}
  {{- end }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .component }}
      image: {{ include "okrstream.image" .root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: [{{ .facts.module | quote }}]
      {{- with .envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      env:
        {{- include "okrstream.env" . | nindent 8 }}
        {{- with .env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
        {{- if .spec.env }}
        {{- include "okrstream.extraEnv" (dict "env" .spec.env) | nindent 8 }}
        {{- end }}
      ports:
        - {name: http, containerPort: 8000, protocol: TCP}
      startupProbe:
        httpGet: {path: /health/live, port: http}
        periodSeconds: 2
        failureThreshold: 60
      livenessProbe:
        httpGet: {path: /health/live, port: http}
        periodSeconds: 10
        timeoutSeconds: 3
        failureThreshold: 3
      readinessProbe:
        httpGet: {path: /health/ready, port: http}
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 3
      resources:
        {{- toYaml .spec.resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
        {{- if .facts.tokensEnv }}
        - {name: tokens, mountPath: /etc/okrstream/tokens, readOnly: true}
        {{- end }}
        {{- with .mounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {sizeLimit: 64Mi}
    {{- if .facts.tokensEnv }}
    - name: tokens
      secret:
        secretName: {{ $v.tokens.existingSecret }}
        items: [{key: {{ $v.tokens.key | quote }}, path: {{ $v.tokens.key | quote }}}]
    {{- end }}
    {{- with .volumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}
