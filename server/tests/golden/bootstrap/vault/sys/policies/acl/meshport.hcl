path "sys/policies/acl/meshport-prod-app-*" {
  capabilities = ["create", "read", "update", "delete"]
}

path "auth/kubernetes/role/meshport-prod-app-*" {
  capabilities = ["create", "read", "update", "delete"]
  allowed_parameters = {
    "audience" = []
    "bound_service_account_names" = []
    "bound_service_account_namespaces" = ["prod-app"]
    "token_max_ttl" = []
    "token_policies" = ["meshport-prod-app-*"]
    "token_ttl" = []
  }
  denied_parameters = {
    "token_policies" = ["*,*"]
  }
}

path "secret/data/prod-app/*" {
  capabilities = ["create", "update"]
}

path "secret/metadata/prod-app/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "pki/roles/meshport-prod-app-*" {
  capabilities = ["create", "read", "update", "delete"]
}

path "secret/data/meshport-staging/*" {
  capabilities = ["create", "read", "update"]
}

path "secret/metadata/meshport-staging/*" {
  capabilities = ["read", "delete", "list"]
}

path "pki/certs" {
  capabilities = ["list"]
}

path "pki/cert/*" {
  capabilities = ["read"]
}

path "pki/config/urls" {
  capabilities = ["read"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
