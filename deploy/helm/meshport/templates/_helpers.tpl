{{/* The chart name, or nameOverride. */}}
{{- define "meshport.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The name of every object: fullnameOverride, else the release name when it contains the chart
name (a release called `meshport` gives `meshport`), else `<release>-<chart>`. 63 characters at
most, a DNS label.
*/}}
{{- define "meshport.fullname" -}}
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

{{/* `<chart>-<version>`, for the helm.sh/chart label. */}}
{{- define "meshport.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The recommended labels of every object. */}}
{{- define "meshport.labels" -}}
helm.sh/chart: {{ include "meshport.chart" . }}
{{ include "meshport.selectorLabels" . }}
app.kubernetes.io/version: {{ include "meshport.tag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: meshport
{{- end }}

{{/* The labels that select meshport's pods; never change them in an upgrade. */}}
{{- define "meshport.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meshport.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The labels of meshport's server pods: the Deployment's selector, the Service's and the
PodDisruptionBudget's. The migration Job's pods carry `component: migration` instead.
*/}}
{{- define "meshport.serverSelectorLabels" -}}
{{ include "meshport.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{/* The ServiceAccount meshport runs as. */}}
{{- define "meshport.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meshport.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false (Vault's role binds it)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The image tag: image.tag or the chart's appVersion. */}}
{{- define "meshport.tag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{- define "meshport.image" -}}
{{- printf "%s:%s" .Values.image.repository (include "meshport.tag" .) }}
{{- end }}

{{/* The Secret with the MESHPORT_* credentials: the existing one, or the chart's. */}}
{{- define "meshport.secretName" -}}
{{- .Values.credentials.existingSecret | default (include "meshport.fullname" .) }}
{{- end }}

{{/* The Ingress' TLS Secret. */}}
{{- define "meshport.tlsSecretName" -}}
{{- .Values.ingress.tls.secretName | default (printf "%s-tls" (include "meshport.fullname" .)) }}
{{- end }}

{{/* Paths inside the container. */}}
{{- define "meshport.configDir" -}}/etc/meshport{{- end }}
{{- define "meshport.vaultCADir" -}}/etc/meshport/vault-ca{{- end }}
{{- define "meshport.vaultTokenDir" -}}/var/run/secrets/vault{{- end }}
{{- define "meshport.dataDir" -}}/var/lib/meshport{{- end }}

{{/*
Refuses values that cannot work, with a message naming the value. Included by every template
that depends on them, so `helm template` and `helm install` stop before anything is applied.
*/}}
{{- define "meshport.validate" -}}
{{- $engine := .Values.database.engine }}
{{- if not (has $engine (list "postgres" "sqlite")) }}
{{- fail (printf "database.engine must be `postgres` or `sqlite`, not %q" (toString $engine)) }}
{{- end }}
{{- if and (eq $engine "sqlite") (gt (int .Values.replicaCount) 1) }}
{{- fail (printf "replicaCount is %d but the database is SQLite: several meshport replicas need PostgreSQL. Set database.engine=postgres with a postgres:// URL (credentials.databaseUrl or MESHPORT_DATABASE_URL in credentials.existingSecret), or replicaCount=1." (int .Values.replicaCount)) }}
{{- end }}
{{- if not .Values.credentials.existingSecret }}
{{- $url := .Values.credentials.databaseUrl | default "" }}
{{- if and (eq $engine "postgres") (not (or (hasPrefix "postgres://" $url) (hasPrefix "postgresql://" $url))) }}
{{- fail "credentials.databaseUrl must be a postgres:// URL with database.engine=postgres (or name a Secret holding MESHPORT_DATABASE_URL in credentials.existingSecret)" }}
{{- end }}
{{- if and (eq $engine "sqlite") $url (not (hasPrefix "sqlite:" $url)) }}
{{- fail "credentials.databaseUrl is not a sqlite: URL but database.engine is sqlite: set database.engine=postgres for a PostgreSQL URL" }}
{{- end }}
{{- end }}
{{- if and .Values.ingress.enabled (not .Values.ingress.host) }}
{{- fail "ingress.host is required when ingress.enabled is true" }}
{{- end }}
{{- end }}

{{/*
The pod annotations both meshport's pods and the migration pod carry: Linkerd injection and the
operator's own.
*/}}
{{- define "meshport.linkerdAnnotations" -}}
{{- with .Values.linkerd.inject }}
linkerd.io/inject: {{ . | quote }}
{{- end }}
{{- end }}

{{/*
meshport.toml. `config` from the values, with the settings the chart owns merged over it, written
as TOML by "meshport.toml.table": Helm's toToml writes every number as a float (3600.0), which
meshport's integer settings refuse.
*/}}
{{- define "meshport.configToml" -}}
{{- $config := deepCopy (.Values.config | default dict) }}
{{- $_ := set $config "listen" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- $_ := set $config "data_dir" (include "meshport.dataDir" .) }}
{{- if and .Values.ingress.enabled (not $config.public_url) }}
{{- $scheme := ternary "https" "http" .Values.ingress.tls.enabled }}
{{- $_ := set $config "public_url" (printf "%s://%s" $scheme .Values.ingress.host) }}
{{- end }}
{{- $vault := $config.vault | default dict }}
{{- if .Values.vaultCA.configMap }}
{{- $_ := set $vault "ca_cert" (printf "%s/%s" (include "meshport.vaultCADir" .) .Values.vaultCA.key) }}
{{- end }}
{{- if .Values.vaultLogin.enabled }}
{{- $login := dict "method" "kubernetes" "mount" .Values.vaultLogin.mount "role" .Values.vaultLogin.role "jwt_path" (printf "%s/token" (include "meshport.vaultTokenDir" .)) }}
{{- $_ := set $vault "login" $login }}
{{- end }}
{{- $_ := set $config "vault" $vault }}
{{- include "meshport.toml.table" (dict "prefix" "" "table" $config) | trim }}
{{- with .Values.clusterStatus }}
{{- if .enabled }}

# This cluster, read with the pod's own Kubernetes credentials.
[[clusters]]
name = {{ toJson .name }}
{{- with .namespaces }}
namespaces = {{ toJson . }}
{{- end }}

[clusters.linkerd]
enabled = {{ .linkerd.enabled }}
namespace = {{ toJson .linkerd.namespace }}
issuer = {{ toJson .linkerd.issuer }}
trust_anchor_namespace = {{ toJson .linkerd.trustAnchorNamespace }}
trust_anchor = {{ toJson .linkerd.trustAnchor }}
trust_bundle = {{ toJson .linkerd.trustBundle }}
{{- end }}
{{- end }}
{{- end }}

{{/* The namespaces whose Certificates meshport lists: clusterStatus.namespaces, or the
onboarding namespaces. */}}
{{- define "meshport.statusNamespaces" -}}
{{- $namespaces := .Values.clusterStatus.namespaces }}
{{- if not $namespaces }}
{{- $namespaces = (((.Values.config | default dict).onboarding | default dict).namespaces) | default (list "prod-app") }}
{{- end }}
{{- toJson $namespaces }}
{{- end }}

{{/*
One TOML table: its plain keys first, then its sub-tables as `[prefix.key]` sections. Null values
are left out (meshport's default applies).
*/}}
{{- define "meshport.toml.table" -}}
{{- $prefix := .prefix }}
{{- range $key, $value := .table }}
{{- if not (or (kindIs "map" $value) (kindIs "invalid" $value)) }}
{{ $key }} = {{ include "meshport.toml.value" (dict "key" (printf "%s%s" $prefix $key) "value" $value) }}
{{- end }}
{{- end }}
{{- range $key, $value := .table }}
{{- if kindIs "map" $value }}

[{{ $prefix }}{{ $key }}]
{{- include "meshport.toml.table" (dict "prefix" (printf "%s%s." $prefix $key) "table" $value) }}
{{- end }}
{{- end }}
{{- end }}

{{/* One TOML value: strings and lists as JSON (valid TOML there), whole numbers as integers. */}}
{{- define "meshport.toml.value" -}}
{{- $value := .value }}
{{- if kindIs "bool" $value }}
{{- $value }}
{{- else if or (kindIs "float64" $value) (kindIs "int64" $value) (kindIs "int" $value) }}
{{- if ne (float64 (int64 $value)) (float64 $value) }}
{{- fail (printf "config.%s must be a whole number, not %v" .key $value) }}
{{- end }}
{{- int64 $value }}
{{- else if kindIs "string" $value }}
{{- toJson $value }}
{{- else if kindIs "slice" $value }}
{{- range $value }}
{{- if not (kindIs "string" .) }}
{{- fail (printf "config.%s must be a list of strings" $.key) }}
{{- end }}
{{- end }}
{{- toJson $value }}
{{- else }}
{{- fail (printf "config.%s: a %s cannot be written to meshport.toml" .key (kindOf $value)) }}
{{- end }}
{{- end }}

{{/* The data of the Secret the chart creates (without credentials.existingSecret). */}}
{{- define "meshport.secretData" -}}
{{- $c := .Values.credentials }}
{{- $data := dict }}
{{- with $c.databaseUrl }}{{ $_ := set $data "MESHPORT_DATABASE_URL" . }}{{ end }}
{{- with $c.oidcClientSecret }}{{ $_ := set $data "MESHPORT_IDENTITY__CLIENT_SECRET" . }}{{ end }}
{{- with $c.auditSigningKey }}{{ $_ := set $data "MESHPORT_AUDIT__SIGNING_KEY" . }}{{ end }}
{{- with $c.gitopsToken }}{{ $_ := set $data "MESHPORT_GITOPS__TOKEN" . }}{{ end }}
{{- with $c.gitopsWebhookSecret }}{{ $_ := set $data "MESHPORT_GITOPS__WEBHOOK_SECRET" . }}{{ end }}
{{- range $name, $value := $c.extra }}
{{- if not (hasPrefix "MESHPORT_" $name) }}
{{- fail (printf "credentials.extra.%s: meshport reads only MESHPORT_* variables" $name) }}
{{- end }}
{{- $_ := set $data $name (toString $value) }}
{{- end }}
{{- range $name, $value := $data }}
{{ $name }}: {{ $value | b64enc | quote }}
{{- end }}
{{- end }}

{{/*
The meshport container's environment, shared by the Deployment and the migration Job: the
configuration file and the credentials Secret. Takes (dict "root" $ "secretName" NAME).
*/}}
{{- define "meshport.env" -}}
{{- $root := .root -}}
env:
  - name: MESHPORT_CONFIG
    value: {{ include "meshport.configDir" $root }}/meshport.toml
  # Also in meshport.toml; the image sets these variables, which would win over the file.
  - name: MESHPORT_LISTEN
    value: {{ printf "0.0.0.0:%d" (int $root.Values.containerPort) | quote }}
  - name: MESHPORT_DATA_DIR
    value: {{ include "meshport.dataDir" $root }}
  {{- with $root.Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
envFrom:
  - secretRef:
      name: {{ .secretName }}
      optional: false
{{- end }}

{{/* The container security context: non-root, read-only root file system, no capabilities. */}}
{{- define "meshport.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  runAsNonRoot: true
  runAsUser: {{ int .Values.securityContext.runAsUser }}
  runAsGroup: {{ int .Values.securityContext.runAsGroup }}
  capabilities:
    drop:
      - ALL
  seccompProfile:
    type: RuntimeDefault
{{- end }}

{{/* The pod security context. */}}
{{- define "meshport.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: {{ int .Values.securityContext.runAsUser }}
  runAsGroup: {{ int .Values.securityContext.runAsGroup }}
  fsGroup: {{ int .Values.securityContext.fsGroup }}
  seccompProfile:
    type: RuntimeDefault
{{- end }}
