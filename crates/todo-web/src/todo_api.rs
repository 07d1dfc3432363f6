//! A small client of todo-api: list, add, complete and delete the signed-in user's todos,
//! with their access token as a Bearer token (RFC 6750).

use serde::Deserialize;
use std::time::Duration;

/// One todo, as todo-api returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Todo {
    pub id: String,
    pub title: String,
    pub done: bool,
}

/// What can go wrong calling todo-api.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TodoApiError {
    #[error("todo-api cannot be reached: {0}")]
    Unreachable(String),
    /// todo-api refused the request (a bad title, an unknown todo, a token it rejects).
    #[error("todo-api answered {status}: {detail}")]
    Refused { status: u16, detail: String },
}

/// todo-api at its base URL.
#[derive(Clone)]
pub struct TodoApi {
    base: url::Url,
    http: reqwest::Client,
}

/// The RFC 9457 problem body todo-api answers errors with (only what we show).
#[derive(Deserialize)]
struct Problem {
    title: Option<String>,
    detail: Option<String>,
}

impl TodoApi {
    pub fn new(base: url::Url) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self { base, http })
    }

    pub async fn list(&self, access_token: &str) -> Result<Vec<Todo>, TodoApiError> {
        let request = self.http.get(self.url("api/todos")?);
        let response = send(request.bearer_auth(access_token)).await?;
        response
            .json()
            .await
            .map_err(|e| TodoApiError::Unreachable(e.to_string()))
    }

    pub async fn create(&self, access_token: &str, title: &str) -> Result<(), TodoApiError> {
        let request = self
            .http
            .post(self.url("api/todos")?)
            .json(&serde_json::json!({ "title": title }));
        send(request.bearer_auth(access_token)).await.map(drop)
    }

    pub async fn complete(&self, access_token: &str, id: &str) -> Result<(), TodoApiError> {
        let request = self
            .http
            .patch(self.todo_url(id)?)
            .json(&serde_json::json!({ "done": true }));
        send(request.bearer_auth(access_token)).await.map(drop)
    }

    pub async fn delete(&self, access_token: &str, id: &str) -> Result<(), TodoApiError> {
        let request = self.http.delete(self.todo_url(id)?);
        send(request.bearer_auth(access_token)).await.map(drop)
    }

    fn url(&self, path: &str) -> Result<url::Url, TodoApiError> {
        let mut base = self.base.clone();
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        base.join(path)
            .map_err(|e| TodoApiError::Unreachable(format!("bad todo-api URL: {e}")))
    }

    /// `/api/todos/{id}`, the id percent-encoded as one path segment.
    fn todo_url(&self, id: &str) -> Result<url::Url, TodoApiError> {
        let mut url = self.url("api/todos")?;
        url.path_segments_mut()
            .map_err(|_| TodoApiError::Unreachable("bad todo-api URL".into()))?
            .push(id);
        Ok(url)
    }
}

async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, TodoApiError> {
    let response = request
        .send()
        .await
        .map_err(|e| TodoApiError::Unreachable(crate::oidc::error_chain(&e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let detail = match response.json::<Problem>().await {
        Ok(problem) => problem.detail.or(problem.title).unwrap_or_default(),
        Err(_) => String::new(),
    };
    Err(TodoApiError::Refused {
        status: status.as_u16(),
        detail,
    })
}
