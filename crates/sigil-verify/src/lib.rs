//! `sigil-verify`: validates Sigil access tokens offline against the issuer's JWKS, for
//! resource servers that must not call Sigil on every request.
//!
//! This crate is a placeholder in the workspace layout; the verifier (JWKS discovery and
//! caching, RFC 9068 validation, axum extractor and tower layer) is built under its own
//! issue. It deliberately does not depend on `sigil-core`: a resource server pulls in
//! nothing of the authorization server.
