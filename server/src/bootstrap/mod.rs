//! `meshport bootstrap`: writes the GitOps repository of the platform under the services (Linkerd
//! with cert-manager-issued identity, trust-manager, Vault or OpenBao in HA, ArgoCD, the GitHub
//! workflows) from one [`BootstrapConfig`], as the upstream projects document it rather than as
//! the original plan had it (the generated README lists each difference). Every file is typed
//! data serialised by a maintained YAML, HCL or TOML serialiser; the Markdown README is the only
//! text assembled here, from checked values. `meshport dev` seeds its local repository with the
//! output for [`BootstrapConfig::example`].

pub mod argocd;
pub mod cert_manager;
pub mod config;
pub mod helmfile;
pub mod meshport;
pub mod platform;
mod readme;
pub mod vault_server;
pub mod workflows;

use std::path::{Component, Path};

pub use self::config::BootstrapConfig;
use crate::artifacts::{ArtifactFile, RenderError, yaml_file};

/// The folder ArgoCD syncs recursively; meshport proposes services below it, as
/// `manifests/<namespace>/<service>/`.
pub const SERVICE_MANIFESTS: &str = "manifests";
/// The platform's own objects, applied by Helmfile in order; ArgoCD leaves them out.
pub const PLATFORM_MANIFESTS: &str = "manifests/platform";

/// Bootstrapping failed: a configuration value, a file system error, or a serialiser bug.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The file could not be read or parsed, or names an unknown key.
    #[error("could not read the bootstrap configuration: {0}")]
    Parse(#[from] Box<figment::Error>),
    /// A value is well-typed but not usable.
    #[error("invalid bootstrap configuration: `{key}` {rule}")]
    Value {
        /// The key, dotted.
        key: &'static str,
        /// What it must be.
        rule: &'static str,
    },
    /// A file could not be serialised.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// The output folder holds files and `--force` was not given.
    #[error(
        "{0} is not empty: choose an empty or new folder, or pass --force to overwrite the generated files in it"
    )]
    NotEmpty(String),
    /// Reading or writing the output folder failed.
    #[error("could not write {path}: {source}")]
    Io {
        /// The file or folder.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Every file of the repository for `config`, sorted by path.
pub fn render(config: &BootstrapConfig) -> Result<Vec<ArtifactFile>, BootstrapError> {
    config.check()?;
    let mut files = vec![yaml_file("helmfile.yaml", &helmfile::helmfile(config))?];
    files.extend(platform::files(config)?);
    files.extend(vault_server::snapshot_access_files(config)?);
    files.extend(meshport::vault_access_files(config)?);
    let apps = argocd::AppOfApps::new(config);
    files.push(yaml_file("argocd/bootstrap/root.yaml", &apps.root)?);
    files.push(yaml_file("argocd/apps/appproject-services.yaml", &apps.project)?);
    files.push(yaml_file("argocd/apps/application-services.yaml", &apps.services)?);
    files.extend(meshport::chart_files(config)?);
    files.extend(workflows::files(config)?);
    files.push(ArtifactFile { path: "README.md".to_owned(), contents: readme::readme(config) });
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// Writes `files` below `dir`, creating it. A folder that already holds anything is refused
/// unless `force`, which overwrites the generated files and leaves others in place.
pub fn write_repository(
    dir: &Path,
    files: &[ArtifactFile],
    force: bool,
) -> Result<(), BootstrapError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| BootstrapError::Io { path, source }
    };
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() && !force {
                return Err(BootstrapError::NotEmpty(dir.display().to_string()));
            }
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(dir)(error)),
    }
    for file in files {
        let relative = Path::new(&file.path);
        // Paths are built from checked names; this keeps a bug from writing outside `dir`.
        if !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Err(BootstrapError::Render(RenderError::new(
                file.path.clone(),
                "the path leaves the output folder",
            )));
        }
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, &file.contents).map_err(io(&path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_empty_folder_is_refused_without_force() {
        let folder = tempfile::tempdir().unwrap();
        std::fs::write(folder.path().join("notes.txt"), "mine").unwrap();
        let files = render(&BootstrapConfig::example()).unwrap();
        let error = write_repository(folder.path(), &files, false).unwrap_err().to_string();
        assert!(error.contains("--force"), "{error}");
        assert!(!folder.path().join("helmfile.yaml").exists());

        write_repository(folder.path(), &files, true).unwrap();
        assert!(folder.path().join("helmfile.yaml").is_file());
        assert_eq!(std::fs::read_to_string(folder.path().join("notes.txt")).unwrap(), "mine");
    }

    #[test]
    fn paths_outside_the_folder_are_refused() {
        let folder = tempfile::tempdir().unwrap();
        let files = [ArtifactFile { path: "../escape.yaml".into(), contents: String::new() }];
        assert!(write_repository(&folder.path().join("out"), &files, false).is_err());
        assert!(!folder.path().join("escape.yaml").exists());
    }

    #[test]
    fn rendering_checks_the_configuration_first() {
        let mut config = BootstrapConfig::example();
        config.domain = String::new();
        let error = render(&config).unwrap_err().to_string();
        assert!(error.contains("`domain`"), "{error}");
    }
}
