//! sigil-verify's token validation on arbitrary input: never a panic, never an acceptance.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sigil_verify::fuzzing::verify_token(data));
