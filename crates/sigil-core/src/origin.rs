//! Browser origins (RFC 6454) that a client registers for CORS: `scheme://host[:port]`,
//! nothing more. The text form is what browsers send in the `Origin` header (lowercase
//! scheme and host, no default port, no trailing slash), so a request's origin is allowed
//! by plain string equality.

use std::fmt;

/// A validated origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    /// Parses an origin to register: `https://host[:port]`, or `http://` on a loopback host
    /// (`127.0.0.1`, `[::1]`, `localhost`) for development. A path (even `/`), query,
    /// fragment or user information is refused, as is the wildcard `*` and the opaque `null`.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let text = text.trim();
        // `*` anywhere: matching is exact, so `https://*.example.com` would match nothing
        // a browser sends while reading as a wildcard to whoever registered it.
        if text.contains('*') || text.eq_ignore_ascii_case("null") {
            return Err("must be one origin, not a wildcard or null");
        }
        if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("must not contain spaces or control characters");
        }
        let url = url::Url::parse(text).map_err(|_| "must be scheme://host[:port]")?;
        let is_bare = url.path() == "/" && !text.ends_with('/') && !text.contains("/?");
        if !is_bare || url.query().is_some() || url.fragment().is_some() {
            return Err("must be scheme://host[:port], without a path, query or fragment");
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry user information");
        }
        let host = url.host_str().ok_or("must name a host")?;
        match url.scheme() {
            "https" => {}
            "http" if matches!(host, "127.0.0.1" | "[::1]" | "localhost") => {}
            "http" => return Err("must use https (http only on a loopback host)"),
            _ => return Err("must be an http or https origin"),
        }
        Ok(Self(url.origin().ascii_serialization()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Origin;

    #[test]
    fn origins_are_normalised_as_browsers_send_them() {
        for (given, written) in [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.COM", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            (
                "https://app.example.com:8443",
                "https://app.example.com:8443",
            ),
            ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
            ("http://localhost:5173", "http://localhost:5173"),
            ("http://[::1]:3000", "http://[::1]:3000"),
        ] {
            assert_eq!(Origin::parse(given).expect(given).as_str(), written);
        }
    }

    #[test]
    fn anything_but_a_bare_origin_is_refused() {
        for bad in [
            "*",
            "https://*.example.com",
            "http://*:5173",
            "null",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://app.example.com?x=1",
            "https://app.example.com#f",
            "https://user@app.example.com",
            "http://app.example.com",
            "ftp://app.example.com",
            "app.example.com",
            "https://app.example .com",
            "",
        ] {
            assert!(Origin::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
