//! Replays the fuzz targets' seed corpus and every saved crash (fuzz/corpus/<target>/ and
//! fuzz/regressions/<target>/) through the same entry points the fuzzer drives, so a fixed
//! crash stays fixed. `fuzz/run.sh` does the fuzzing itself.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut found = Vec::new();
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                let data = std::fs::read(&path).expect("read input");
                found.push((path, data));
            }
        }
    }
    found
}

#[test]
fn verify_token_inputs_are_refused_without_panicking() {
    let inputs = inputs("verify_token");
    assert!(inputs.len() >= 4, "the seed corpus is there");
    for (path, data) in inputs {
        println!("{}", path.display());
        sigil_verify::fuzzing::verify_token(&data);
    }
}

#[test]
fn jwks_document_inputs_parse_without_panicking() {
    let inputs = inputs("jwks_document");
    assert!(inputs.len() >= 2, "the seed corpus is there");
    for (path, data) in inputs {
        println!("{}", path.display());
        sigil_verify::fuzzing::parse_key_set(&data);
    }
}

#[test]
fn the_structured_mode_encodes_each_part() {
    let token = sigil_verify::fuzzing::token_from_bytes(b"\x01{}\xff[]\xffsig");
    assert_eq!(token, "e30.W10.c2ln");
    assert_eq!(sigil_verify::fuzzing::token_from_bytes(b"0a.b.c"), "a.b.c");
}
