//! The code flow as the end-to-end tests walk it with plain HTTP: a PKCE pair, an
//! authorization URL, and a user signing in to a first-party app (no consent page) until
//! the browser reaches the app's callback.
#![allow(dead_code)]

use super::hidden;
use serde_json::Value;

/// PKCE (RFC 7636): a verifier and its S256 challenge.
pub fn pkce() -> (String, String) {
    use base64::Engine;
    use sha2::Digest;
    let verifier = sigil_core::secret::random_token(32);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

/// `{base}/authorize` for `client_id` with `callback`, scope `openid offline_access`,
/// state `s`, the S256 `challenge` and `extra` parameters.
pub fn authorize_url(
    base: &str,
    client_id: &str,
    callback: &str,
    challenge: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut url = url::Url::parse(&format!("{base}/authorize")).expect("url");
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", callback)
        .append_pair("scope", "openid offline_access")
        .append_pair("state", "s")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        url.query_pairs_mut().append_pair(k, v);
    }
    url.to_string()
}

/// Follows the browser from `authorize_url` to `callback`: `username` signs in with
/// `password` on the sign-in page (the app is first-party: no consent page). Returns the
/// callback URL reached.
pub async fn sign_in_first_party(
    base: &str,
    authorize_url: &str,
    callback: &str,
    username: &str,
    password: &str,
) -> String {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("browser");
    sign_in_first_party_in(&browser, base, authorize_url, callback, username, password).await
}

/// [`sign_in_first_party`] in a given `browser` (a cookie store, no redirects followed),
/// which stays signed in afterwards.
pub async fn sign_in_first_party_in(
    browser: &reqwest::Client,
    base: &str,
    authorize_url: &str,
    callback: &str,
    username: &str,
    password: &str,
) -> String {
    let absolute = |location: &str| {
        if location.starts_with('/') {
            format!("{base}{location}")
        } else {
            location.to_string()
        }
    };
    let mut next = authorize_url.to_string();
    for _ in 0..8 {
        if next.starts_with(callback) {
            return next;
        }
        let response = browser.get(&next).send().await.expect("get");
        if response.status().is_redirection() {
            next = absolute(response.headers()["location"].to_str().expect("location"));
            continue;
        }
        let url = response.url().clone();
        let html = response.text().await.expect("html");
        assert_eq!(url.path(), "/login", "{html}");
        let response = browser
            .post(format!("{base}/login"))
            .form(&[
                ("csrf", hidden(&html, "csrf")),
                ("req", hidden(&html, "req")),
                ("username", username.to_string()),
                ("password", password.to_string()),
            ])
            .send()
            .await
            .expect("post");
        assert!(response.status().is_redirection(), "{}", response.status());
        next = absolute(response.headers()["location"].to_str().expect("location"));
    }
    panic!("the flow did not reach the app");
}

/// The `code` parameter of a callback URL.
pub fn code_of(callback_url: &str) -> String {
    let url = url::Url::parse(callback_url).expect("callback");
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .unwrap_or_else(|| panic!("no code in {callback_url}"))
}

/// A token request with client_secret_basic: the status and the JSON answer (`null` when
/// the answer is not JSON).
pub async fn token(base: &str, client: (&str, &str), form: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/token"))
        .basic_auth(client.0, Some(client.1))
        .form(form)
        .send()
        .await
        .expect("token request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}
