//! sigil-verify's JWKS parsing on arbitrary documents: never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_verify::fuzzing::parse_key_set(data));
