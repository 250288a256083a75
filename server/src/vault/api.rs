//! Raw JSON calls to any Vault path, through vaultrs' client (its connection pool, token,
//! namespace header and `/v1` prefix). vaultrs' typed requests miss fields meshport compares
//! (a role's `audience`, a PKI role's flags), and its error path logs every expected 404; these
//! calls return the whole `data` object and typed errors instead.

use rustify::endpoint::Endpoint;
use rustify::enums::{RequestMethod, RequestType, ResponseType};
use rustify::errors::ClientError as HttpError;
use serde_json::Value;
use vaultrs::client::Client;

use super::{Vault, VaultError};
use crate::error_chain::with_sources;

/// One call: method, path below `/v1/`, optional JSON body.
struct Call {
    method: RequestMethod,
    path: String,
    body: Option<Vec<u8>>,
    list: bool,
}

impl Endpoint for Call {
    type Response = Value;
    const REQUEST_BODY_TYPE: RequestType = RequestType::JSON;
    const RESPONSE_BODY_TYPE: ResponseType = ResponseType::JSON;

    fn path(&self) -> String {
        self.path.clone()
    }

    fn method(&self) -> RequestMethod {
        match self.method {
            RequestMethod::POST => RequestMethod::POST,
            RequestMethod::DELETE => RequestMethod::DELETE,
            _ => RequestMethod::GET,
        }
    }

    fn query(&self) -> Result<Option<String>, HttpError> {
        Ok(self.list.then(|| "list=true".to_owned()))
    }

    fn body(&self) -> Result<Option<Vec<u8>>, HttpError> {
        Ok(self.body.clone())
    }
}

impl Vault {
    /// The `data` of `path`, or `None` when nothing is there.
    pub(crate) async fn read(&self, path: &str) -> Result<Option<Value>, VaultError> {
        let call =
            Call { method: RequestMethod::GET, path: path.to_owned(), body: None, list: false };
        absent_on_404(self.send(call).await)
    }

    /// The keys below `path` (a trailing `/` marks a folder); empty when there are none.
    pub(crate) async fn list(&self, path: &str) -> Result<Vec<String>, VaultError> {
        let call =
            Call { method: RequestMethod::GET, path: path.to_owned(), body: None, list: true };
        let Some(data) = absent_on_404(self.send(call).await)? else { return Ok(Vec::new()) };
        serde_json::from_value(data["keys"].clone()).map_err(|e| VaultError::Unexpected {
            path: path.to_owned(),
            message: format!("no list of keys: {e}"),
        })
    }

    /// Writes `body` to `path`; the answer's `data`, when there is one.
    pub(crate) async fn write(&self, path: &str, body: &Value) -> Result<Value, VaultError> {
        let body = serde_json::to_vec(body).map_err(|e| VaultError::Unexpected {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let call = Call {
            method: RequestMethod::POST,
            path: path.to_owned(),
            body: Some(body),
            list: false,
        };
        self.send(call).await
    }

    /// Deletes `path`; nothing there is not an error.
    pub(crate) async fn delete(&self, path: &str) -> Result<(), VaultError> {
        let call =
            Call { method: RequestMethod::DELETE, path: path.to_owned(), body: None, list: false };
        absent_on_404(self.send(call).await).map(drop)
    }

    #[tracing::instrument(name = "vault", skip_all, fields(method = ?call.method, path = %call.path))]
    async fn send(&self, call: Call) -> Result<Value, VaultError> {
        let client = self.client();
        let path = call.path.clone();
        let response = call
            .with_middleware(client.middle())
            .exec(client.http())
            .await
            .map_err(|error| failure(&path, error))?;
        let body = response.raw();
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        let mut answer: Value = serde_json::from_slice(&body).map_err(|e| {
            VaultError::Unexpected { path: path.clone(), message: format!("not JSON: {e}") }
        })?;
        Ok(answer.get_mut("data").map(Value::take).unwrap_or(Value::Null))
    }
}

/// `Ok(None)` for a 404, which Vault answers for paths that hold nothing.
fn absent_on_404(result: Result<Value, VaultError>) -> Result<Option<Value>, VaultError> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(VaultError::Api { status: 404, .. }) => Ok(None),
        Err(error) => Err(error),
    }
}

/// A typed error: Vault's own messages for an error status, "unreachable" for no answer.
fn failure(path: &str, error: HttpError) -> VaultError {
    match error {
        HttpError::ServerResponseError { code, content } => {
            let errors = content
                .and_then(|c| serde_json::from_str::<Value>(&c).ok())
                .and_then(|v| serde_json::from_value(v["errors"].clone()).ok())
                .unwrap_or_default();
            VaultError::Api { path: path.to_owned(), status: code, errors }
        }
        HttpError::RequestError { .. } => {
            VaultError::Unreachable { path: path.to_owned(), message: with_sources(&error) }
        }
        other => VaultError::Unexpected { path: path.to_owned(), message: with_sources(&other) },
    }
}
