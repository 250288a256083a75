//! Pushes over git's smart HTTP protocol, served by the real `git http-backend` (CGI) behind
//! basic authentication on a free loopback port, to exercise meshport's token authentication.

use std::path::{Path, PathBuf};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::response::Response;
use base64::Engine;
use http::StatusCode;
use meshport_server::gitops::{GitAuth, GitError, GitRepository};
use uuid::Uuid;

use super::{Remote, added, cart_files, commit, git};

const USER: &str = "x-access-token";
const TOKEN: &str = "ghs_test-token-4f9a";

/// A smart HTTP git server over `root`, accepting only `USER`:`TOKEN`.
struct GitHttpServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Backend {
    root: PathBuf,
}

impl GitHttpServer {
    async fn start(root: &Path) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(serve).with_state(Backend { root: root.to_owned() });
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Self { url, task }
    }
}

/// Checks basic authentication, then runs `git http-backend` as CGI for the request.
async fn serve(State(backend): State<Backend>, request: Request) -> Response {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{TOKEN}"))
    );
    let (parts, body) = request.into_parts();
    let authorized = parts.headers.get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        == Some(expected.as_str());
    if !authorized {
        return Response::builder()
            .status(StatusCode::UNAUTHORIZED)
            .header(http::header::WWW_AUTHENTICATE, "Basic realm=\"git\"")
            .body(Body::empty())
            .unwrap();
    }
    let body: Bytes = axum::body::to_bytes(body, 64 * 1024 * 1024).await.unwrap();
    let header = |name: http::header::HeaderName| {
        parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    };
    let mut cgi = tokio::process::Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", &backend.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("PATH_INFO", parts.uri.path())
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("QUERY_STRING", parts.uri.query().unwrap_or_default())
        .env("CONTENT_TYPE", header(http::header::CONTENT_TYPE))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header(http::header::CONTENT_ENCODING))
        .env("GIT_PROTOCOL", header(http::HeaderName::from_static("git-protocol")))
        // Pushing over HTTP is allowed for authenticated users only.
        .env("REMOTE_USER", USER)
        .env("REMOTE_ADDR", "127.0.0.1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit());
    let mut child = cgi.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&body).await;
    });
    let output = child.wait_with_output().await.unwrap();
    writer.await.unwrap();
    cgi_response(&output.stdout)
}

/// A CGI answer (headers, a blank line, the body) as an HTTP response.
fn cgi_response(output: &[u8]) -> Response {
    let split = output
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| output.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (end, gap) = split.expect("git http-backend answers with headers");
    let mut response = Response::builder().status(StatusCode::OK);
    for line in String::from_utf8_lossy(&output[..end]).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        if name.eq_ignore_ascii_case("status") {
            let code: u16 = value.trim().split(' ').next().unwrap().parse().unwrap();
            response = response.status(code);
        } else {
            response = response.header(name.trim(), value.trim());
        }
    }
    response.body(Body::from(output[end + gap..].to_vec())).unwrap()
}

fn over_http(remote: &Remote, server: &GitHttpServer, token: &str) -> GitRepository {
    let url = format!("{}/{}", server.url, remote.bare.file_name().unwrap().to_str().unwrap());
    let cache = remote.folder.path().join(format!("cache-{}", Uuid::new_v4().simple()));
    let auth = GitAuth::Token { username: USER.into(), token: token.to_owned().into() };
    GitRepository::new(&url, "main", &cache, auth, 3)
}

#[tokio::test]
async fn pushes_over_smart_http_send_the_token_only_as_a_header() {
    let remote = Remote::new();
    let server = GitHttpServer::start(remote.folder.path()).await;
    let repo = over_http(&remote, &server, TOKEN);
    let files = cart_files(Uuid::new_v4());
    let head = tokio::task::spawn_blocking(move || {
        repo.commit_and_push(&commit("meshport/cart-http", &files, "Onboard cart over https"))
            .map(|head| (head, files))
    })
    .await
    .unwrap()
    .unwrap();
    let (head, files) = head;
    assert_eq!(git(&["rev-parse", "meshport/cart-http"], &remote.bare), head);
    assert_eq!(remote.diff("main", "meshport/cart-http"), added(&files));

    // The token is kept nowhere on disk: not in the clone's configuration or remote URL.
    for entry in walk(remote.folder.path()) {
        if entry.components().any(|c| c.as_os_str() == "objects") {
            continue;
        }
        let contents = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&contents);
        assert!(!text.contains(TOKEN), "{} holds the token", entry.display());
    }
}

#[tokio::test]
async fn a_wrong_token_is_an_error_naming_the_setting_not_the_token() {
    let remote = Remote::new();
    let server = GitHttpServer::start(remote.folder.path()).await;
    let repo = over_http(&remote, &server, "wrong-token-value");
    let error = tokio::task::spawn_blocking(move || {
        repo.commit_and_push(&commit("meshport/cart-denied", &cart_files(Uuid::new_v4()), "m"))
    })
    .await
    .unwrap()
    .unwrap_err();
    assert!(matches!(error, GitError::Auth { .. }), "{error}");
    let message = error.to_string();
    assert!(message.contains("gitops.token"), "{message}");
    assert!(!message.contains("wrong-token-value"), "{message}");
    assert!(git(&["branch", "--list", "meshport/*"], &remote.bare).is_empty());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}
