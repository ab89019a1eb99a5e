{{/*
The environment each service reads from the Secret (never inlined): a hosted
provider's key or S3 credentials may be absent (optional), the rest must be there.
*/}}

{{- define "cadenza.gateway.secretEnv" -}}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_JWT_SECRET" "key" "jwtSecret") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_JWT_PREVIOUS_SECRETS" "key" "jwtPreviousSecrets" "optional" true) }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_MESH_GATEWAY_TO_PROJECT_SECRET" "key" "meshGatewayToProject") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_MESH_GATEWAY_TO_GENERATION_SECRET" "key" "meshGatewayToGeneration") }}
{{- end }}

{{- define "cadenza.project.secretEnv" -}}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_DATABASE_URL" "key" "databaseUrl") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_AMQP_URL" "key" "amqpUrl") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_JWT_SECRET" "key" "jwtSecret") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_JWT_PREVIOUS_SECRETS" "key" "jwtPreviousSecrets" "optional" true) }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_MESH_GATEWAY_TO_PROJECT_SECRET" "key" "meshGatewayToProject") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_MESH_PROJECT_TO_STORAGE_SECRET" "key" "meshProjectToStorage") }}
{{- end }}

{{- define "cadenza.generation.secretEnv" -}}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_AMQP_URL" "key" "amqpUrl") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_FAL_KEY" "key" "falKey" "optional" true) }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_REPLICATE_TOKEN" "key" "replicateToken" "optional" true) }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_MESH_GATEWAY_TO_GENERATION_SECRET" "key" "meshGatewayToGeneration") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_MESH_GENERATION_TO_STORAGE_SECRET" "key" "meshGenerationToStorage") }}
{{- end }}

{{- define "cadenza.storage.secretEnv" -}}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_DATABASE_URL" "key" "databaseUrl") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_URL_SIGNING_KEY" "key" "urlSigningKey") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_MESH_PROJECT_TO_STORAGE_SECRET" "key" "meshProjectToStorage") }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_MESH_GENERATION_TO_STORAGE_SECRET" "key" "meshGenerationToStorage") }}
{{- if eq .Values.storage.backend "s3" }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_S3_ACCESS_KEY_ID" "key" "s3AccessKeyId" "optional" true) }}
{{ include "cadenza.secretEnv" (dict "root" . "name" "CADENZA_S3_SECRET_ACCESS_KEY" "key" "s3SecretAccessKey" "optional" true) }}
{{- end }}
{{- end }}
