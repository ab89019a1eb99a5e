{{/* Pieces of networkpolicies.yaml; each renders without leading blank lines. */}}

{{/* A one-peer list from {namespaceSelector, podSelector}: both must match. */}}
{{- define "cadenza.netpol.peer" -}}
{{- $peer := dict }}
{{- if .namespaceSelector }}
{{- $_ := set $peer "namespaceSelector" .namespaceSelector }}
{{- end }}
{{- if or .podSelector (not .namespaceSelector) }}
{{- $_ := set $peer "podSelector" (.podSelector | default dict) }}
{{- end }}
{{- toYaml (list $peer) }}
{{- end }}

{{/* An egress rule to an external service: `to` peers (empty: any address) on
`port` or each of `ports`. */}}
{{- define "cadenza.netpol.external" -}}
{{- if .to -}}
- to:
    {{- toYaml .to | nindent 4 }}
  ports:
{{- else -}}
- ports:
{{- end }}
    {{- range (.ports | default (list .port)) }}
    - port: {{ int64 . }}
      protocol: TCP
    {{- end }}
{{- end }}

{{/* An egress rule to another service's gRPC port (pods of this release). */}}
{{- define "cadenza.netpol.toComponent" -}}
{{- $svc := index .root.Values .component -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "cadenza.selectorLabels" . | nindent 10 }}
  ports:
    - port: {{ int64 $svc.ports.grpc }}
      protocol: TCP
{{- end }}

{{/* An ingress rule: the listed services may call this one's gRPC port. */}}
{{- define "cadenza.netpol.fromComponents" -}}
{{- $root := .root }}
{{- $svc := index $root.Values .component -}}
- from:
    {{- range .from }}
    - podSelector:
        matchLabels:
          {{- include "cadenza.selectorLabels" (dict "root" $root "component" .) | nindent 10 }}
    {{- end }}
  ports:
    - port: {{ int64 $svc.ports.grpc }}
      protocol: TCP
{{- end }}

{{/* Prometheus scrapes the admin port. */}}
{{- define "cadenza.netpol.metrics" -}}
{{- $svc := index .root.Values .component -}}
- from:
    {{- include "cadenza.netpol.peer" .root.Values.networkPolicy.prometheus | nindent 4 }}
  ports:
    - port: {{ int64 $svc.ports.admin }}
      protocol: TCP
{{- end }}
