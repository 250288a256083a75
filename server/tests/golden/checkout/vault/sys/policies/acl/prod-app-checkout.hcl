path "secret/data/prod-app/checkout/*" {
  capabilities = ["read"]
}

path "secret/metadata/prod-app/checkout/*" {
  capabilities = ["read", "list"]
}

path "pki/issue/prod-app-checkout" {
  capabilities = ["create", "update"]
}
