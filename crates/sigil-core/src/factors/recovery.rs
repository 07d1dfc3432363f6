//! Recovery codes: ten single-use codes, each two groups of five lowercase letters or
//! digits joined by a dash (`k3x9a-p2m7q`, about 51 bits). Shown once; only their keyed
//! hashes ([`super::seal::FactorKey::recovery_hash`]) are stored.

use rand::Rng;

/// Codes in a set.
pub const CODES_PER_SET: usize = 10;
const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const GROUP: usize = 5;

/// A new set of codes.
pub fn generate_set() -> Vec<String> {
    let mut rng = rand::rngs::OsRng;
    (0..CODES_PER_SET)
        .map(|_| {
            let mut group = || -> String {
                (0..GROUP)
                    .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
                    .collect()
            };
            let first = group();
            format!("{first}-{}", group())
        })
        .collect()
}

/// A typed code in its canonical form: spaces and dashes dropped, lowercased, the dash put
/// back; `None` when it cannot be a recovery code (so a TOTP code is never taken for one).
pub fn normalize(typed: &str) -> Option<String> {
    let compact: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect();
    if compact.len() != 2 * GROUP || !compact.bytes().all(|b| ALPHABET.contains(&b)) {
        return None;
    }
    Some(format!("{}-{}", &compact[..GROUP], &compact[GROUP..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_have_ten_distinct_codes_of_the_fixed_shape() {
        let set = generate_set();
        assert_eq!(set.len(), CODES_PER_SET);
        for code in &set {
            assert_eq!(code.len(), 11, "{code}");
            assert_eq!(&code[5..6], "-");
            assert_eq!(normalize(code).as_deref(), Some(code.as_str()));
        }
        let mut unique = set.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), CODES_PER_SET);
        assert_ne!(generate_set(), set);
    }

    #[test]
    fn typing_variations_normalize_and_other_input_is_refused() {
        assert_eq!(normalize(" K3X9A p2m7q ").as_deref(), Some("k3x9a-p2m7q"));
        assert_eq!(normalize("k3x9ap2m7q").as_deref(), Some("k3x9a-p2m7q"));
        assert_eq!(normalize("123456"), None);
        assert_eq!(normalize("k3x9a-p2m7"), None);
        assert_eq!(normalize("k3x9a-p2m7é"), None);
    }
}
