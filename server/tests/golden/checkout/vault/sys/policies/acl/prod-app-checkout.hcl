path "secret/data/prod-app/checkout/*" {
  capabilities = ["read"]
}

path "pki/issue/prod-app-checkout" {
  capabilities = ["create", "update"]
}
