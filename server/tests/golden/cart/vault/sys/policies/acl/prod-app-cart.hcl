path "secret/data/prod-app/cart/*" {
  capabilities = ["read"]
}
