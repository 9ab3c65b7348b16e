{{/*
Names, labels and the pieces shared by the Deployment and the migration Job.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "crm-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified app name: fullnameOverride, or "<release>-<chart>" (just "<release>" when the
release name already contains the chart name). Truncated to 63 characters (DNS-1123 label).
*/}}
{{- define "crm-service.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* "<chart>-<version>" for the helm.sh/chart label. */}}
{{- define "crm-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The image tag: image.tag, or the chart's appVersion. */}}
{{- define "crm-service.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/*
The image reference: repository@digest when a digest is given, repository:tag otherwise.
values.schema.json already refuses an empty repository; `required` says the same when the schema
is skipped (helm --skip-schema-validation), rather than rendering an image named ":0.1.0".
*/}}
{{- define "crm-service.image" -}}
{{- $repository := required "image.repository is required: build the image from the repository's Dockerfile, push it, and pass --set image.repository=REGISTRY/crm-service (helm/README.md)" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repository (include "crm-service.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Selector labels of one component. Takes (dict "ctx" $ "component" "server").
The component is part of the selector so that the Service and the PodDisruptionBudget never pick
up the migration Job's or the test's pods.
*/}}
{{- define "crm-service.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "crm-service.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* All recommended labels of one component. Takes (dict "ctx" $ "component" "server"). */}}
{{- define "crm-service.componentLabels" -}}
helm.sh/chart: {{ include "crm-service.chart" .ctx }}
{{ include "crm-service.componentSelectorLabels" . }}
app.kubernetes.io/version: {{ include "crm-service.imageTag" .ctx | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/part-of: {{ include "crm-service.name" .ctx }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
{{- end }}

{{/* Selector labels of the server pods. */}}
{{- define "crm-service.selectorLabels" -}}
{{ include "crm-service.componentSelectorLabels" (dict "ctx" . "component" "server") }}
{{- end }}

{{/* Labels of the server's resources. */}}
{{- define "crm-service.labels" -}}
{{ include "crm-service.componentLabels" (dict "ctx" . "component" "server") }}
{{- end }}

{{/* The ServiceAccount of the server pods. */}}
{{- define "crm-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crm-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The ServiceAccount of the migration Job. A pre-install hook runs before the chart's own
ServiceAccount exists, so the Job uses it only when it is an existing one (create: false).
*/}}
{{- define "crm-service.migrationServiceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- "default" }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret holding the database URL. */}}
{{- define "crm-service.databaseSecretName" -}}
{{- if .Values.database.url }}
{{- printf "%s-database" (include "crm-service.fullname" .) }}
{{- else }}
{{- default (printf "%s-database" (include "crm-service.fullname" .)) .Values.database.existingSecret }}
{{- end }}
{{- end }}

{{/* The Secret holding the JWT key. */}}
{{- define "crm-service.jwtSecretName" -}}
{{- if or .Values.jwt.publicKey .Values.jwt.sharedSecret }}
{{- printf "%s-jwt" (include "crm-service.fullname" .) }}
{{- else }}
{{- default (printf "%s-jwt" (include "crm-service.fullname" .)) .Values.jwt.existingSecret }}
{{- end }}
{{- end }}

{{/* The file name of the mounted JWT key (also its key in a chart-created Secret). */}}
{{- define "crm-service.jwtFileName" -}}
{{- if eq .Values.jwt.mode "publicKey" }}public.pem{{ else }}secret{{ end }}
{{- end }}

{{/* The key of the JWT key inside its Secret. */}}
{{- define "crm-service.jwtSecretKey" -}}
{{- if or .Values.jwt.publicKey .Values.jwt.sharedSecret }}
{{- include "crm-service.jwtFileName" . }}
{{- else }}
{{- default (include "crm-service.jwtFileName" .) .Values.jwt.existingSecretKey }}
{{- end }}
{{- end }}

{{/* The kubernetes.io/tls Secret of the server certificate. */}}
{{- define "crm-service.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "crm-service.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{/* The port kubelet's gRPC probes use: the plaintext health port when TLS is on. */}}
{{- define "crm-service.probePort" -}}
{{- if .Values.tls.enabled }}{{ .Values.tls.healthPort | int }}{{ else }}50051{{ end }}
{{- end }}

{{/*
Checks the values cannot express in values.schema.json; a failure stops install, upgrade and
template with its message.
*/}}
{{- define "crm-service.validate" -}}
{{- $shutdown := add .Values.shutdown.delaySeconds .Values.shutdown.graceSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $shutdown) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed shutdown.delaySeconds + shutdown.graceSeconds (%d), or the kubelet kills the server while it drains" (int .Values.terminationGracePeriodSeconds) (int $shutdown)) }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "set database.url (the chart creates the Secret) or database.existingSecret, not both" }}
{{- end }}
{{- if and .Values.jwt.publicKey .Values.jwt.sharedSecret }}
{{- fail "set jwt.publicKey or jwt.sharedSecret, not both" }}
{{- end }}
{{- if and .Values.jwt.publicKey (ne .Values.jwt.mode "publicKey") }}
{{- fail "jwt.publicKey is set but jwt.mode is not publicKey" }}
{{- end }}
{{- if and .Values.jwt.sharedSecret (ne .Values.jwt.mode "sharedSecret") }}
{{- fail "jwt.sharedSecret is set but jwt.mode is not sharedSecret" }}
{{- end }}
{{- if and (or .Values.jwt.publicKey .Values.jwt.sharedSecret) .Values.jwt.existingSecret }}
{{- fail "set jwt.publicKey/jwt.sharedSecret (the chart creates the Secret) or jwt.existingSecret, not both" }}
{{- end }}
{{- if and .Values.jwt.sharedSecret (lt (len .Values.jwt.sharedSecret) 32) }}
{{- fail "jwt.sharedSecret must be at least 32 bytes" }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $min := .Values.podDisruptionBudget.minAvailable }}
{{- $max := .Values.podDisruptionBudget.maxUnavailable }}
{{- if or (and (kindIs "invalid" $min) (kindIs "invalid" $max)) (and (not (kindIs "invalid" $min)) (not (kindIs "invalid" $max))) }}
{{- fail "podDisruptionBudget: set exactly one of minAvailable and maxUnavailable (the other to null)" }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- $ports := list 50051 }}
{{- if .Values.metrics.enabled }}
{{- if has (int .Values.metrics.port) $ports }}
{{- fail "metrics.port must differ from the gRPC port 50051" }}
{{- end }}
{{- $ports = append $ports (int .Values.metrics.port) }}
{{- end }}
{{- if and .Values.tls.enabled (has (int .Values.tls.healthPort) $ports) }}
{{- fail "tls.healthPort must differ from the gRPC port 50051 and metrics.port" }}
{{- end }}
{{- end }}

{{/*
Database settings, shared by the server and the migration Job. Takes (dict "ctx" $ "statementTimeout" "5s").
The URL always comes from a Secret, never as a literal value.
*/}}
{{- define "crm-service.databaseEnv" -}}
{{- $v := .ctx.Values -}}
- name: CRM_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "crm-service.databaseSecretName" .ctx | quote }}
      key: {{ $v.database.existingSecretKey | quote }}
{{- with $v.database.schema }}
- name: CRM_DATABASE_SCHEMA
  value: {{ . | quote }}
{{- end }}
- name: CRM_DATABASE_MAX_CONNECTIONS
  value: {{ $v.database.maxConnections | int | quote }}
{{- with $v.database.readerConnections }}
- name: CRM_DATABASE_READER_CONNECTIONS
  value: {{ . | int | quote }}
{{- end }}
- name: CRM_DATABASE_ACQUIRE_TIMEOUT_MS
  value: {{ $v.database.acquireTimeoutMs | int | quote }}
- name: CRM_DATABASE_STATEMENT_TIMEOUT
  value: {{ .statementTimeout | quote }}
- name: CRM_DATABASE_LOCK_TIMEOUT
  value: {{ $v.database.lockTimeout | quote }}
- name: CRM_DATABASE_IDLE_IN_TRANSACTION_TIMEOUT
  value: {{ $v.database.idleInTransactionTimeout | quote }}
- name: CRM_LOG_FORMAT
  value: {{ $v.config.logFormat | quote }}
- name: RUST_LOG
  value: {{ $v.config.rustLog | quote }}
{{- end }}

{{/*
Annotations of the server pods: Prometheus scraping, checksums that roll the pods when a
chart-created Secret changes, and podAnnotations.
*/}}
{{- define "crm-service.podAnnotations" -}}
{{- if and .Values.metrics.enabled .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | int | quote }}
prometheus.io/path: "/metrics"
{{- end }}
{{- if .Values.database.url }}
checksum/database: {{ .Values.database.url | sha256sum | quote }}
{{- end }}
{{- if or .Values.jwt.publicKey .Values.jwt.sharedSecret }}
checksum/jwt: {{ printf "%s%s" .Values.jwt.publicKey .Values.jwt.sharedSecret | sha256sum | quote }}
{{- end }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}
