{{- define "ddcompat.name" -}}ddcompat{{- end -}}

{{- define "ddcompat.fullname" -}}
{{- if contains "ddcompat" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-ddcompat" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "ddcompat.labels" -}}
app.kubernetes.io/name: ddcompat
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ddcompat.selectorLabels" -}}
app.kubernetes.io/name: ddcompat
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ddcompat.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}{{ default (include "ddcompat.fullname" .) .Values.serviceAccount.name }}
{{- else -}}{{ default "default" .Values.serviceAccount.name }}{{- end -}}
{{- end -}}

{{- define "ddcompat.image" -}}
{{- if .Values.image.digest -}}{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}{{- end -}}
{{- end -}}

{{- define "ddcompat.tlsSecret" -}}{{ include "ddcompat.fullname" . }}-tls{{- end -}}
{{- define "ddcompat.serviceHost" -}}{{ include "ddcompat.fullname" . }}.{{ .Release.Namespace }}.svc{{- end -}}

{{/* The CA and serving certificate, generated once and reused on upgrade (lookup of the existing Secret). */}}
{{- define "ddcompat.certs" -}}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "ddcompat.tlsSecret" .) -}}
{{- if and $secret (index $secret.data "ca.crt") -}}
ca.crt: {{ index $secret.data "ca.crt" }}
tls.crt: {{ index $secret.data "tls.crt" }}
tls.key: {{ index $secret.data "tls.key" }}
{{- else -}}
{{- $host := include "ddcompat.serviceHost" . -}}
{{- $ca := genCA "ddcompat-webhook-ca" (int .Values.tls.validityDays) -}}
{{- $cert := genSignedCert $host nil (list $host (printf "%s.cluster.local" $host) (include "ddcompat.fullname" .) (printf "%s.%s" (include "ddcompat.fullname" .) .Release.Namespace)) (int .Values.tls.validityDays) $ca -}}
ca.crt: {{ $ca.Cert | b64enc }}
tls.crt: {{ $cert.Cert | b64enc }}
tls.key: {{ $cert.Key | b64enc }}
{{- end -}}
{{- end -}}
