path "sys/policies/acl/meshport-prod-app-*" {
  capabilities = ["create", "read", "update", "delete"]
}

path "auth/kubernetes/role/meshport-prod-app-*" {
  capabilities = ["create", "read", "update", "delete"]
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

path "pki/certs" {
  capabilities = ["list"]
}

path "pki/cert/*" {
  capabilities = ["read"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}
