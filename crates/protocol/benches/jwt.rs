//! The CPU cost of the protocol work on the token and authorization paths, without I/O:
//! ID-token (and access-token) signing and verification with ES256 and RS256 keys through
//! `KeySet`, PKCE S256 verification, and parsing + validating a typical authorize query.
//!
//! `cargo bench -p tenantd-protocol --bench jwt -- --warm-up-time 1 --measurement-time 3`
//!
//! Results and the machine they were taken on: BENCHMARKS.md at the repository root.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tenantd_protocol::authorize::{self, ClientRules};
use tenantd_protocol::jwt::{
    AT_JWT_TYP, AccessTokenClaims, Audience, IdTokenClaims, KeySet, SigningAlg, SigningKey,
};
use tenantd_protocol::params::Params;
use tenantd_protocol::pkce;

const NOW: i64 = 1_795_000_000;
const ISSUER: &str = "https://127.0.0.1:9443";

fn keys() -> KeySet {
    let es = SigningKey::from_pkcs8_pem(
        SigningAlg::ES256,
        include_str!("../testdata/es256.pem"),
        NOW - 3600,
        None,
    )
    .expect("ES256 test key");
    let rs = SigningKey::from_pkcs8_pem(
        SigningAlg::RS256,
        include_str!("../testdata/rs256.pem"),
        NOW - 3600,
        None,
    )
    .expect("RS256 test key");
    KeySet::new(vec![es, rs], 600)
}

/// An ID token as the server issues it for `openid profile email`.
fn id_token_claims() -> IdTokenClaims {
    let mut extra = serde_json::Map::new();
    extra.insert("name".into(), "Alice Smith".into());
    extra.insert("preferred_username".into(), "alice@contoso.test".into());
    extra.insert("updated_at".into(), (NOW - 86_400).into());
    extra.insert("email".into(), "alice@contoso.test".into());
    extra.insert("email_verified".into(), true.into());
    IdTokenClaims {
        iss: ISSUER.into(),
        sub: "0193a5c2-7d41-7b8e-9f3a-2c1d4e5f6a7b".into(),
        aud: Audience::One("lab-rp".into()),
        exp: NOW + 300,
        iat: NOW,
        auth_time: Some(NOW - 120),
        nonce: Some("n-0S6_WzA2Mj".into()),
        sid: Some("6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f".into()),
        amr: Some(vec!["pwd".into()]),
        acr: None,
        azp: Some("lab-rp".into()),
        tid: "contoso".into(),
        extra,
    }
}

fn access_token_claims() -> AccessTokenClaims {
    AccessTokenClaims {
        iss: ISSUER.into(),
        exp: NOW + 300,
        aud: Audience::One(ISSUER.into()),
        sub: "0193a5c2-7d41-7b8e-9f3a-2c1d4e5f6a7b".into(),
        client_id: "lab-rp".into(),
        iat: NOW,
        jti: "0193a5c2-8000-7000-8000-000000000001".into(),
        scope: Some("openid profile email".into()),
        auth_time: Some(NOW - 120),
        acr: None,
        amr: Some(vec!["pwd".into()]),
        sid: Some("6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f".into()),
        tid: "contoso".into(),
        gid: Some("9d8c7b6a-5f4e-4d3c-2b1a-0f9e8d7c6b5a".into()),
    }
}

fn jwt(c: &mut Criterion) {
    let keys = keys();
    let claims = id_token_claims();
    let at = access_token_claims();
    for alg in [SigningAlg::ES256, SigningAlg::RS256] {
        let name = alg.as_str();
        let token = keys.sign(alg, "JWT", &claims).expect("sign");
        // The bench must measure the success path.
        let back: IdTokenClaims = keys.verify(&token, "JWT", NOW).expect("verify");
        assert_eq!(back, claims);

        let mut g = c.benchmark_group(format!("id_token/{name}"));
        g.bench_function("sign", |b| {
            b.iter(|| {
                keys.sign(black_box(alg), "JWT", black_box(&claims))
                    .unwrap()
            })
        });
        g.bench_function("verify", |b| {
            b.iter(|| {
                keys.verify::<IdTokenClaims>(black_box(&token), "JWT", NOW)
                    .unwrap()
            })
        });
        g.finish();

        let at_token = keys.sign(alg, AT_JWT_TYP, &at).expect("sign at");
        let mut g = c.benchmark_group(format!("access_token/{name}"));
        g.bench_function("sign", |b| {
            b.iter(|| {
                keys.sign(black_box(alg), AT_JWT_TYP, black_box(&at))
                    .unwrap()
            })
        });
        g.bench_function("verify", |b| {
            b.iter(|| {
                keys.verify::<AccessTokenClaims>(black_box(&at_token), AT_JWT_TYP, NOW)
                    .unwrap()
            })
        });
        g.finish();
    }
    // What the server does per refresh or code exchange (access token + ID token, ES256).
    c.bench_function("token_response/ES256 (at+jwt and id_token)", |b| {
        b.iter(|| {
            let a = keys
                .sign(SigningAlg::ES256, AT_JWT_TYP, black_box(&at))
                .unwrap();
            let i = keys
                .sign(SigningAlg::ES256, "JWT", black_box(&claims))
                .unwrap();
            (a, i)
        })
    });
    c.bench_function("jwks/document (ES256 + RS256)", |b| {
        b.iter(|| serde_json::to_vec(&keys.jwks(black_box(NOW))).unwrap())
    });
}

/// The DER inside a PEM file.
fn pem_der(pem: &str) -> Vec<u8> {
    use base64::Engine;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("PEM body")
}

/// What the signatures cost in aws-lc-rs itself with the key parsed once, next to what parsing
/// the key costs. jsonwebtoken 11 builds its signer (`EcdsaKeyPair::from_pkcs8`,
/// `RsaKeyPair::from_der`) on every `encode`, so `KeySet::sign` pays for both.
fn baseline(c: &mut Criterion) {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
    };
    let rng = SystemRandom::new();
    let es_der = pem_der(include_str!("../testdata/es256.pem"));
    let rs_der = pem_der(include_str!("../testdata/rs256.pem"));
    let es = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &es_der).expect("ES256");
    let rs = RsaKeyPair::from_pkcs8(&rs_der).expect("RS256");
    // A realistic signing input: header.payload of an ID token.
    let msg = vec![b'a'; 620];
    let mut g = c.benchmark_group("aws-lc-rs baseline");
    g.bench_function("ES256 sign (key parsed once)", |b| {
        b.iter(|| es.sign(&rng, black_box(&msg)).unwrap())
    });
    g.bench_function("ES256 parse PKCS#8 key", |b| {
        b.iter(|| {
            EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, black_box(&es_der)).unwrap()
        })
    });
    let mut sig = vec![0; rs.public_modulus_len()];
    g.bench_function("RS256 sign (key parsed once)", |b| {
        b.iter(|| {
            rs.sign(&RSA_PKCS1_SHA256, &rng, black_box(&msg), &mut sig)
                .unwrap()
        })
    });
    g.bench_function("RS256 parse PKCS#8 key", |b| {
        b.iter(|| RsaKeyPair::from_pkcs8(black_box(&rs_der)).unwrap())
    });
    g.finish();
}

// RFC 7636 Appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

/// What a relying party typically sends (the load generator's query, with a longer state).
const AUTHORIZE_QUERY: &str = "response_type=code&client_id=lab-rp\
    &redirect_uri=http%3A%2F%2F127.0.0.1%3A9555%2Fcallback\
    &scope=openid+profile+email+offline_access\
    &state=af0ifjsldkj-Qx3M2vZ8yJ0cR1tW5uE7\
    &nonce=n-0S6_WzA2Mj-8fK3pLq9Xc\
    &code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM\
    &code_challenge_method=S256\
    &prompt=login&max_age=3600&login_hint=alice%40contoso.test";

fn request_checks(c: &mut Criterion) {
    pkce::verify(VERIFIER, CHALLENGE).expect("RFC 7636 example");
    c.bench_function("pkce/verify S256", |b| {
        b.iter(|| pkce::verify(black_box(VERIFIER), black_box(CHALLENGE)).unwrap())
    });

    let redirect_uris = vec!["http://127.0.0.1:9555/callback".to_owned()];
    let extra_scopes = vec!["tenant.read".to_owned()];
    let rules = ClientRules {
        client_id: "lab-rp",
        redirect_uris: &redirect_uris,
        public: false,
        allows_authorization_code: true,
        extra_scopes: &extra_scopes,
    };
    let params = Params::parse(AUTHORIZE_QUERY).expect("parse");
    let request = authorize::validate(&params, &rules)
        .map_err(|_| "invalid")
        .expect("valid request");
    assert_eq!(request.code_challenge.as_deref(), Some(CHALLENGE));

    c.bench_function("params/parse authorize query", |b| {
        b.iter(|| Params::parse(black_box(AUTHORIZE_QUERY)).unwrap())
    });
    c.bench_function("authorize/parse + validate", |b| {
        b.iter(|| {
            let p = Params::parse(black_box(AUTHORIZE_QUERY)).unwrap();
            authorize::validate(&p, &rules).map_err(|_| ()).unwrap()
        })
    });
}

criterion_group!(benches, jwt, baseline, request_checks);
criterion_main!(benches);
