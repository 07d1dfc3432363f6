//! The token endpoint's client authentication and form parsing on arbitrary bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_server::fuzzing::token_request(data));
