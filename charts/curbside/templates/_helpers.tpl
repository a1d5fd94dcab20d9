{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "curbside.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: fullnameOverride, else the release name if it contains the chart name, else <release>-<chart>. */}}
{{- define "curbside.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "curbside.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "curbside.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: curbside
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "curbside.selectorLabels" -}}
app.kubernetes.io/name: {{ include "curbside.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of one component's objects: (dict "ctx" $ "component" "operator"). */}}
{{- define "curbside.componentLabels" -}}
{{ include "curbside.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "curbside.operatorServiceAccount" -}}
{{- printf "%s-operator" (include "curbside.fullname" .) -}}
{{- end -}}

{{- define "curbside.agentServiceAccount" -}}
{{- printf "%s-agent" (include "curbside.fullname" .) -}}
{{- end -}}

{{/* An image reference: (dict "ctx" $ "image" .Values.images.operator). */}}
{{- define "curbside.image" -}}
{{- $registry := .ctx.Values.images.registry -}}
{{- $repo := ternary (printf "%s/%s" $registry .image.repository) .image.repository (ne $registry "") -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "curbside.dispatcherUrl" -}}
{{- if .Values.dispatcher.url -}}
{{- .Values.dispatcher.url -}}
{{- else -}}
{{- printf "http://%s-dispatcher.%s.svc:%d" (include "curbside.fullname" .) .Release.Namespace (int .Values.dispatcher.service.port) -}}
{{- end -}}
{{- end -}}

{{- define "curbside.ledgerClaim" -}}
{{- default (printf "%s-ledger" (include "curbside.fullname" .)) .Values.operator.persistence.existingClaim -}}
{{- end -}}

{{/* Pod and container security contexts that pass Pod Security "restricted". */}}
{{- define "curbside.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "curbside.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
