path "secret/data/prod-app/payment/*" {
  capabilities = ["read"]
}

path "secret/metadata/prod-app/payment/*" {
  capabilities = ["read", "list"]
}
