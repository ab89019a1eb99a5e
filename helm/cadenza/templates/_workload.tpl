{{/*
The objects every service has, built from its values block. Each takes
(dict "root" $ "component" "<service>"); templates/<service>/*.yaml call them.
*/}}

{{- define "cadenza.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $svc := index $v .component }}
{{- $name := include "cadenza.componentName" . }}
{{- $storageVolume := and (eq .component "storage") (eq $v.storage.backend "local") }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "cadenza.labels" . | nindent 4 }}
spec:
  {{- if not $svc.autoscaling.enabled }}
  replicas: {{ int64 $svc.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "cadenza.selectorLabels" . | nindent 6 }}
  {{- if and $storageVolume (include "cadenza.storage.singleWriter" $root) }}
  # One pod at a time on a ReadWriteOnce volume.
  strategy:
    type: Recreate
  {{- else }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  {{- end }}
  template:
    metadata:
      labels:
        {{- include "cadenza.selectorLabels" . | nindent 8 }}
        {{- with $svc.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ include (print $root.Template.BasePath "/" .component "/configmap.yaml") $root | sha256sum }}
        checksum/secret: {{ include "cadenza.secretChecksum" $root }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ $name }}
      automountServiceAccountToken: false
      # Service links would add CADENZA_PROJECT_PORT and the like to the environment.
      enableServiceLinks: false
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      terminationGracePeriodSeconds: {{ int64 $svc.terminationGracePeriodSeconds }}
      containers:
        - name: {{ .component }}
          image: {{ include "cadenza.image" . | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command:
            - /usr/local/bin/cadenza-{{ .component }}
          ports:
            - name: grpc
              containerPort: {{ int64 $svc.ports.grpc }}
              protocol: TCP
            {{- if $svc.ports.http }}
            - name: http
              containerPort: {{ int64 $svc.ports.http }}
              protocol: TCP
            {{- end }}
            - name: admin
              containerPort: {{ int64 $svc.ports.admin }}
              protocol: TCP
            {{- if include "cadenza.healthPortOn" . }}
            - name: health
              containerPort: {{ int64 $v.mtls.healthPort }}
              protocol: TCP
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ $name }}
          env:
            {{- include (printf "cadenza.%s.secretEnv" .component) $root | nindent 12 }}
          readinessProbe:
            grpc:
              port: {{ include "cadenza.probePort" . }}
            periodSeconds: {{ int64 $v.probes.readiness.periodSeconds }}
            timeoutSeconds: {{ int64 $v.probes.readiness.timeoutSeconds }}
            failureThreshold: {{ int64 $v.probes.readiness.failureThreshold }}
          livenessProbe:
            grpc:
              port: {{ include "cadenza.probePort" . }}
              {{- with $v.probes.liveness.service }}
              service: {{ . | quote }}
              {{- end }}
            periodSeconds: {{ int64 $v.probes.liveness.periodSeconds }}
            timeoutSeconds: {{ int64 $v.probes.liveness.timeoutSeconds }}
            failureThreshold: {{ int64 $v.probes.liveness.failureThreshold }}
          {{- if $v.preStopSleepSeconds }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ int64 $v.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if $v.mtls.enabled }}
            - name: tls
              mountPath: /etc/cadenza/tls
              readOnly: true
            {{- end }}
            {{- if $storageVolume }}
            - name: data
              mountPath: /var/lib/cadenza/data
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $svc.tmpSizeLimit }}
        {{- if $v.mtls.enabled }}
        - name: tls
          secret:
            secretName: {{ include "cadenza.tlsSecretName" . }}
            defaultMode: 0440
        {{- end }}
        {{- if $storageVolume }}
        - name: data
          {{- if $v.storage.persistence.enabled }}
          persistentVolumeClaim:
            claimName: {{ $v.storage.persistence.existingClaim | default (printf "%s-data" $name) }}
          {{- else }}
          emptyDir: {}
          {{- end }}
        {{- end }}
      {{- with $svc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if $svc.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml $svc.topologySpreadConstraints | nindent 8 }}
      {{- else if $v.spreadAcrossNodes }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "cadenza.selectorLabels" . | nindent 14 }}
        - maxSkew: 1
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "cadenza.selectorLabels" . | nindent 14 }}
      {{- end }}
{{- end }}

{{/* The ClusterIP Service (Prometheus, the ingress, port-forwarding) and, for the
internal services, the headless one clients balance over. */}}
{{- define "cadenza.services" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $svc := index $v .component }}
{{- $name := include "cadenza.componentName" . }}
{{- $service := $svc.service | default dict }}
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "cadenza.labels" . | nindent 4 }}
  {{- with $service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $service.type | default "ClusterIP" }}
  selector:
    {{- include "cadenza.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ int64 ($service.port | default $svc.ports.grpc) }}
      targetPort: grpc
      protocol: TCP
      {{- with $service.appProtocol }}
      appProtocol: {{ . }}
      {{- end }}
    {{- if $svc.ports.http }}
    - name: http
      port: {{ int64 $svc.ports.http }}
      targetPort: http
      protocol: TCP
    {{- end }}
    - name: admin
      port: {{ int64 $svc.ports.admin }}
      targetPort: admin
      protocol: TCP
{{- if ne .component "gateway" }}
---
# Every ready pod's address, for clients that balance calls themselves.
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}-headless
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "cadenza.labels" . | nindent 4 }}
    cadenza.dev/headless: "true"
spec:
  type: ClusterIP
  clusterIP: None
  publishNotReadyAddresses: false
  selector:
    {{- include "cadenza.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ int64 $svc.ports.grpc }}
      targetPort: grpc
      protocol: TCP
{{- end }}
{{- end }}

{{- define "cadenza.serviceAccount" -}}
{{- $svc := index .root.Values .component }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "cadenza.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "cadenza.labels" . | nindent 4 }}
  {{- with $svc.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: false
{{- end }}

{{- define "cadenza.pdb" -}}
{{- $svc := index .root.Values .component }}
{{- if $svc.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "cadenza.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "cadenza.labels" . | nindent 4 }}
spec:
  {{- if hasKey $svc.pdb "minAvailable" }}
  minAvailable: {{ $svc.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $svc.pdb.maxUnavailable | default 1 }}
  {{- end }}
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "cadenza.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "cadenza.hpa" -}}
{{- $svc := index .root.Values .component }}
{{- $as := $svc.autoscaling }}
{{- if $as.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "cadenza.componentName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "cadenza.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "cadenza.componentName" . }}
  minReplicas: {{ int64 $as.minReplicas }}
  maxReplicas: {{ int64 $as.maxReplicas }}
  metrics:
    {{- if $as.targetCPUUtilizationPercentage }}
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ int64 $as.targetCPUUtilizationPercentage }}
    {{- end }}
    {{- if $as.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ int64 $as.targetMemoryUtilizationPercentage }}
    {{- end }}
  {{- with $as.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
