{{/*
Names, labels and small pieces shared by every template. Helpers that concern one
service take a dict: (dict "root" $ "component" "gateway").
*/}}

{{- define "cadenza.components" -}}
gateway project generation storage
{{- end }}

{{- define "cadenza.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: the release name alone when it already says "cadenza". */}}
{{- define "cadenza.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 42 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 42 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 42 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cadenza.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<fullname>-<component>": at most 42 + 1 + 10 characters, "-headless" still fits 63. */}}
{{- define "cadenza.componentName" -}}
{{- printf "%s-%s" (include "cadenza.fullname" .root) .component }}
{{- end }}

{{- define "cadenza.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cadenza.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "cadenza.labels" -}}
helm.sh/chart: {{ include "cadenza.chart" .root }}
{{ include "cadenza.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: cadenza
{{- end }}

{{/* "<repository>/<component>:<tag>", or the service's own image settings; with a
digest, "<repository>/<component>@<digest>". */}}
{{- define "cadenza.image" -}}
{{- $svc := index .root.Values .component }}
{{- $repository := $svc.image.repository | default (printf "%s/%s" .root.Values.image.repository .component) }}
{{- if $svc.image.digest }}
{{- printf "%s@%s" $repository $svc.image.digest }}
{{- else }}
{{- $tag := $svc.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}
{{- end }}

{{- define "cadenza.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "cadenza.fullname" .)) }}
{{- end }}

{{/* Changes whenever the Secret's content may have: its rendering when the chart makes
it, else its name and `secrets.revision`. */}}
{{- define "cadenza.secretChecksum" -}}
{{- if .Values.secrets.create }}
{{- include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- else }}
{{- printf "%s/%s" (include "cadenza.secretName" .) (toString .Values.secrets.revision) | sha256sum }}
{{- end }}
{{- end }}

{{/* One env entry read from the Secret: (dict "root" $ "name" "CADENZA_X" "key" "jwtSecret" "optional" true). */}}
{{- define "cadenza.secretEnv" -}}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "cadenza.secretName" .root }}
      key: {{ index .root.Values.secrets.keys .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}

{{/* How a client reaches a service's gRPC port: the headless Service (client-side
balancing over every ready pod), https:// with mTLS. */}}
{{- define "cadenza.grpcUrl" -}}
{{- $svc := index .root.Values .component }}
{{- $name := include "cadenza.componentName" . }}
{{- $host := ternary (printf "%s-headless" $name) $name (or .root.Values.grpc.clientSideBalancing (default false .headless)) }}
{{- printf "%s://%s:%d" (ternary "https" "http" .root.Values.mtls.enabled) $host (int64 $svc.ports.grpc) }}
{{- end }}

{{- define "cadenza.listen" -}}
{{- printf "%s:%d" .root.Values.listenHost (int64 .port) }}
{{- end }}

{{- define "cadenza.tlsSecretName" -}}
{{- index .root.Values.mtls.existingSecrets .component | default (printf "%s-tls" (include "cadenza.componentName" .)) }}
{{- end }}

{{/* Whether the internal plain-text health port is on for this component. */}}
{{- define "cadenza.healthPortOn" -}}
{{- if and .root.Values.mtls.enabled (ne .component "gateway") }}true{{ end }}
{{- end }}

{{/* The port kubelet probes: the gRPC port, or the plain health port under mTLS. */}}
{{- define "cadenza.probePort" -}}
{{- $svc := index .root.Values .component }}
{{- if include "cadenza.healthPortOn" . }}
{{- int64 .root.Values.mtls.healthPort }}
{{- else }}
{{- int64 $svc.ports.grpc }}
{{- end }}
{{- end }}

{{/* Storage's public base URL for signed downloads. */}}
{{- define "cadenza.storagePublicUrl" -}}
{{- if .Values.storage.publicUrl }}
{{- .Values.storage.publicUrl | trimSuffix "/" }}
{{- else if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host := first .Values.ingress.hosts }}
{{- $tls := false }}
{{- range .Values.ingress.tls }}
{{- if has $host .hosts }}{{ $tls = true }}{{ end }}
{{- end }}
{{- printf "%s://%s" (ternary "https" "http" $tls) $host }}
{{- else }}
{{- printf "http://localhost:%d" (int64 .Values.storage.ports.http) }}
{{- end }}
{{- end }}

{{/* The local backend on a ReadWriteOnce volume allows one pod at a time. */}}
{{- define "cadenza.storage.singleWriter" -}}
{{- if and (eq .Values.storage.backend "local") .Values.storage.persistence.enabled (not (has "ReadWriteMany" .Values.storage.persistence.accessModes)) }}true{{ end }}
{{- end }}

{{/* Settings every service reads, added to `env` (a dict). */}}
{{- define "cadenza.commonEnv" -}}
{{- $v := .root.Values }}
{{- $_ := set .env "CADENZA_LOG_FORMAT" (toString $v.logFormat) }}
{{- $_ := set .env "RUST_LOG" (toString $v.logLevel) }}
{{- $_ := set .env "CADENZA_DEV_MODE" "false" }}
{{- $_ := set .env "CADENZA_GRPC_MAX_CONNECTION_AGE_SECONDS" (toString (int64 $v.grpc.maxConnectionAgeSeconds)) }}
{{- if $v.tracing.otlpEndpoint }}
{{- $_ := set .env "OTEL_EXPORTER_OTLP_ENDPOINT" (toString $v.tracing.otlpEndpoint) }}
{{- $_ := set .env "OTEL_SERVICE_NAME" (printf "cadenza-%s" .component) }}
{{- end }}
{{- if $v.mtls.enabled }}
{{- $_ := set .env "CADENZA_TLS_CERT_FILE" "/etc/cadenza/tls/tls.crt" }}
{{- $_ := set .env "CADENZA_TLS_KEY_FILE" "/etc/cadenza/tls/tls.key" }}
{{- $_ := set .env "CADENZA_TLS_CA_FILE" "/etc/cadenza/tls/ca.crt" }}
{{- end }}
{{- if include "cadenza.healthPortOn" . }}
{{- $_ := set .env "CADENZA_HEALTH_ADDR" (include "cadenza.listen" (dict "root" .root "port" $v.mtls.healthPort)) }}
{{- end }}
{{- end }}

{{/* A service's ConfigMap from the dict `env` plus the service's `env` overrides. */}}
{{- define "cadenza.configMap" -}}
{{- $svc := index .root.Values .component }}
{{- range $key, $value := $svc.env }}
{{- if eq $key "CADENZA_DEV_MODE" }}
{{- fail (printf "%s.env.CADENZA_DEV_MODE: dev mode (tokens for anyone who asks) cannot be switched on by this chart" $.component) }}
{{- end }}
{{- $_ := set $.env $key (toString $value) }}
{{- end }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "cadenza.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "cadenza.labels" . | nindent 4 }}
data:
  {{- toYaml .env | nindent 2 }}
{{- end }}

{{/* Refuses settings that cannot work, each with what to do instead. */}}
{{- define "cadenza.validate" -}}
{{- $v := .Values }}
{{- if not (has $v.storage.backend (list "local" "s3")) }}
{{- fail (printf "storage.backend must be local or s3, not %q" $v.storage.backend) }}
{{- end }}
{{- if and (eq $v.storage.backend "s3") (not $v.storage.s3.bucket) }}
{{- fail "storage.backend=s3 needs storage.s3.bucket" }}
{{- end }}
{{- if eq $v.storage.backend "local" }}
{{- $many := or (gt (int64 $v.storage.replicaCount) 1) $v.storage.autoscaling.enabled }}
{{- if and $many (not $v.storage.persistence.enabled) }}
{{- fail "storage.backend=local with more than one storage replica needs storage.persistence.enabled with a ReadWriteMany volume (each pod would see only its own emptyDir), or storage.backend=s3" }}
{{- end }}
{{- if and $many (include "cadenza.storage.singleWriter" .) }}
{{- fail "storage.backend=local with more than one storage replica (or autoscaling) needs storage.persistence.accessModes [ReadWriteMany]; use one replica or storage.backend=s3" }}
{{- end }}
{{- end }}
{{- if and $v.secrets.create $v.secrets.existingSecret }}
{{- fail "set either secrets.create or secrets.existingSecret, not both" }}
{{- end }}
{{- if $v.secrets.create }}
{{- if lt (len $v.secrets.values.jwtSecret) 32 }}
{{- fail "secrets.create needs secrets.values.jwtSecret of at least 32 bytes" }}
{{- end }}
{{- if lt (len $v.secrets.values.urlSigningKey) 32 }}
{{- fail "secrets.create needs secrets.values.urlSigningKey of at least 32 bytes" }}
{{- end }}
{{- $seen := dict }}
{{- range $name := include "cadenza.meshSecretValues" $ | splitList " " }}
{{- $value := index $v.secrets.values $name }}
{{- if lt (len $value) 32 }}
{{- fail (printf "secrets.create needs secrets.values.%s of at least 32 bytes (one secret per link of the mesh)" $name) }}
{{- end }}
{{- if hasKey $seen $value }}
{{- fail (printf "secrets.values.%s repeats another mesh secret: each link needs its own" $name) }}
{{- end }}
{{- $_ := set $seen $value true }}
{{- end }}
{{- if not $v.postgresql.url }}
{{- fail "secrets.create needs postgresql.url" }}
{{- end }}
{{- if not $v.rabbitmq.url }}
{{- fail "secrets.create needs rabbitmq.url" }}
{{- end }}
{{- end }}
{{- if $v.mtls.enabled }}
{{- if and (not $v.mtls.existingSecrets) (not $v.mtls.certManager.enabled) }}
{{- fail "mtls.enabled needs mtls.certManager.enabled (with an issuerRef) or mtls.existingSecrets" }}
{{- end }}
{{- if $v.mtls.existingSecrets }}
{{- range $component := splitList " " (include "cadenza.components" .) }}
{{- if not (index $v.mtls.existingSecrets $component) }}
{{- fail (printf "mtls.existingSecrets needs a Secret for every service: %s is missing (each service its own certificate)" $component) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and (not $v.mtls.existingSecrets) (not $v.mtls.certManager.issuerRef.name) }}
{{- fail "mtls.certManager needs mtls.certManager.issuerRef.name (a cert-manager CA Issuer or ClusterIssuer)" }}
{{- end }}
{{- end }}
{{- range $component := splitList " " (include "cadenza.components" .) }}
{{- $as := (index $v $component).autoscaling }}
{{- if and $as.enabled (not (or $as.targetCPUUtilizationPercentage $as.targetMemoryUtilizationPercentage)) }}
{{- fail (printf "%s.autoscaling needs targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" $component) }}
{{- end }}
{{- if and $as.enabled (lt (int64 $as.maxReplicas) (int64 $as.minReplicas)) }}
{{- fail (printf "%s.autoscaling.maxReplicas is below minReplicas" $component) }}
{{- end }}
{{- end }}
{{- if and $v.ingress.enabled (not $v.ingress.hosts) }}
{{- fail "ingress.enabled needs at least one host in ingress.hosts" }}
{{- end }}
{{- end }}

{{/* The values of the mesh's link secrets, one per link (docs/security.md). */}}
{{- define "cadenza.meshSecretValues" -}}
meshGatewayToProject meshGatewayToGeneration meshProjectToStorage meshGenerationToStorage
{{- end }}
