//! Client ID metadata documents (draft-ietf-oauth-client-id-metadata-document) over real
//! HTTP: the outbound fetcher's limits and cache (`cimd/fetcher.rs`), and the whole flow
//! against the real `sigil` binary with documents served from 127.0.0.1.

#[path = "cimd/doc_server.rs"]
mod doc_server;
#[path = "cimd/fetcher.rs"]
mod fetcher;
