{{/* The app name: the label every object and policy selects on. */}}
{{- define "dnswatch.name" -}}
{{- default "dnswatch" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Object names: the release name when it says dnswatch, else <release>-dnswatch. */}}
{{- define "dnswatch.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else if contains (include "dnswatch.name" .) .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "dnswatch.name" .) | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "dnswatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dnswatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dnswatch.labels" -}}
{{ include "dnswatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "dnswatch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Whether the metrics CronJob runs in this mode. */}}
{{- define "dnswatch.cronjob" -}}
{{- if or (eq .Values.mode "cronjob") (and (has .Values.mode (list "daemonset" "relay")) .Values.cronjob.enabled) -}}
true
{{- end -}}
{{- end -}}

{{/* The metrics port of the long-running mode, if any. */}}
{{- define "dnswatch.metricsPort" -}}
{{- if eq .Values.mode "service" -}}{{ .Values.service.port }}
{{- else if eq .Values.mode "daemonset" -}}{{ .Values.daemonset.port }}
{{- else if eq .Values.mode "relay" -}}{{ .Values.relay.port }}
{{- end -}}
{{- end -}}

{{/* The component label of the long-running mode's pods. */}}
{{- define "dnswatch.component" -}}
{{- if eq .Values.mode "service" -}}watcher
{{- else if eq .Values.mode "daemonset" -}}flows
{{- else if eq .Values.mode "relay" -}}relay
{{- end -}}
{{- end -}}

{{/* Secrets as environment variables: Slack, Prometheus, Alertmanager. */}}
{{- define "dnswatch.secretEnv" -}}
{{- with .Values.slack }}
{{- if and .existingSecret .webhookUrlKey }}
- name: DNSWATCH_SLACK_WEBHOOK_URL
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .webhookUrlKey }}
      optional: true
{{- end }}
{{- if and .existingSecret .tokenKey }}
- name: DNSWATCH_SLACK_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .tokenKey }}
{{- end }}
{{- if .channel }}
- name: DNSWATCH_SLACK_CHANNEL
  value: {{ .channel | quote }}
{{- end }}
{{- end }}
{{- with .Values.prometheusAuth }}
{{- if .existingSecret }}
{{- range $env, $key := dict "DNSWATCH_PROMETHEUS_TOKEN" .bearerTokenKey "DNSWATCH_PROMETHEUS_USERNAME" .usernameKey "DNSWATCH_PROMETHEUS_PASSWORD" .passwordKey }}
{{- if $key }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.prometheusAuth.existingSecret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- if .caKey }}
- name: DNSWATCH_PROMETHEUS__CA_FILE
  value: /etc/dnswatch/prometheus-ca/{{ .caKey }}
{{- end }}
{{- end }}
{{- end }}
{{- with .Values.alertmanager }}
{{- if .existingSecret }}
- name: DNSWATCH_ALERTMANAGER_URL
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .urlKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Prometheus CA volume and mount, when a CA key is set. */}}
{{- define "dnswatch.caVolume" -}}
{{- if and .Values.prometheusAuth.existingSecret .Values.prometheusAuth.caKey }}
- name: prometheus-ca
  secret:
    secretName: {{ .Values.prometheusAuth.existingSecret }}
    items:
      - key: {{ .Values.prometheusAuth.caKey }}
        path: {{ .Values.prometheusAuth.caKey }}
{{- end }}
{{- end -}}

{{- define "dnswatch.caMount" -}}
{{- if and .Values.prometheusAuth.existingSecret .Values.prometheusAuth.caKey }}
- name: prometheus-ca
  mountPath: /etc/dnswatch/prometheus-ca
  readOnly: true
{{- end }}
{{- end -}}

{{/* Scheduling and pull secrets, only where set. */}}
{{- define "dnswatch.scheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- end -}}

{{/* The state claim of the metrics watcher (CronJob or service). */}}
{{- define "dnswatch.stateVolume" -}}
- name: state
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (printf "%s-state" (include "dnswatch.fullname" .)) }}
{{- else }}
  emptyDir:
    sizeLimit: 1Gi
{{- end }}
{{- end -}}
