//! The fleet's repository drift pass over many live services (`MESHPORT_BENCH_SERVICES`,
//! default 1000) in SQLite and a local bare GitOps repository: one fetch of the base branch,
//! one `git ls-tree -r`, every service rendered and compared by git blob id, without a checkout
//! or a process per service. A third of the services hold an older generator's rendering, one
//! in fifty a hand edit. Prints the first pass (which also records the running version's
//! renderings) and the median of later passes; asserts nothing.
//! Run: `cargo bench -p server --bench fleet_drift`.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use app::fleet::DriftClass;
use meshport_server::artifacts::ServiceArtifacts;
use meshport_server::config::Config;
use meshport_server::fleet::{Fleet, renderings_of};
use meshport_server::gitops::{Gitops, init_local_repository};
use meshport_server::request_service::Requests;

mod common;

fn git(dir: &std::path::Path, args: &[&str]) -> anyhow::Result<()> {
    let status = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@localhost")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@localhost")
        .status()?;
    anyhow::ensure!(status.success(), "git {args:?} failed");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meshport_server::install_crypto_provider();
    let n = common::services_count();
    let folder = tempfile::tempdir()?;
    let bare = folder.path().join("gitops.git");
    init_local_repository(&bare, "main", &[])?;
    let mut config = Config { data_dir: folder.path().to_owned(), ..Config::default() };
    config.gitops.repo_url = Some(bare.display().to_string());
    config.gitops.cache_dir = Some(folder.path().join("cache"));
    let store = meshport_server::open_store(&config).await?;
    let requests: Vec<_> = (0..n).map(common::request).collect();
    common::store_services(&store, &requests).await?;

    // The repository: each service's files as a meshport rendered them, some by an older
    // generator (recorded as such), some edited by hand.
    let settings = config.artifact_settings();
    let mut older = settings.clone();
    older.extra_annotation = Some(("meshport.io/older-rule".into(), "on".into()));
    let rules = config.onboarding_rules();
    let work = folder.path().join("work");
    git(folder.path(), &["clone", "--quiet", bare.to_str().unwrap(), work.to_str().unwrap()])?;
    let mut recorded = Vec::new();
    let started = Instant::now();
    for (i, (service, live)) in store.live_services().await?.into_iter().enumerate() {
        let rendered_by = if i % 3 == 0 { &older } else { &settings };
        let files = ServiceArtifacts::from_stored(&live.spec, &rules, rendered_by, service.origin)
            .map_err(anyhow::Error::msg)?
            .gitops_files()?;
        let version = rendered_by.generator_version();
        recorded.extend(renderings_of(
            &service.namespace,
            &service.service_name,
            &live.spec,
            &version,
            &files,
        ));
        for (j, file) in files.iter().enumerate() {
            let path = work.join(&file.path);
            std::fs::create_dir_all(path.parent().unwrap())?;
            let mut contents = file.contents.clone();
            if i % 50 == 1 && j == 0 {
                contents.push_str("# edited by hand\n");
            }
            std::fs::write(path, contents)?;
        }
    }
    store.record_renderings(&recorded).await?;
    git(&work, &["add", "--all"])?;
    git(&work, &["commit", "--quiet", "-m", "services"])?;
    git(&work, &["push", "--quiet", "origin", "HEAD:refs/heads/main"])?;
    println!("set-up: {n} services, {} files, {:.1} s", recorded.len(), started.elapsed().as_secs_f64());

    let gitops = Arc::new(Gitops::from_config(
        &config.gitops,
        &config.data_dir,
        &config.public_url(),
        store.clone(),
    )?);
    let fleet = Fleet {
        store: store.clone(),
        gitops: gitops.clone(),
        requests: Arc::new(Requests {
            store: store.clone(),
            rules: rules.clone(),
            vault: Arc::new(meshport_server::vault::Vault::new(&config.vault)?),
            settings: settings.clone(),
            gitops: Some(gitops.clone()),
            notifications: Arc::default(),
        }),
        settings,
        rules,
        max_open: 5,
    };
    let started = Instant::now();
    let report = fleet.check().await?;
    let first = started.elapsed();
    let mut later: Vec<Duration> = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        fleet.check().await?;
        later.push(started.elapsed());
    }
    later.sort();
    let totals = report.totals();
    println!();
    println!("| fleet drift pass, {n} services | seconds |");
    println!("|---|---|");
    println!("| first pass (records this version's renderings) | {:.2} |", first.as_secs_f64());
    println!("| later passes, median of 5 | {:.2} |", later[2].as_secs_f64());
    println!();
    println!(
        "files: {} current, {} generator upgrade, {} hand edit; fetches: {}",
        totals.of(DriftClass::Current),
        totals.of(DriftClass::GeneratorUpgrade),
        totals.of(DriftClass::HandEdit),
        gitops.fetches()
    );
    Ok(())
}
