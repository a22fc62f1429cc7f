//! Tests for `auth` (JWT and API key authorizers). The key pairs below were generated once
//! with OpenSSL 3 (`openssl genrsa -traditional 2048`, `openssl rsa -pubout`,
//! `openssl ecparam -genkey -name prime256v1 | openssl pkcs8 -topk8 -nocrypt`); they protect
//! nothing.

use super::*;
use crate::ratelimit::RateLimit;
use http::HeaderValue;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{EncodingKey, Header};
use serde_json::json;
use std::sync::OnceLock;

const RSA_1_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEpAIBAAKCAQEAljnUAw+uOdyc6Gv7+C9jAUIy6ixGeohVkozYqfvoD5sHkIa5
+wp6FqUo8C4Oz/bdMBVK9CZvvqzVK2HmTxrO7232JUwO/kcRQz29QcYfQbCmmmpk
vKDvQ3TYVMR0S7mvzZYdA3/3vIIapC47+RE/BrE2eY9dRcKCjWQleMaoB2CtRgO1
08ZGmM4wzvjlxJDonrYYQPxCe0mqJhADe+WgmulVfOR17bBtmV7fT/Jy19D8mcjB
TII73/3p0JkMvzywsDwe4qvQ8RHrAWYUtTmU5l2M3Rc0gC+N6m0KN7gdYMWsg7FU
M9jb/GV/nS2jg4UvNxikZARSorhF8uqOCxYM5wIDAQABAoIBAAwLygzkH9U4SVq3
zKYg7UryCybM8xUrQ9Vdtu1L1la+AzQbIY8C+Y7sTSU+mZB32/0EOr+WKhq7ktez
i3tnYRWWQd50GWBZbtsZ+HLtl0m2B73/xGEodIHPvPMbJ7TUyHHvVMHtln4cCVUw
oegocl8v1vhAvzrIofMC3KBb1FMhqsIwG/1+eqw8gef0/k3+hBeDDW6xOup8GByX
t6kBD7fMjKtOt73X1xpqH0vIT//1ATZjn0hMo0c45jT6nlX2ni/cXosbvaOSUhpo
YQNAQECAxwPqfbhFJolOPeuWxOW7qzi02pwor6nRsBDEEs0ORcJTl2SBqk6cMrL9
Ayw+2G0CgYEA0hTClpvGXvZvkGjbQvaTnPjeO3dYUENnG4THozsOQCw34+0n8LaC
3tpHyXlWp1btH4Gc2Uli627xFIAZEeP3kNPlnZQY4cnsOp0Ub5jhXkqK8SP/EeqR
HGpt6g/arE2csfsvT+etAkOsQUx5fNbhjS62f3cudfPTixA3nlTfZoMCgYEAtw/T
qT6mjBLwVt3srpHWIBJjGx0FzqeeOypv5SJaEMBTIHWuEPDCCEJWxtQzN3cAPUkK
J8hYPacnkpL6h2aDVT5+aiT/vbN+foONtpF/N4FxUUdWt8Ib9MlIA9pgT/tRyXOt
0dAhkHKItrS5E3d23Z8QHZCHGcPjkfcAnG5JUs0CgYBHaA8MKj6vIIyjRUDh7fYW
sPC4vcQi5AYz8Fn7PaOGZIFK091zkFXDceZcsQWnM4C96MxrfupEpB0FntTmo9oO
PDgb667ZcEz/T00W8ZwI9MVtWZLlgBl60yIxINpvHqJYTMy0GEdSMbZnK5tPt6pK
1snpYZVFOm95ITYGd0rICQKBgQCEnkyikaaqV5YR+Fhc534OYgO2QsJQQhJZnpbN
kqNY+1u9akOeNiz7OsQO6u/nwKhFvcJDq9pxX8VFZIFm0hdXDB0c3I0BayW6lad2
mdVl6rqjPWFPYqpKHf+z+uJHTzSjEtDb7UJDmRX99tMVjThpubA9GtUlD0qwFhc1
PJiWCQKBgQDF2BfOckEeQ6FTf/BtNMzKEbQ+xaEFjuCq6tS24l3ufevz98svTVG6
5s+VZv8oMiJT6wbxGscopjLJjAPFGv55Ba11XizMEBXr6ctmemmfX8pY91jpBedI
s/8eeq6VuP+8PNawgf30CQLQEtV0M4OQBeZWHakHjGgYs+Bgb4aNQQ==
-----END RSA PRIVATE KEY-----
";

const RSA_2_PEM: &str = "\
-----BEGIN RSA PRIVATE KEY-----
MIIEogIBAAKCAQEA0kH5/cJ+ywXY6peMBs87xy7s8Rnms1cWfyS2pTmsnkYSJeXa
mn1QxZFxs+VqKXHinih8YBuZlGMeMuLRDV/CZsarPrGtgywgXXBoBOtZqY21zdik
yjcUuqs3gjqJr5IkAO5JIJtxwcVztS/64SOLv4PBxsD5+6IMMgMymHh8E1xVb1pp
yoa8lFCC+QEYo706mPqBMnZt0ITgnEy37nLubZCsx702vSCclpdugwVFG9PDGc/v
ZqI4MVPH9CTAExpQbPippyFMxvCpRogqMEl0Vxp/UGUsBHbFn6pKTwNg1qSCURjM
h+U3H1jRo+hVRuRxZF6f5en3MMBPc1C11unzpwIDAQABAoIBAAnsTTUZucwxIXSo
5FXp7+NNpqcWVtn98TTc8bXIjAoIOpEJURDbezVn0Nrxp9n+4vgd5wjOJKhpKSKz
q7Qa4dzh4XEbB5paOcjPJkmdJeUnp/3oDJbylIrey8bcpmTf280jcdYVIABKJlTV
x9xaRh0qxblwoButITA3EGs7vHdZXVFuoA1TPPSrmLDF8irBudZHYLVdS3VhF1/z
nJEhm1XonwqITpOPhSp2yBth6qYLA8Yx1S4R3byHgQ0hHHCm/sO/1YmdUT6NelvF
CpTdxloyHBF0eErhtR1Ft3e0V36Qmp8KPtFbJu85WYTgNtTvBB3XwPk2A9Wd9t1R
35UC8ykCgYEA8A9NYfRaY89RYvF5ewbiFQIhFVYmszEzdBOHjzqSDNmxOlhi8nrH
+DfieQT4ZzoSD6cWh0EHv+HYVxMfV7pxcIWhZfosHHA0cTUs2leIE9cetI6mSD9y
On91KPB4FPzX7wCaLombChOi5y4kKHfJZz5+5OL7sCAXdJxORBaWEbUCgYEA4DgU
MPnnoF77NIZxRfyLT02/bvG/etXmLXY7ObD3moU5/7TZORi0yPRa3FFFZPY6ZCO2
ui12ZjwDDIMmOBzIX+Io5Aq+0n294biDlzMw2MN7z8JHzuIRtC4gYJGgokSPpKRu
knBYja/l3Aowyk2rdv+6lUW5ojj76eFLXuPKeWsCgYBQ3CaplwAXXI7CcCoGKaRf
hS8Vm8Y/V5RIRgfEU+s8Dtumln0FxhuzXUeYkfcF9kZ9JT/uYRY2KOGROuy0xSVO
zIQ38FOJZLYVZ97q0M8SN8Ss9tvFvDFCyQnyt0ULdLtbUu2cPVeOxlx52E3vn6Gk
eCWP/XDfu3+LFNc8EguMfQKBgE3YCmKKkLkj4LD2sCLtL+yDgJ/i/GiIFJbaAmvg
Hcae1GkLf5MMGc/eziDJcn8/4TvdDlaK7B1IXoKckctPat2nJi0t8dwgXakdJ0p6
Mk4/aB/UQpv37s+QaBs+0/ciOICfuefLa2Mdm38OZqwF1S7GUB/9ChrhD8y+NC2o
hiYrAoGACpVei7Z8wDdc+/u3CvD7bLqAb5yZIC6e2b+0Q1zBM2dhlJs3QIVLrnIi
kgD5502AS6Vziw9paroR3WPR74mF21Xq2vyLF7VxNhaN7C7dNYtk06flkEp+/hB6
eVYO9tYwCfDARhHZIC+cKyqQrfc4DMg6jkBe6Zc0HWSoHXnyBgM=
-----END RSA PRIVATE KEY-----
";

const RSA_1_PUBLIC_PEM: &str = "\
-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAljnUAw+uOdyc6Gv7+C9j
AUIy6ixGeohVkozYqfvoD5sHkIa5+wp6FqUo8C4Oz/bdMBVK9CZvvqzVK2HmTxrO
7232JUwO/kcRQz29QcYfQbCmmmpkvKDvQ3TYVMR0S7mvzZYdA3/3vIIapC47+RE/
BrE2eY9dRcKCjWQleMaoB2CtRgO108ZGmM4wzvjlxJDonrYYQPxCe0mqJhADe+Wg
mulVfOR17bBtmV7fT/Jy19D8mcjBTII73/3p0JkMvzywsDwe4qvQ8RHrAWYUtTmU
5l2M3Rc0gC+N6m0KN7gdYMWsg7FUM9jb/GV/nS2jg4UvNxikZARSorhF8uqOCxYM
5wIDAQAB
-----END PUBLIC KEY-----
";

const EC_1_PEM: &str = "\
-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbdchiBNyNHk8er5Z
dcAq81hXuVF10VjjrP/0IpFb4uChRANCAASlZGxp++r1tsT0KwVgT8Chb3LquFkP
IViJaqf3pw1AuMCtpy/3JkWI48PaTCHK8PCv+A0CJJjf+Nd4fazjZFj8
-----END PRIVATE KEY-----
";

const ISS: &str = "https://auth.example.com/";
const AUD: &str = "gust-api";
const NOW: u64 = 1_800_000_000;
const HMAC_SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test-only";

struct Keys {
    rsa1: EncodingKey,
    rsa2: EncodingKey,
    ec1: EncodingKey,
}

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| Keys {
        rsa1: EncodingKey::from_rsa_pem(RSA_1_PEM.as_bytes()).unwrap(),
        rsa2: EncodingKey::from_rsa_pem(RSA_2_PEM.as_bytes()).unwrap(),
        ec1: EncodingKey::from_ec_pem(EC_1_PEM.as_bytes()).unwrap(),
    })
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    jwk
}

/// The issuer's published JWKS: rsa1 as `rsa-1`, ec1 as `ec-1`.
fn jwks() -> String {
    let set = JwkSet {
        keys: vec![
            jwk(&keys().rsa1, Algorithm::RS256, "rsa-1"),
            jwk(&keys().ec1, Algorithm::ES256, "ec-1"),
        ],
    };
    serde_json::to_string(&set).unwrap()
}

fn config(keys: JwtKeys, allowed: &[JwtAlgorithm]) -> JwtConfig {
    JwtConfig {
        issuer: ISS.to_string(),
        audiences: vec!["other-api".to_string(), AUD.to_string()],
        keys,
        allowed_algorithms: allowed.to_vec(),
        leeway: Duration::from_secs(30),
    }
}

fn jwks_authorizer() -> JwtAuthorizer {
    JwtAuthorizer::new(config(
        JwtKeys::Jwks(jwks()),
        &[JwtAlgorithm::RS256, JwtAlgorithm::ES256],
    ))
    .unwrap()
}

fn hmac_authorizer() -> JwtAuthorizer {
    JwtAuthorizer::new(config(
        JwtKeys::HmacSecret(HMAC_SECRET.to_vec()),
        &[JwtAlgorithm::HS256],
    ))
    .unwrap()
}

fn claims() -> Value {
    json!({
        "iss": ISS,
        "aud": AUD,
        "sub": "user-42",
        "iat": NOW - 10,
        "exp": NOW + 600,
        "scope": "orders:read orders:write",
        "groups": ["admin", "users"],
        "email_verified": true,
    })
}

fn with(changes: Value) -> Value {
    let mut c = claims();
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn rs256(claims: &Value) -> String {
    sign(Algorithm::RS256, Some("rsa-1"), &keys().rsa1, claims)
}

fn hs256(claims: &Value) -> String {
    sign(Algorithm::HS256, None, &EncodingKey::from_secret(HMAC_SECRET), claims)
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    h
}

fn reason(r: Result<JwtIdentity, AuthError>) -> AuthFailure {
    match r {
        Err(AuthError::Unauthorized { reason }) => reason,
        other => panic!("expected 401, got {other:?}"),
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(v.to_string())
}

#[test]
fn valid_tokens_of_each_algorithm() {
    let jwks = jwks_authorizer();
    let rs = jwks.authorize_at(&bearer(&rs256(&claims())), NOW).unwrap();
    assert_eq!((rs.algorithm, rs.kid.as_deref()), (JwtAlgorithm::RS256, Some("rsa-1")));
    assert_eq!(rs.subject(), Some("user-42"));

    let es_token = sign(Algorithm::ES256, Some("ec-1"), &keys().ec1, &claims());
    let es = jwks.authorize_at(&bearer(&es_token), NOW).unwrap();
    assert_eq!(es.algorithm, JwtAlgorithm::ES256);

    let hs = hmac_authorizer().authorize_at(&bearer(&hs256(&claims())), NOW).unwrap();
    assert_eq!(hs.algorithm, JwtAlgorithm::HS256);
    assert_eq!(hs.claims, rs.claims);

    // A bare token (no "Bearer ") is accepted too, as API Gateway does; the scheme is
    // case-insensitive.
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&hs256(&claims())).unwrap(),
    );
    assert!(hmac_authorizer().authorize_at(&h, NOW).is_ok());
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("bearer  {}", hs256(&claims()))).unwrap(),
    );
    assert!(hmac_authorizer().authorize_at(&h, NOW).is_ok());
}

#[test]
fn request_context_is_shaped_like_api_gateway() {
    let id = jwks_authorizer().authorize_at(&bearer(&rs256(&claims())), NOW).unwrap();
    assert_eq!(
        id.scopes,
        Some(vec!["orders:read".to_string(), "orders:write".to_string()])
    );
    let ctx = id.authorizer_context();
    assert_eq!(
        ctx,
        json!({"jwt": {
            "claims": {
                "iss": ISS, "aud": AUD, "sub": "user-42",
                "iat": (NOW - 10).to_string(), "exp": (NOW + 600).to_string(),
                "scope": "orders:read orders:write",
                "groups": "[admin users]",
                "email_verified": "true",
            },
            "scopes": ["orders:read", "orders:write"],
        }})
    );
    // Without scope claims, scopes is null; `scp` arrays are read too.
    let none = hmac_authorizer()
        .authorize_at(&bearer(&hs256(&with(json!({"scope": null})))), NOW)
        .unwrap();
    assert_eq!(none.authorizer_context()["jwt"]["scopes"], Value::Null);
    let scp = hmac_authorizer()
        .authorize_at(&bearer(&hs256(&with(json!({"scope": null, "scp": ["a", "b"]})))), NOW)
        .unwrap();
    assert_eq!(scp.scopes, Some(vec!["a".to_string(), "b".to_string()]));
}

#[test]
fn scopes_gate_routes_with_403() {
    let id = hmac_authorizer().authorize_at(&bearer(&hs256(&claims())), NOW).unwrap();
    assert!(id.require_any_scope::<&str>(&[]).is_ok());
    assert!(id.require_any_scope(&["admin", "orders:write"]).is_ok());
    let err = id.require_any_scope(&["admin"]).unwrap_err();
    assert_eq!((err.code().status().as_u16(), err.code().as_str()), (403, "Forbidden"));
    assert_eq!(err.to_string(), "Forbidden");
    assert_eq!(err.reason(), AuthFailure::MissingScope);
}

#[test]
fn expired_and_not_yet_valid() {
    let a = hmac_authorizer();
    let check = |c: Value| a.authorize_at(&bearer(&hs256(&c)), NOW);
    // Leeway is 30 s.
    assert!(check(with(json!({"exp": NOW - 29}))).is_ok());
    assert_eq!(
        reason(check(with(json!({"exp": NOW - 30})))),
        AuthFailure::Expired {
            exp: NOW - 30,
            now: NOW
        }
    );
    assert_eq!(
        reason(check(with(json!({"exp": null})))),
        AuthFailure::MissingClaim("exp")
    );
    assert!(matches!(
        reason(check(with(json!({"exp": "tomorrow"})))),
        AuthFailure::Malformed(_)
    ));
    assert!(check(with(json!({"nbf": NOW + 30}))).is_ok());
    assert_eq!(
        reason(check(with(json!({"nbf": NOW + 31})))),
        AuthFailure::NotYetValid {
            nbf: NOW + 31,
            now: NOW
        }
    );
    // The same token is fine once its time has come.
    let early = hs256(&with(json!({"nbf": NOW + 100})));
    assert!(a.authorize_at(&bearer(&early), NOW + 100).is_ok());
}

#[test]
fn issuer_and_audience() {
    let a = hmac_authorizer();
    let check = |c: Value| a.authorize_at(&bearer(&hs256(&c)), NOW);
    assert_eq!(
        reason(check(with(json!({"iss": "https://evil.example.com/"})))),
        AuthFailure::WrongIssuer
    );
    assert_eq!(
        reason(check(with(json!({"iss": null})))),
        AuthFailure::MissingClaim("iss")
    );
    assert_eq!(
        reason(check(with(json!({"aud": "someone-else"})))),
        AuthFailure::WrongAudience
    );
    assert_eq!(
        reason(check(with(json!({"aud": ["x", "y"]})))),
        AuthFailure::WrongAudience
    );
    assert!(check(with(json!({"aud": ["x", AUD]}))).is_ok());
    assert!(check(with(json!({"aud": "other-api"}))).is_ok());
    // No aud: client_id is checked instead (Cognito access tokens).
    assert!(check(with(json!({"aud": null, "client_id": AUD}))).is_ok());
    assert_eq!(
        reason(check(with(json!({"aud": null, "client_id": "x"})))),
        AuthFailure::WrongAudience
    );
    assert_eq!(
        reason(check(with(json!({"aud": null})))),
        AuthFailure::MissingClaim("aud")
    );
}

#[test]
fn wrong_keys() {
    let a = jwks_authorizer();
    let check = |t: String| a.authorize_at(&bearer(&t), NOW);
    // Unknown kid.
    let t = sign(Algorithm::RS256, Some("rsa-9"), &keys().rsa1, &claims());
    assert_eq!(
        reason(check(t)),
        AuthFailure::UnknownKey {
            kid: Some("rsa-9".into())
        }
    );
    // Right kid, different key.
    let t = sign(Algorithm::RS256, Some("rsa-1"), &keys().rsa2, &claims());
    assert_eq!(reason(check(t)), AuthFailure::BadSignature);
    // No kid while the set has several keys.
    let t = sign(Algorithm::RS256, None, &keys().rsa1, &claims());
    assert_eq!(reason(check(t)), AuthFailure::UnknownKey { kid: None });
    // An EC token naming the RSA key.
    let t = sign(Algorithm::ES256, Some("rsa-1"), &keys().ec1, &claims());
    assert_eq!(reason(check(t)), AuthFailure::DisallowedAlgorithm("ES256".into()));
    // Another shared secret.
    let t = sign(
        Algorithm::HS256,
        None,
        &EncodingKey::from_secret(b"another-secret-another-secret-xx"),
        &claims(),
    );
    assert_eq!(
        reason(hmac_authorizer().authorize_at(&bearer(&t), NOW)),
        AuthFailure::BadSignature
    );
    // Tampered claims under a valid signature.
    let good = rs256(&claims());
    let mut parts: Vec<&str> = good.split('.').collect();
    let forged = b64(&with(json!({"sub": "admin"})));
    parts[1] = &forged;
    assert_eq!(reason(check(parts.join("."))), AuthFailure::BadSignature);
}

#[test]
fn alg_none_is_refused() {
    for alg in ["none", "None", "NONE"] {
        let header = b64(&json!({"alg": alg, "typ": "JWT", "kid": "rsa-1"}));
        let token = format!("{header}.{}.", b64(&claims()));
        for a in [jwks_authorizer(), hmac_authorizer()] {
            assert_eq!(reason(a.authorize_at(&bearer(&token), NOW)), AuthFailure::AlgorithmNone);
        }
    }
    // Missing alg, unknown alg, crit.
    let a = hmac_authorizer();
    for header in [
        json!({"typ": "JWT"}),
        json!({"alg": "HS1"}),
        json!({"alg": "HS256", "crit": ["exp"]}),
    ] {
        let token = format!("{}.{}.c2ln", b64(&header), b64(&claims()));
        assert!(a.authorize_at(&bearer(&token), NOW).is_err());
    }
}

#[test]
fn algorithm_confusion_is_refused() {
    // HS256 signed with the RSA public key as the HMAC secret, naming the RSA key. Refused
    // even when the authorizer also allows HS256: the RSA key verifies only RSA algorithms.
    let forged = sign(
        Algorithm::HS256,
        Some("rsa-1"),
        &EncodingKey::from_secret(RSA_1_PUBLIC_PEM.as_bytes()),
        &claims(),
    );
    for allowed in [&[JwtAlgorithm::RS256][..], &[JwtAlgorithm::RS256, JwtAlgorithm::HS256]] {
        let a = JwtAuthorizer::new(config(JwtKeys::Jwks(jwks()), allowed)).unwrap();
        assert_eq!(
            reason(a.authorize_at(&bearer(&forged), NOW)),
            AuthFailure::DisallowedAlgorithm("HS256".into())
        );
    }
    // The other way: an RS256 token at an HMAC authorizer.
    assert_eq!(
        reason(hmac_authorizer().authorize_at(&bearer(&rs256(&claims())), NOW)),
        AuthFailure::DisallowedAlgorithm("RS256".into())
    );
    // A JWK's declared alg pins it: PS256 with a key published as RS256 is refused, and
    // accepted when the JWK does not declare one.
    let ps = sign(Algorithm::PS256, Some("rsa-1"), &keys().rsa1, &claims());
    let both = [JwtAlgorithm::RS256, JwtAlgorithm::PS256];
    let pinned = JwtAuthorizer::new(config(JwtKeys::Jwks(jwks()), &both)).unwrap();
    assert_eq!(
        reason(pinned.authorize_at(&bearer(&ps), NOW)),
        AuthFailure::DisallowedAlgorithm("PS256".into())
    );
    let mut open = jwk(&keys().rsa1, Algorithm::RS256, "rsa-1");
    open.common.key_algorithm = None;
    let open_set = serde_json::to_string(&JwkSet { keys: vec![open] }).unwrap();
    let unpinned = JwtAuthorizer::new(config(JwtKeys::Jwks(open_set), &both)).unwrap();
    assert!(unpinned.authorize_at(&bearer(&ps), NOW).is_ok());
}

#[test]
fn public_message_is_the_same_for_every_credential_failure() {
    let jwks = jwks_authorizer();
    let hmac = hmac_authorizer();
    let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims()));
    let failures = vec![
        hmac.authorize_at(&HeaderMap::new(), NOW),
        hmac.authorize_at(&bearer("not-a-jwt"), NOW),
        hmac.authorize_at(&bearer(&hs256(&with(json!({"exp": NOW - 100})))), NOW),
        hmac.authorize_at(&bearer(&hs256(&with(json!({"nbf": NOW + 100})))), NOW),
        hmac.authorize_at(&bearer(&hs256(&with(json!({"aud": "x"})))), NOW),
        hmac.authorize_at(&bearer(&hs256(&with(json!({"iss": "x"})))), NOW),
        jwks.authorize_at(&bearer(&none), NOW),
        jwks.authorize_at(
            &bearer(&sign(Algorithm::RS256, Some("x"), &keys().rsa1, &claims())),
            NOW,
        ),
        jwks.authorize_at(
            &bearer(&sign(Algorithm::RS256, Some("rsa-1"), &keys().rsa2, &claims())),
            NOW,
        ),
    ];
    let mut reasons = HashSet::new();
    for f in failures {
        let err = f.unwrap_err();
        assert_eq!(err.to_string(), "Unauthorized");
        assert_eq!(
            (err.code().status().as_u16(), err.code().as_str()),
            (401, "Unauthorized")
        );
        let api = err.to_api_error();
        assert_eq!(
            (api.message.as_str(), api.code.as_str()),
            ("Unauthorized", "Unauthorized")
        );
        assert_eq!(api.retry_after_secs, None);
        reasons.insert(err.reason().as_str());
    }
    // ...while the log detail tells them apart.
    assert_eq!(reasons.len(), 9, "{reasons:?}");
}

#[test]
fn malformed_headers() {
    let a = hmac_authorizer();
    assert_eq!(
        reason(a.authorize_at(&HeaderMap::new(), NOW)),
        AuthFailure::MissingCredentials
    );
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_static("Basic dXNlcjpwdw=="),
    );
    assert!(matches!(reason(a.authorize_at(&h, NOW)), AuthFailure::Malformed(_)));
    let token = hs256(&claims());
    let mut two = bearer(&token);
    two.append(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    assert!(matches!(reason(a.authorize_at(&two, NOW)), AuthFailure::Malformed(_)));
    for bad in ["a.b.c", "a.b", "....", "e30.e30.e30.e30"] {
        assert!(
            matches!(reason(a.authorize_at(&bearer(bad), NOW)), AuthFailure::Malformed(_)),
            "{bad}"
        );
    }
    let huge = "a".repeat(MAX_TOKEN_BYTES + 1);
    assert!(matches!(reason(a.verify_token(&huge, NOW)), AuthFailure::Malformed(_)));
}

#[test]
fn configuration_errors() {
    let ok_keys = || JwtKeys::Jwks(jwks());
    let mut c = config(ok_keys(), &[JwtAlgorithm::RS256]);
    c.issuer = " ".into();
    assert!(matches!(JwtAuthorizer::new(c), Err(JwtConfigError::NoIssuer)));
    let mut c = config(ok_keys(), &[JwtAlgorithm::RS256]);
    c.audiences.clear();
    assert!(matches!(JwtAuthorizer::new(c), Err(JwtConfigError::NoAudience)));
    let c = config(ok_keys(), &[]);
    assert!(matches!(JwtAuthorizer::new(c), Err(JwtConfigError::NoAlgorithms)));
    let c = config(JwtKeys::HmacSecret(b"short".to_vec()), &[JwtAlgorithm::HS256]);
    assert!(matches!(JwtAuthorizer::new(c), Err(JwtConfigError::WeakSecret)));
    let c = config(JwtKeys::HmacSecret(HMAC_SECRET.to_vec()), &[JwtAlgorithm::RS256]);
    assert!(matches!(JwtAuthorizer::new(c), Err(JwtConfigError::NoUsableKey { .. })));
    // Only HS256 allowed with a JWKS of RSA and EC keys: nothing usable.
    let c = config(ok_keys(), &[JwtAlgorithm::HS256]);
    assert!(matches!(
        JwtAuthorizer::new(c),
        Err(JwtConfigError::NoUsableKey { skipped: 2, .. })
    ));
    // Symmetric, encryption-only and malformed keys are skipped.
    let doc = json!({"keys": [
        {"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA", "alg": "HS256", "kid": "o"},
        {"kty": "EC", "crv": "P-256", "use": "enc", "kid": "e",
         "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
        {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny"},
        {"nonsense": true},
    ]});
    let c = config(
        JwtKeys::Jwks(doc.to_string()),
        &[JwtAlgorithm::HS256, JwtAlgorithm::RS256, JwtAlgorithm::ES256],
    );
    assert!(matches!(
        JwtAuthorizer::new(c),
        Err(JwtConfigError::NoUsableKey { skipped: 4, .. })
    ));
    for bad in ["not json", "{}", "{\"keys\": 3}"] {
        let c = config(JwtKeys::Jwks(bad.into()), &[JwtAlgorithm::RS256]);
        assert!(
            matches!(JwtAuthorizer::new(c), Err(JwtConfigError::BadJwks(_))),
            "{bad}"
        );
    }
    // Defaults.
    let d = JwtConfig::new(ISS, vec![AUD.into()], ok_keys());
    assert_eq!(d.allowed_algorithms, vec![JwtAlgorithm::RS256, JwtAlgorithm::ES256]);
    assert_eq!(d.leeway, DEFAULT_LEEWAY);
    assert!(!format!("{:?}", JwtKeys::HmacSecret(HMAC_SECRET.to_vec())).contains("0123"));
    assert_eq!("ES256".parse::<JwtAlgorithm>(), Ok(JwtAlgorithm::ES256));
    assert!("none".parse::<JwtAlgorithm>().is_err());
}

#[test]
fn jwks_can_be_replaced() {
    let a = jwks_authorizer();
    let old = rs256(&claims());
    assert!(a.authorize_at(&bearer(&old), NOW).is_ok());
    let rotated = serde_json::to_string(&JwkSet {
        keys: vec![jwk(&keys().rsa2, Algorithm::RS256, "rsa-2")],
    })
    .unwrap();
    assert_eq!(a.update_jwks(&rotated).unwrap(), 1);
    assert!(matches!(
        reason(a.authorize_at(&bearer(&old), NOW)),
        AuthFailure::UnknownKey { .. }
    ));
    let new = sign(Algorithm::RS256, Some("rsa-2"), &keys().rsa2, &claims());
    assert!(a.authorize_at(&bearer(&new), NOW).is_ok());
    // A bad update keeps the current keys.
    assert!(a.update_jwks("{\"keys\": []}").is_err());
    assert!(a.authorize_at(&bearer(&new), NOW).is_ok());
}

// --- API keys ----------------------------------------------------------------------------

const KEY_A: &str = "gk_test_key_alpha_0123456789";
const KEY_B: &str = "gk_test_key_bravo_0123456789";

fn api_headers(key: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(API_KEY_HEADER, HeaderValue::from_str(key).unwrap());
    h
}

fn api_keys() -> (Arc<MemoryApiKeyStore>, ApiKeyAuthorizer) {
    let store = Arc::new(MemoryApiKeyStore::new());
    store.insert(
        KEY_A,
        ApiKeyPolicy {
            name: "mobile-app".into(),
            rate: Some(RateLimit::new(1.0, 2)),
            quota_per_day: None,
        },
    );
    store.insert(
        KEY_B,
        ApiKeyPolicy {
            name: "partner".into(),
            rate: None,
            quota_per_day: Some(3),
        },
    );
    let auth = ApiKeyAuthorizer::new(store.clone());
    (store, auth)
}

fn api_reason(r: Result<ApiKeyIdentity, AuthError>) -> AuthFailure {
    match r {
        Err(AuthError::Unauthorized { reason }) => reason,
        other => panic!("expected 401, got {other:?}"),
    }
}

#[test]
fn api_keys_accept_and_reject() {
    let (store, auth) = api_keys();
    let (t0, wall) = (Instant::now(), SystemTime::now());
    let id = auth.check_api_key_at(&api_headers(KEY_A), t0, wall).unwrap();
    assert_eq!(id.name, "mobile-app");
    assert_eq!(id.key_id, hex(&hash_api_key(KEY_A)[..8]));
    assert_eq!(id.quota_remaining, None);
    assert_eq!(
        api_reason(auth.check_api_key_at(&api_headers("gk_wrong"), t0, wall)),
        AuthFailure::UnknownApiKey
    );
    // A key differing only in its last character.
    let near = format!("{}8", &KEY_A[..KEY_A.len() - 1]);
    assert_eq!(
        api_reason(auth.check_api_key_at(&api_headers(&near), t0, wall)),
        AuthFailure::UnknownApiKey
    );
    assert_eq!(
        api_reason(auth.check_api_key_at(&HeaderMap::new(), t0, wall)),
        AuthFailure::MissingCredentials
    );
    let mut two = api_headers(KEY_A);
    two.append(API_KEY_HEADER, HeaderValue::from_static(KEY_B));
    assert!(matches!(
        api_reason(auth.check_api_key_at(&two, t0, wall)),
        AuthFailure::Malformed(_)
    ));
    let long = "k".repeat(MAX_API_KEY_BYTES + 1);
    assert!(matches!(
        api_reason(auth.check_api_key_at(&api_headers(&long), t0, wall)),
        AuthFailure::Malformed(_)
    ));
    // The same public message as JWT failures.
    let err = auth.check_api_key_at(&api_headers("nope"), t0, wall).unwrap_err();
    assert_eq!(
        (err.to_string().as_str(), err.code().status().as_u16()),
        ("Unauthorized", 401)
    );
    // Only hashes are stored; removal works by hash.
    assert_eq!(store.len(), 2);
    assert!(!format!("{store:?}").contains("alpha"));
    assert!(store.remove_hash(&hash_api_key(KEY_A)));
    assert!(!store.remove_hash(&hash_api_key(KEY_A)));
    assert!(auth.check_api_key_at(&api_headers(KEY_A), t0, wall).is_err());
    // Generated keys are long, random and distinct.
    let (g1, g2) = (generate_api_key(), generate_api_key());
    assert!(g1.starts_with("gk_") && g1.len() == 67 && g1 != g2);
}

#[test]
fn api_key_rate_limit_answers_429_with_retry_after() {
    let (_store, auth) = api_keys();
    let (t0, wall) = (Instant::now(), SystemTime::now());
    let h = api_headers(KEY_A);
    assert!(auth.check_api_key_at(&h, t0, wall).is_ok());
    assert!(auth.check_api_key_at(&h, t0, wall).is_ok());
    let err = auth
        .check_api_key_at(&h, t0 + Duration::from_millis(250), wall)
        .unwrap_err();
    assert_eq!(
        err,
        AuthError::TooManyRequests {
            retry_after: Duration::from_millis(750)
        }
    );
    assert_eq!(
        (err.code().status().as_u16(), err.code().as_str()),
        (429, "TooManyRequests")
    );
    let api = err.to_api_error();
    assert_eq!(api.retry_after_secs, Some(1));
    assert_eq!(api.into_response("req-1").headers()["retry-after"], "1");
    // Other keys are unaffected; the key recovers after retry_after.
    assert!(auth.check_api_key_at(&api_headers(KEY_B), t0, wall).is_ok());
    assert!(auth
        .check_api_key_at(&h, t0 + Duration::from_millis(1000), wall)
        .is_ok());
}

#[test]
fn api_key_quota_exhaustion() {
    let (_store, auth) = api_keys();
    let t0 = Instant::now();
    // 2027-01-15T22:00:00Z: two hours to the quota's reset at UTC midnight.
    let wall = UNIX_EPOCH + Duration::from_secs(1_800_050_400);
    let h = api_headers(KEY_B);
    let remaining: Vec<_> = (0..3)
        .map(|_| auth.check_api_key_at(&h, t0, wall).unwrap().quota_remaining)
        .collect();
    assert_eq!(remaining, vec![Some(2), Some(1), Some(0)]);
    let err = auth.check_api_key_at(&h, t0, wall).unwrap_err();
    assert_eq!(
        err,
        AuthError::QuotaExceeded {
            retry_after: Duration::from_secs(2 * 3600)
        }
    );
    assert_eq!(
        (
            err.code().status().as_u16(),
            err.code().as_str(),
            err.to_string().as_str()
        ),
        (429, "QuotaExceeded", "Limit Exceeded")
    );
    assert_eq!(err.to_api_error().retry_after_secs, Some(7200));
    let next_day = wall + Duration::from_secs(2 * 3600);
    assert_eq!(
        auth.check_api_key_at(&h, t0, next_day).unwrap().quota_remaining,
        Some(2)
    );
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let secs = |ms| {
        AuthError::TooManyRequests {
            retry_after: Duration::from_millis(ms),
        }
        .to_api_error()
        .retry_after_secs
    };
    assert_eq!(
        (secs(1), secs(1000), secs(1001), secs(0)),
        (Some(1), Some(1), Some(2), Some(1))
    );
    let limited: Result<(), AuthError> = Decision::Limited {
        retry_after: Duration::from_secs(3),
    }
    .into();
    assert_eq!(limited.unwrap_err().retry_after(), Some(Duration::from_secs(3)));
    assert!(Result::<(), AuthError>::from(Decision::Allowed).is_ok());
}
