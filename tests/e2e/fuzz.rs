//! Fuzzing on the stable toolchain: property tests (proptest) that feed the parsers of untrusted
//! input with mutations of a committed seed corpus (`fuzz/corpus/<target>/`) and with arbitrary
//! bytes, and require that each answers, `Ok` or `Err`, without panicking: authorize and token
//! request parsing, a partner's ID token at signature verification, policy and intel files, the
//! leaked-credential import. A test run tries each target a few hundred times;
//! `scripts/fuzz.sh` runs each for as long as asked (`PROPTEST_CASES`, a time limit).

use proptest::prelude::*;
use std::path::Path;

/// The seed inputs of `target`: every file in its corpus directory (and each line of them, for
/// line-oriented formats).
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut seeds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
            seeds.push(line.to_vec());
        }
        seeds.push(bytes);
    }
    assert!(!seeds.is_empty(), "{target}: empty corpus");
    seeds
}

/// A byte edit: replace, insert or delete at a position (taken modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Delete(usize),
    /// Copy a slice of the input over another place (repeats structure: `&&`, `..`, `==`).
    Splice(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Replace(p, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(p, b)| Edit::Insert(p, b)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), any::<usize>(), 0usize..64).prop_map(|(a, b, n)| Edit::Splice(a, b, n)),
    ]
}

fn mutate(mut input: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let len = input.len();
        match *e {
            Edit::Replace(p, b) if len > 0 => input[p % len] = b,
            Edit::Insert(p, b) => input.insert(p % (len + 1), b),
            Edit::Delete(p) if len > 0 => {
                input.remove(p % len);
            }
            Edit::Splice(from, to, n) if len > 0 => {
                let from = from % len;
                let piece: Vec<u8> = input[from..(from + n).min(len)].to_vec();
                let at = to % (input.len() + 1);
                input.splice(at..at, piece);
            }
            _ => {}
        }
    }
    input
}

/// Inputs for `target`: a seed with up to 16 edits, or arbitrary bytes.
fn inputs(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = corpus(target);
    prop_oneof![
        4 => (0..seeds.len(), prop::collection::vec(edit(), 0..16))
            .prop_map(move |(i, edits)| mutate(seeds[i].clone(), &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

proptest! {
    #[test]
    fn authorize_requests(input in inputs("authorize")) {
        if let Ok(params) = protocol::params::Params::parse(&input) {
            let uris = vec!["http://127.0.0.1:9555/callback".to_owned()];
            let extra = vec!["admin".to_owned()];
            for public in [false, true] {
                let rules = protocol::authorize::ClientRules {
                    client_id: "lab-rp",
                    redirect_uris: &uris,
                    public,
                    allows_authorization_code: true,
                    extra_scopes: &extra,
                };
                let _ = protocol::authorize::client_id(&params);
                let _ = protocol::authorize::validate(&params, &rules);
            }
        }
    }

    #[test]
    fn token_requests(input in inputs("token")) {
        if let Ok(params) = protocol::params::Params::parse(&input) {
            let _ = protocol::token::parse_grant(&params);
            let _ = protocol::client_auth::presented(None, &params);
            let _ = protocol::client_auth::presented(Some("Basic bGFiLXJwOnNlY3JldA=="), &params);
        }
    }

    #[test]
    fn partner_id_tokens(input in inputs("id_token")) {
        let jwk = serde_json::json!({
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
        });
        let token = text(&input);
        for alg in ["ES256", "RS256", "HS256", "none", ""] {
            let _ = protocol::jwt::verify_signature(&token, &jwk, alg);
        }
    }

    #[test]
    fn policy_files(input in inputs("policy")) {
        let _ = policy::parse_policy_json("fuzz.json", &text(&input));
    }

    #[test]
    fn intel_files(input in inputs("intel")) {
        let t = text(&input);
        let _ = risk::intel::lists::parse_cidr_list("fuzz.txt", &t);
        let _ = risk::intel::lists::parse_cidr_list_each("fuzz.txt", &t);
        let _ = risk::intel::GeoTable::from_csv("fuzz.csv", &t);
        let _ = risk::intel::AsnTable::from_csv("fuzz.csv", &t);
        let _ = risk::intel::NamedLocations::from_toml("fuzz.toml", &t);
    }

    #[test]
    fn leaked_credential_files(input in inputs("leaked")) {
        let _ = server::user_risk::parse_leaked("fuzz.txt", &text(&input));
    }
}

#[test]
fn the_mutator_edits_as_told() {
    let out = mutate(
        b"abc".to_vec(),
        &[Edit::Replace(1, b'X'), Edit::Insert(0, b'-')],
    );
    assert_eq!(out, b"-aXc");
    assert_eq!(mutate(b"abc".to_vec(), &[Edit::Delete(5)]), b"ab");
    assert_eq!(mutate(b"ab".to_vec(), &[Edit::Splice(0, 2, 2)]), b"abab");
    assert_eq!(mutate(Vec::new(), &[Edit::Delete(1)]), b"");
}
