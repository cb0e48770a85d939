{{/* The name of every object: fullnameOverride, else the chart's name (trtllm-operator). */}}
{{- define "trtllm-operator.fullname" -}}
{{- default .Chart.Name .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The pod's selector labels: the kustomize base's, so its Deployment can be adopted. */}}
{{- define "trtllm-operator.selectorLabels" -}}
app.kubernetes.io/name: trtllm-operator
app.kubernetes.io/component: controller
{{- end -}}

{{/* Labels on every object. */}}
{{- define "trtllm-operator.labels" -}}
app.kubernetes.io/name: trtllm-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: trtllm-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The operator's image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "trtllm-operator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}
