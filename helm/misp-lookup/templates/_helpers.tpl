{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "misp-lookup.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, truncated to 63 characters. A release name that already contains
the chart name is used as it is.
*/}}
{{- define "misp-lookup.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "misp-lookup.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "misp-lookup.labels" -}}
helm.sh/chart: {{ include "misp-lookup.chart" . }}
{{ include "misp-lookup.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the pods. They must never change between upgrades. */}}
{{- define "misp-lookup.selectorLabels" -}}
app.kubernetes.io/name: {{ include "misp-lookup.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "misp-lookup.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "misp-lookup.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the Secret that holds the credentials: existingSecret or the chart's own. */}}
{{- define "misp-lookup.secretName" -}}
{{- default (include "misp-lookup.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
Secret entries in use, as a dict from the value name (mispKey, apiToken, adminToken) to the
key in the Secret. With existingSecret, every non-empty secretKeys entry is in use. Without
it, an entry is in use when its value is set. The MISP key is never used in demo mode,
because the service rejects a MISP key together with --demo.
*/}}
{{- define "misp-lookup.secretFiles" -}}
{{- $files := dict }}
{{- $values := dict "mispKey" .Values.misp.key "apiToken" .Values.apiToken "adminToken" .Values.adminToken }}
{{- range $name := list "mispKey" "apiToken" "adminToken" }}
{{- $key := get $.Values.secretKeys $name }}
{{- if and $key (or $.Values.existingSecret (get $values $name)) }}
{{- if not (and (eq $name "mispKey") $.Values.demo) }}
{{- $_ := set $files $name $key }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $files }}
{{- end }}

{{/*
Where the Redis URL comes from, as a dict with "name" and "key" of a Secret, or an empty
dict when Redis is not configured.
*/}}
{{- define "misp-lookup.redisSecretRef" -}}
{{- if .Values.redis.existingSecret }}
{{- toJson (dict "name" .Values.redis.existingSecret "key" .Values.redis.existingSecretKey) }}
{{- else if .Values.redis.url }}
{{- if .Values.existingSecret }}
{{- fail "redis.url cannot be stored while existingSecret is set: put the URL in a Secret and set redis.existingSecret" }}
{{- end }}
{{- toJson (dict "name" (include "misp-lookup.fullname" .) "key" "redis-url") }}
{{- else }}
{{- toJson (dict) }}
{{- end }}
{{- end }}

{{/* Directory where the Secret's files are mounted. */}}
{{- define "misp-lookup.secretDir" -}}
/var/run/secrets/misp-lookup
{{- end }}

{{/* Name of the ConfigMap with the CA certificates, or "" when none is configured. */}}
{{- define "misp-lookup.caConfigMapName" -}}
{{- if .Values.misp.caCertExistingConfigMap }}
{{- .Values.misp.caCertExistingConfigMap }}
{{- else if .Values.misp.caCert }}
{{- /* The full name is cut before the suffix, so that a long name keeps the suffix. */}}
{{- printf "%s-ca" (include "misp-lookup.fullname" . | trunc 60 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{- define "misp-lookup.caConfigMapKey" -}}
{{- if .Values.misp.caCertExistingConfigMap }}
{{- .Values.misp.caCertExistingConfigMapKey }}
{{- else }}
{{- print "ca.pem" }}
{{- end }}
{{- end }}

{{/* Name of the ConfigMap with Redis's CA certificates, or "" when none is configured. */}}
{{- define "misp-lookup.redisCaConfigMapName" -}}
{{- if .Values.redis.caCertExistingConfigMap }}
{{- .Values.redis.caCertExistingConfigMap }}
{{- else if .Values.redis.caCert }}
{{- printf "%s-redis-ca" (include "misp-lookup.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}
{{- end }}

{{- define "misp-lookup.redisCaConfigMapKey" -}}
{{- if .Values.redis.caCertExistingConfigMap }}
{{- .Values.redis.caCertExistingConfigMapKey }}
{{- else }}
{{- print "ca.pem" }}
{{- end }}
{{- end }}
