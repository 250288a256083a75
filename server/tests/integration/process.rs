//! The real `meshport` binary: `meshport dev` starts OpenBao, becomes ready, and on SIGTERM
//! stops everything it started and exits cleanly.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Children of `pid`, read from /proc.
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| {
            let child: u32 = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // The parent pid is the second field after the parenthesised command name.
            let ppid: u32 = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?.parse().ok()?;
            (ppid == pid).then_some(child)
        })
        .collect()
}

#[tokio::test]
async fn meshport_dev_serves_then_stops_everything_on_sigterm() {
    let folder = tempfile::tempdir().unwrap();
    let port = meshport_server::dev::free_loopback_port().unwrap();
    let mut meshport = Command::new(env!("CARGO_BIN_EXE_meshport"))
        .arg("dev")
        .env("MESHPORT_LISTEN", format!("127.0.0.1:{port}"))
        .env("MESHPORT_DATA_DIR", folder.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let answer = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await;
        if let Ok(response) = answer
            && response.status() == reqwest::StatusCode::OK
        {
            break true;
        }
        if Instant::now() > deadline || meshport.try_wait().unwrap().is_some() {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let started = children(meshport.id());
    kill(Pid::from_raw(meshport.id() as i32), Signal::SIGTERM).unwrap();
    assert!(ready, "meshport dev did not become ready");
    assert!(!started.is_empty(), "OpenBao runs as a child of meshport dev");

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = meshport.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "meshport dev did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "meshport dev exited with {status}");
    for child in started {
        assert!(
            !std::path::Path::new(&format!("/proc/{child}")).exists(),
            "child {child} outlived meshport"
        );
    }
    assert!(folder.path().join("meshport.db").is_file());
    assert!(folder.path().join("gitops.git/HEAD").is_file());
}
