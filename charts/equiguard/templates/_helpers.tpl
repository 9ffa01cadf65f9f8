{{/*
Names. Everything the chart creates is named after the release, so two
releases in one cluster never collide (cluster-scoped objects included).
*/}}
{{- define "equiguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "equiguard.fullname" -}}
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

{{- define "equiguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The labels Helm's best practices ask for, on every object. */}}
{{- define "equiguard.labels" -}}
helm.sh/chart: {{ include "equiguard.chart" . }}
{{ include "equiguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: equiguard
{{- end }}

{{/* Selector labels never change across upgrades (a Deployment's selector is immutable). */}}
{{- define "equiguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "equiguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "equiguard.operatorSelectorLabels" -}}
{{ include "equiguard.selectorLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "equiguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-operator" (include "equiguard.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: the digest wins when set,
the tag defaults to the chart's appVersion.
Usage: include "equiguard.image" (dict "image" .Values.image "root" .)
*/}}
{{- define "equiguard.image" -}}
{{- $image := .image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator serves: the configured list, or nothing for
"every namespace" (then RBAC is cluster-wide).
*/}}
{{- define "equiguard.clusterWide" -}}
{{- if not .Values.operator.watchNamespaces }}true{{- end }}
{{- end }}

{{/*
The namespaces model pods run in, for the NetworkPolicy that guards them:
networkPolicy.modelNamespaces, else the watched namespaces.
*/}}
{{- define "equiguard.modelNamespaces" -}}
{{- $namespaces := .Values.networkPolicy.modelNamespaces | default .Values.operator.watchNamespaces }}
{{- toJson $namespaces }}
{{- end }}

{{/* The restricted-profile container securityContext used by every container of the chart. */}}
{{- define "equiguard.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Labels the operator puts on every model pod (operator/equiguard/operator/names.py,
common_labels and selector_labels): the NetworkPolicies and the
ServiceMonitor select model pods with them.
*/}}
{{- define "equiguard.modelPodLabels" -}}
app.kubernetes.io/managed-by: equiguard
app.kubernetes.io/component: model-server
{{- end }}

{{/*
What the operator does in every namespace it serves, by the code that does it.
*/}}
{{- define "equiguard.operatorRules" -}}
# kopf watches ClinicalModels and patches its finalizer and annotations on them;
# a child's drift handler reads its model.
- apiGroups: [equiguard.io]
  resources: [clinicalmodels]
  verbs: [get, list, watch, patch]
# Verdicts, conditions and the revision history.
- apiGroups: [equiguard.io]
  resources: [clinicalmodels/status]
  verbs: [patch]
# Children are adopted with blockOwnerDeletion (kopf.adopt): the API server
# asks for update on the owner's finalizers to set it.
- apiGroups: [equiguard.io]
  resources: [clinicalmodels/finalizers]
  verbs: [update]
# Decision records are written once and never changed.
- apiGroups: [equiguard.io]
  resources: [equitydecisions]
  verbs: [create]
# The children of a ClinicalModel, server-side applied (create on the first
# apply, patch afterwards, also to roll back) and watched so that drift is
# repaired at once. get: a Deployment applied unchanged is read back for its
# readiness; a recalibration Job's result is the ConfigMap `<job>-result`.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [create, patch, get, list, watch]
- apiGroups: [""]
  resources: [services]
  verbs: [create, patch, list, watch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, patch, get, list, watch]
- apiGroups: [monitoring.coreos.com]
  resources: [prometheusrules]
  verbs: [create, patch]
# Recalibration Jobs: created once under a deterministic name, listed to see which ran.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, list]
# The ready pods of a model, whose sidecars it reads statistics from.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# The outcome token (spec.outcomes.tokenSecret) the sidecars require on /v1/stats.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Events mirroring decision records, and kopf's own warnings.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}

{{/*
The identity recalibration Jobs run as (the operator's --job-service-account)
and the namespaces where the chart creates it: recalibration.namespaces, else
the watched namespaces.
*/}}
{{- define "equiguard.recalibrationServiceAccountName" -}}
{{- default (printf "%s-recalibration" (include "equiguard.fullname" .)) .Values.recalibration.serviceAccount.name }}
{{- end }}

{{- define "equiguard.recalibrationNamespaces" -}}
{{- toJson (.Values.recalibration.namespaces | default .Values.operator.watchNamespaces) }}
{{- end }}
