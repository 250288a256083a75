path "secret/data/prod-app/payment/*" {
  capabilities = ["read"]
}
