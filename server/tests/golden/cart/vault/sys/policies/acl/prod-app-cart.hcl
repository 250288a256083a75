path "secret/data/prod-app/cart/*" {
  capabilities = ["read"]
}

path "secret/metadata/prod-app/cart/*" {
  capabilities = ["read", "list"]
}
