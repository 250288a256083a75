//! The generated repository's README: layout, the order of the first installation, the pinned
//! versions, and what differs from the original plan and why. Markdown is the one format built
//! as text here; every value spliced in has passed [`BootstrapConfig::check`] (no newlines,
//! backticks or markup characters).

use super::config::{BootstrapConfig, SecretsBackend};
use super::meshport::CREDENTIALS_SECRET;
use super::{PLATFORM_MANIFESTS, SERVICE_MANIFESTS};

/// Each correction of the original plan: what it said, and what this repository does instead.
pub const CORRECTIONS: [(&str, &str); 14] = [
    (
        "An `internal-ca` Certificate with `isCA: true` issued by the Let's Encrypt ClusterIssuer.",
        "ACME (Let's Encrypt) issues only end-entity certificates for public names, never CAs and never `*.cluster.local`; cert-manager's maintainers confirm ACME issuers will not issue CA certificates. Internal CAs here come from a `selfSigned` ClusterIssuer (`vault-ca`, `linkerd-trust-anchor`), and the Let's Encrypt issuer's DNS-01 solver is limited to the public zone with `selector.dnsZones`.",
    ),
    (
        "Linkerd's identity certificate from Let's Encrypt, CN `identity.linkerd.<public domain>`, 90 days, and only `identity.issuer.scheme` in the Helm values.",
        "Linkerd's documented cert-manager setup: a self-signed trust anchor (`isCA`, ECDSA, `rotationPolicy: Always`, CN `root.linkerd.cluster.local`) kept in `cert-manager`; a CA ClusterIssuer backed by it; the identity issuer Certificate `linkerd-identity-issuer` in `linkerd` (`isCA`, ECDSA P-256 because Linkerd rejects RSA and P-521, 48h with renewal after 23h, secret type `kubernetes.io/tls`); the trust-manager Bundle `linkerd-identity-trust-roots` (key `ca-bundle.crt`) distributing the anchor; and the Helm values `identity.externalCA: true` with `identity.issuer.scheme: kubernetes.io/tls`.",
    ),
    (
        "Vault's TLS certificate from Let's Encrypt for `vault.vault.svc.cluster.local`.",
        "Let's Encrypt cannot validate cluster-internal names. Vault's certificate comes from the internal `vault-ca` and names every address clients and raft peers use (`vault.vault.svc`, `vault-active.vault.svc`, `vault-N.vault-internal`, 127.0.0.1); trust-manager copies the CA (ConfigMap and Secret `vault-ca`, the Secret for the agent injector's `tls-secret` annotation) to the namespaces labelled `meshport.io/vault-client`.",
    ),
    (
        "`storage \"file\"` with three HA replicas, and `vault operator raft snapshot` backups.",
        "File storage has no HA and no raft snapshots. Vault runs with integrated storage (`storage \"raft\"`), each node joining the others through `retry_join` over TLS, `setNodeId`, the `awskms` seal and a telemetry stanza. The configuration is HCL built by hcl-rs and given to the chart as `server.ha.raft.config`, which is what the chart reads (the plan's separate `vault-config` ConfigMap was read by nothing).",
    ),
    (
        "`accessKeyID: ${{ secrets.AWS_ACCESS_KEY_ID }}` inside the ClusterIssuer and a `route53-credentials` Secret.",
        "`${{ }}` expressions exist only in workflow files; a manifest would carry the literal text. Route53 is reached through IRSA: cert-manager's ServiceAccount carries the role ARN, the issuer names only the region and hosted zone, and no AWS key exists anywhere.",
    ),
    (
        "A workflow job without `runs-on` (`:: ubuntu-latest`).",
        "Every job has `runs-on` (actionlint checks the workflows in meshport's tests).",
    ),
    (
        "Static `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` repository secrets and `helmfile sync` on every push.",
        "GitHub's OIDC provider and `aws-actions/configure-aws-credentials` assume one role per job (`id-token: write`): a read role for `helmfile diff` on pull requests and a deploy role for `helmfile apply` on the deploy branch, behind the `production` environment and a concurrency group.",
    ),
    (
        "Helm releases with no order, created namespaces, `installCRDs: true`, Linkerd stable 2.14 charts.",
        "Releases declare `needs` (CRDs before their objects, the identity issuer before Linkerd, Vault's certificate before Vault), and the PKI release waits until every Certificate is `Ready` and every Bundle `Synced` (Helm's own wait does not know them); namespaces are objects of their own release with their Linkerd labels (`createNamespace: false`); cert-manager's CRDs use the current `crds.enabled`/`crds.keep`; Linkerd's open-source releases are edge releases (`linkerd-edge`), pinned to exact versions like every chart.",
    ),
    (
        "One ArgoCD Application for `manifests/` with `CreateNamespace=true` in the `default` project.",
        "An app of apps: `argocd/bootstrap/root.yaml` syncs `argocd/apps/`, whose `services` Application reads `manifests/` recursively (services are proposed as `manifests/<namespace>/<service>/`), leaves out the platform folder that Helmfile owns, may not create namespaces, and belongs to the `services` project, which allows only namespaced objects in the application namespaces.",
    ),
    (
        "The application namespace only annotated `linkerd.io/inject: enabled`.",
        "Injection alone still admits plaintext. Application namespaces also carry `config.linkerd.io/default-inbound-policy: all-authenticated`; meshport adds a `Server`, `MeshTLSAuthentication` and `AuthorizationPolicy` per service port.",
    ),
    (
        "Annotations `vault.hashicorp.com/secret` and `vault.hashicorp.com/secret-db_password`, and `DB_PASSWORD=file:///vault/secrets/db_password`.",
        "Not Vault Agent Injector annotations. meshport generates `agent-inject`, `role`, `auth-path`, `agent-inject-secret-<file>` and `agent-inject-template-<file>`, with `tls-secret: vault-ca` and `ca-cert: /vault/tls/ca.crt` so the agent trusts Vault's internal CA, under the prefix `vault.hashicorp.com` for OpenBao too (the released OpenBao chart runs HashiCorp's `vault-k8s` injector), and points the app at the file with `<NAME>_FILE`. Pods ask for Linkerd's native sidecar, which starts before `vault-agent-init`; they also skip the proxy for port 8200 (`config.linkerd.io/skip-outbound-ports`), where Vault's TLS protects the hop.",
    ),
    (
        "One policy `secret/data/prod-app/*` for every service, and `vault secrets enable -path=secret kv`.",
        "Least privilege: meshport writes one policy per service naming its own `data/` and `metadata/` paths. The KV engine is version 2 (`-version=2`), which the `data/` paths and metadata need.",
    ),
    (
        "`vault write secret/prod-app/cart-service/config ttl=720h` as rotation.",
        "That writes a secret. Rotation is a new KV version plus a rolled workload; meshport records the rotation period in each secret's `custom_metadata`.",
    ),
    (
        "Backups by hand: `kubectl exec … vault-0 -- vault operator raft snapshot save` then `aws s3 cp` (and the typo `vault-loid`).",
        "A daily CronJob asks the active node for a snapshot with its own Vault role (read on `sys/storage/raft/snapshot` only, files under `vault/`) and uploads it with its own IRSA role to S3, encrypted with KMS.",
    ),
];

/// The README for `config`.
pub fn readme(config: &BootstrapConfig) -> String {
    let backend = config.secrets_backend.name();
    let cli = config.secrets_backend.cli();
    let v = &config.versions;
    let (backend_chart, backend_version, backend_image) = match config.secrets_backend {
        SecretsBackend::Vault => ("hashicorp/vault", &v.vault_chart, &v.vault_image),
        SecretsBackend::Openbao => ("openbao/openbao", &v.openbao_chart, &v.openbao_image),
    };
    let mut out = String::new();
    out.push_str(&format!(
        "# Platform GitOps repository of `{cluster}`\n\n\
         Generated by `meshport bootstrap` for the EKS cluster `{cluster}` in `{region}`, public \
         zone `{domain}`. Regenerate it from the same `bootstrap.toml` rather than editing the \
         generated files by hand; review the difference like any change.\n\n\
         ## Layout\n\n\
         | path | what | applied by |\n|---|---|---|\n\
         | `helmfile.yaml` | every chart at an exact version, and the folders below as releases, in order (`needs`) | `deploy-platform` workflow |\n\
         | `{platform}/namespaces/` | namespaces with their Linkerd labels and annotations | Helmfile |\n\
         | `{platform}/pki/` | Let's Encrypt (public names, DNS-01 on Route53 through IRSA), Linkerd's trust anchor and identity issuer, the trust bundles, Vault's CA and certificate | Helmfile |\n\
         | `{platform}/backup/` | the daily raft snapshot to `s3://{bucket}/{prefix}` | Helmfile |\n\
         | `vault/` | the snapshot job's Vault policy and Kubernetes-auth role | by hand, once (below) |\n\
         | `charts/meshport/` | meshport itself | Helmfile |\n\
         | `argocd/bootstrap/root.yaml` | the root Application (app of apps) | Helmfile |\n\
         | `argocd/apps/` | the `services` project and Application | ArgoCD |\n\
         | `{services}/<namespace>/<service>/` | the onboarded services, proposed by meshport as pull requests | ArgoCD (`deploy-application` waits for it) |\n\n",
        cluster = config.cluster_name,
        region = config.aws_region,
        domain = config.domain,
        platform = PLATFORM_MANIFESTS,
        services = SERVICE_MANIFESTS,
        bucket = config.backup.bucket,
        prefix = config.backup.prefix,
    ));
    out.push_str(&format!(
        "## Before the first deployment\n\n\
         1. In AWS account `{account}`: the KMS key `{kms}`; the S3 bucket `{bucket}`; the IAM roles \
         `{cert_manager}` (Route53 changes in zone `{zone}`, trusted by the cluster's OIDC provider \
         for `cert-manager/cert-manager`), `{vault_role}` (KMS encrypt, decrypt and describe on the \
         key, for `{backend}/{backend}`), `{snapshot}` (`s3:PutObject` on the bucket, for \
         `{backend}/raft-snapshot`), and `{diff}` and `{apply}`, trusted by \
         `token.actions.githubusercontent.com` for this repository (pull requests, and the \
         `production` environment).\n\
         2. In GitHub: the environment `production` (with required reviewers) and the secrets \
         `ARGOCD_SERVER` (host of the ArgoCD API) and `ARGOCD_AUTH_TOKEN` (an ArgoCD account \
         allowed to sync the `services` Application).\n\
         3. The first `helmfile apply` leaves meshport out (it needs Vault's objects and its \
         credentials first): `helmfile apply --selector name!=meshport` (Helmfile labels every \
         release with its name).\n\
         4. Initialise {backend} once (the `awskms` seal unseals it; keep the recovery keys \
         offline), reach it from your machine, and create what meshport and the snapshot job use. \
         meshport logs in with its ServiceAccount (Kubernetes auth, role `meshport`) and holds only \
         the policy in `vault/sys/policies/acl/meshport.hcl` (the one `meshport vault policy` \
         prints for this configuration); never give it a root token.\n\n\
         ```sh\n\
         kubectl -n {backend} exec -ti {backend}-0 -- {cli} operator init\n\
         kubectl -n {backend} port-forward svc/{backend}-active 8200 &\n\
         kubectl -n {backend} get secret vault-tls -o jsonpath='{{.data.ca\\.crt}}' | base64 -d > vault-ca.pem\n\
         export VAULT_ADDR=https://127.0.0.1:8200 BAO_ADDR=https://127.0.0.1:8200 VAULT_CACERT=vault-ca.pem BAO_CACERT=vault-ca.pem\n\
         {cli} login   # the initial root token, for this set-up only; revoke it afterwards\n\
         {cli} audit enable file file_path=/{backend}/audit/audit.log\n\
         {cli} secrets enable -path=secret -version=2 kv\n\
         {cli} auth enable kubernetes\n\
         {cli} write auth/kubernetes/config kubernetes_host=https://kubernetes.default.svc\n\
         {cli} policy write raft-snapshot vault/sys/policies/acl/raft-snapshot.hcl\n\
         {cli} write auth/kubernetes/role/raft-snapshot @vault/auth/kubernetes/role/raft-snapshot.json\n\
         {cli} policy write meshport vault/sys/policies/acl/meshport.hcl\n\
         {cli} write auth/kubernetes/role/meshport @vault/auth/kubernetes/role/meshport.json\n\
         {templated}\
         # The PKI engine for services that ask for a certificate: a CA of its own (ten years)\n\
         {cli} secrets enable pki\n\
         {cli} secrets tune -max-lease-ttl=87600h pki\n\
         {cli} write -field=certificate pki/root/generate/internal common_name=\"{cluster} services CA\" key_type=ec ttl=87600h > services-ca.pem\n\
         {cli} write pki/config/urls issuing_certificates={addr}/v1/pki/ca crl_distribution_points={addr}/v1/pki/crl\n\
         ```\n\n\
         5. The Secret `{credentials}` in namespace `meshport`, as `MESHPORT_*` variables: \
         `MESHPORT_DATABASE_URL` (PostgreSQL; the chart runs two replicas), \
         `MESHPORT_IDENTITY__CLIENT_SECRET`, `MESHPORT_AUDIT__SIGNING_KEY`, \
         `MESHPORT_GITOPS__TOKEN` (a fine-grained GitHub token for this repository only: contents \
         and pull requests, read and write) and `MESHPORT_GITOPS__WEBHOOK_SECRET` (the secret of \
         this repository's pull-request webhook to `<meshport>/api/webhooks/github`). No Vault \
         token.\n\
         6. `helmfile apply` again (or push to `{branch}`): meshport joins. Until the Secret of \
         step 5 exists, the workflow applies everything but meshport.\n\
         7. Check what meshport will use: `kubectl -n meshport exec deploy/meshport -- meshport \
         vault preflight --pki` names anything missing and the command that creates it.\n\n",
        account = config.aws_account_id,
        kms = config.kms_key_alias,
        bucket = config.backup.bucket,
        zone = config.hosted_zone_id,
        cert_manager = config.iam.cert_manager,
        vault_role = config.iam.vault,
        snapshot = config.iam.snapshot,
        diff = config.iam.github_diff,
        apply = config.iam.github_apply,
        credentials = CREDENTIALS_SECRET,
        branch = config.git.branch,
        cluster = config.cluster_name,
        addr = config.secrets_backend_addr(),
        templated = match config.vault_policy_mode {
            crate::artifacts::vault_objects::PolicyMode::PerService => String::new(),
            crate::artifacts::vault_objects::PolicyMode::Templated => format!(
                "# vault_policy_mode = \"templated\": the one workload policy, for this mount's accessor\n\
                 sed \"s/{placeholder}/$({cli} auth list -format=json | jq -r '.[\"kubernetes/\"].accessor')/g\" \
                 vault/sys/policies/acl/{workloads}.hcl | {cli} policy write {workloads} -\n",
                placeholder = super::meshport::ACCESSOR_PLACEHOLDER,
                workloads = super::meshport::portal_config(config).artifact_settings().workload_policy_name(),
                cli = config.secrets_backend.cli(),
            ),
        },
    ));
    out.push_str(&format!(
        "## Pinned versions\n\n\
         | component | version |\n|---|---|\n\
         | linkerd-edge/linkerd-crds | {} |\n\
         | linkerd-edge/linkerd-control-plane | {} |\n\
         | jetstack/cert-manager | {} |\n\
         | jetstack/trust-manager | {} |\n\
         | {} | {} |\n\
         | argo/argo-cd | {} |\n\
         | Helm / Helmfile / helm-diff (workflow) | {} / {} / {} |\n\
         | ArgoCD CLI (workflow) | {} |\n\
         | snapshot images | `{}`, `{}` |\n\n",
        v.linkerd_crds,
        v.linkerd_control_plane,
        v.cert_manager,
        v.trust_manager,
        backend_chart,
        backend_version,
        v.argo_cd,
        v.helm,
        v.helmfile,
        v.helm_diff,
        v.argocd_cli,
        backend_image,
        v.aws_cli_image,
    ));
    out.push_str(&format!(
        "## Operating notes\n\n\
         - `linkerd check` warns when the identity issuer has less than 60 days left; with the \
         documented 48-hour issuer that warning is permanent and expected. Judge certificates by \
         `renewalTime` and `notAfter` in their status instead.\n\
         - The trust anchor lives ten years and renews one year before its end with a new key. \
         Rotate it as Linkerd documents, before cert-manager does: the \
         `linkerd-identity-trust-roots` Bundle also trusts every Secret in `cert-manager` labelled \
         `{previous}=true`, so (1) copy the current anchor: `kubectl -n cert-manager create secret \
         generic linkerd-previous-anchor --from-literal=ca.crt=\"$(kubectl -n cert-manager get \
         secret linkerd-trust-anchor -o jsonpath='{{.data.ca\\.crt}}' | base64 -d)\"` and `kubectl \
         -n cert-manager label secret linkerd-previous-anchor {previous}=true`; (2) renew the \
         anchor (`cmctl renew -n cert-manager linkerd-trust-anchor`): the bundle now holds both \
         and the identity issuer is reissued under the new one; (3) restart the meshed workloads \
         so every proxy gets a certificate of the new chain; (4) delete the copy and restart \
         them again. Without the copy, a renewal swaps trust at once and proxies with the old \
         chain stop trusting the new one.\n\
         - {backend} reads its TLS certificate only at start and on SIGHUP; the `tls-reloader` \
         sidecar sends SIGHUP within a minute of cert-manager renewing `vault-tls`.\n\
         - Snapshots run on the schedule `{schedule}` (UTC) to `s3://{bucket}/{prefix}`; \
         restore one with `{cli} operator raft snapshot restore` against the active node.\n\n",
        previous = super::platform::PREVIOUS_ANCHOR_LABEL,
        schedule = config.backup.schedule,
        bucket = config.backup.bucket,
        prefix = config.backup.prefix,
        backend = config.secrets_backend.name(),
    ));
    out.push_str("## What differs from the original plan and why\n\n");
    for (plan, now) in CORRECTIONS {
        out.push_str(&format!("- **Plan:** {plan}\n  **Here:** {now}\n"));
    }
    out
}
