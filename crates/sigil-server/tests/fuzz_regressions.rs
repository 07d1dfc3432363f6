//! Replays the token-endpoint fuzz target's seed corpus and every saved crash
//! (fuzz/corpus/token_form/ and fuzz/regressions/token_form/) through the entry point the
//! fuzzer drives, so a fixed crash stays fixed. `fuzz/run.sh` does the fuzzing itself.

use std::path::PathBuf;

#[test]
fn token_form_inputs_are_handled_without_panicking() {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut replayed = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join("token_form")) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() {
                println!("{}", path.display());
                sigil_server::fuzzing::token_request(&std::fs::read(&path).expect("read"));
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 5, "the seed corpus is there");
}
