//! AWS Signature Version 4 verification (the `Authorization` header form), for the Lambda API.
//!
//! What the AWS CLI and SDKs send: `Authorization: AWS4-HMAC-SHA256
//! Credential=KEY/DATE/REGION/SERVICE/aws4_request, SignedHeaders=a;b, Signature=HEX` with an
//! `X-Amz-Date`. Verification rebuilds the canonical request from what arrived, derives the
//! signing key from the secret (HMAC-SHA256 chain over date, region, service), and compares
//! signatures in constant time. Checked as AWS does: the request time within 15 minutes of the
//! clock, the scope's date equal to the request's, the scope's service, and `host` among the
//! signed headers (so a signature is bound to the address it was made for). The body is part
//! of the signature (its SHA-256); `UNSIGNED-PAYLOAD` is refused. Any region is accepted (it
//! is signed, so it cannot be changed in transit). Presigned URLs (query-string signatures)
//! and session tokens are not supported.
//!
//! Done with `hmac` + `sha2` (RustCrypto, both already in the dependency tree) rather than the
//! `aws-sigv4` crate: that one signs but has no verification API, and brings the smithy runtime
//! crates and `time` with it.
//!
//! Two steps, so a request is refused before its body is read: [`check_head`] parses, finds
//! the key and checks the time; [`Pending::verify`] checks the signature over the body.

use chrono::{DateTime, NaiveDateTime, Utc};
use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The signature algorithm the header names.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far the request time may be from the clock, either way (AWS's 15 minutes).
pub const MAX_CLOCK_SKEW: chrono::Duration = chrono::Duration::minutes(15);
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

type HmacSha256 = Hmac<Sha256>;

/// Why a signature was refused. The `Display` text is the message AWS sends for the same case;
/// the `x-amzn-ErrorType` it is answered with is picked in `admin::lambda_errors`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// No `Authorization` header.
    #[error("Missing Authentication Token")]
    Missing,
    /// The `Authorization` header is not a complete SigV4 header, or required parts are missing.
    #[error("{0}")]
    Incomplete(String),
    /// The access key id is not one Gust issued (or it was removed).
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    /// The signature does not match (wrong secret, or the request was changed after signing).
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret \
         Access Key and signing method. Consult the service documentation for details."
    )]
    Mismatch,
    /// Signed too long ago.
    #[error("Signature expired: {signed} is now earlier than {earliest} ({now} - 15 min.)")]
    Expired {
        signed: String,
        earliest: String,
        now: String,
    },
    /// Signed too far in the future.
    #[error("Signature not yet current: {signed} is still later than {latest} ({now} + 15 min.)")]
    NotYetCurrent {
        signed: String,
        latest: String,
        now: String,
    },
    /// A scope that does not fit the request (date) or this API (service).
    #[error("{0}")]
    BadScope(String),
}

/// The parsed `Authorization` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access_key_id: &'a str,
    /// `YYYYMMDD`
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    /// As sent: lower-case names separated by `;`.
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

/// Parses `AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`.
pub fn parse_authorization(value: &str) -> Result<Authorization<'_>, SigV4Error> {
    let incomplete = |what: &str| SigV4Error::Incomplete(what.to_string());
    let rest = value
        .strip_prefix(ALGORITHM)
        .filter(|r| r.starts_with(' '))
        .ok_or_else(|| incomplete("Authorization header requires the AWS4-HMAC-SHA256 algorithm."))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed_headers = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => {}
        }
    }
    let missing = |name: &str| {
        SigV4Error::Incomplete(format!(
            "Authorization header requires '{name}' parameter. Authorization={}",
            value.chars().take(200).collect::<String>()
        ))
    };
    let credential = credential.ok_or_else(|| missing("Credential"))?;
    let signed_headers = signed_headers
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("SignedHeaders"))?;
    let signature = signature
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing("Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(incomplete(
            "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term.",
        ));
    };
    if terminator != "aws4_request" || access_key_id.is_empty() || date.len() != 8 {
        return Err(incomplete(
            "Credential must be of the form keyid/YYYYMMDD/region/service/aws4_request.",
        ));
    }
    Ok(Authorization {
        access_key_id,
        date,
        region,
        service,
        signed_headers,
        signature,
    })
}

/// What a signature is checked against, apart from the body.
#[derive(Debug, Clone, Copy)]
pub struct RequestHead<'a> {
    pub method: &'a str,
    /// The path as it arrived on the wire (still percent-encoded).
    pub path: &'a str,
    pub query: Option<&'a str>,
    pub headers: &'a HeaderMap,
}

/// A request whose header checks passed; [`Pending::verify`] checks the signature over the body.
#[derive(Debug)]
pub struct Pending {
    access_key_id: String,
    /// The canonical request up to (not including) the payload hash.
    canonical_head: String,
    string_to_sign_head: String,
    signing_key: [u8; 32],
    signature: String,
    declared_payload_hash: Option<String>,
}

impl Drop for Pending {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.signing_key);
    }
}

/// Checks everything but the body: the header's form, the key (`secret_of` returns the secret
/// of a known access key id), the scope, the clock, `host` being signed.
pub fn check_head<S: AsRef<[u8]>>(
    head: RequestHead<'_>,
    service: &str,
    now: DateTime<Utc>,
    secret_of: impl FnOnce(&str) -> Option<S>,
) -> Result<Pending, SigV4Error> {
    let header = |name: &str| head.headers.get(name).and_then(|v| v.to_str().ok());
    let auth_value = match head.headers.get(http::header::AUTHORIZATION) {
        None => return Err(SigV4Error::Missing),
        Some(v) => v
            .to_str()
            .map_err(|_| SigV4Error::Incomplete("Authorization header is not ASCII.".into()))?,
    };
    let auth = parse_authorization(auth_value)?;
    let signed: Vec<&str> = auth.signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(SigV4Error::Incomplete(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let amz_date = header("x-amz-date").ok_or_else(|| {
        SigV4Error::Incomplete(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".into(),
        )
    })?;
    if !signed.contains(&"x-amz-date") {
        return Err(SigV4Error::Incomplete(
            "'X-Amz-Date' must be a 'SignedHeader' in the AWS Authorization.".into(),
        ));
    }
    let secret = secret_of(auth.access_key_id).ok_or(SigV4Error::UnknownKey)?;
    let signed_at = NaiveDateTime::parse_from_str(amz_date, DATE_FORMAT)
        .map_err(|_| SigV4Error::Incomplete(format!("X-Amz-Date `{amz_date}` is not of the form YYYYMMDDTHHMMSSZ.")))?
        .and_utc();
    let fmt = |t: DateTime<Utc>| t.format(DATE_FORMAT).to_string();
    if signed_at < now - MAX_CLOCK_SKEW {
        return Err(SigV4Error::Expired {
            signed: amz_date.to_string(),
            earliest: fmt(now - MAX_CLOCK_SKEW),
            now: fmt(now),
        });
    }
    if signed_at > now + MAX_CLOCK_SKEW {
        return Err(SigV4Error::NotYetCurrent {
            signed: amz_date.to_string(),
            latest: fmt(now + MAX_CLOCK_SKEW),
            now: fmt(now),
        });
    }
    if auth.date != &amz_date[..8] {
        return Err(SigV4Error::BadScope(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{amz_date}'.",
            auth.date,
            &amz_date[..8]
        )));
    }
    if auth.service != service {
        return Err(SigV4Error::BadScope(format!(
            "Credential should be scoped to correct service: '{service}'."
        )));
    }

    let mut canonical = String::with_capacity(512);
    canonical.push_str(head.method);
    canonical.push('\n');
    canonical_uri(head.path, &mut canonical);
    canonical.push('\n');
    canonical_query(head.query.unwrap_or(""), &mut canonical);
    canonical.push('\n');
    for name in &signed {
        canonical.push_str(name);
        canonical.push(':');
        let mut first = true;
        for v in head.headers.get_all(*name) {
            if !first {
                canonical.push(',');
            }
            first = false;
            // Trimmed, with runs of spaces as one (AWS's "Trimall").
            let v = String::from_utf8_lossy(v.as_bytes());
            let mut words = v.split_whitespace();
            if let Some(w) = words.next() {
                canonical.push_str(w);
                for w in words {
                    canonical.push(' ');
                    canonical.push_str(w);
                }
            }
        }
        canonical.push('\n');
    }
    canonical.push('\n');
    canonical.push_str(auth.signed_headers);
    canonical.push('\n');

    let scope = format!("{}/{}/{}/aws4_request", auth.date, auth.region, auth.service);
    let string_to_sign_head = format!("{ALGORITHM}\n{amz_date}\n{scope}\n");
    let signing_key = signing_key(secret.as_ref(), auth.date, auth.region, auth.service);
    Ok(Pending {
        access_key_id: auth.access_key_id.to_string(),
        canonical_head: canonical,
        string_to_sign_head,
        signing_key,
        signature: auth.signature.to_ascii_lowercase(),
        declared_payload_hash: header("x-amz-content-sha256").map(str::to_string),
    })
}

impl Pending {
    /// The access key id the request claims (known to Gust; not yet proven).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// Checks the signature over `body`; returns the access key id it was made with.
    pub fn verify(self, body: &[u8]) -> Result<String, SigV4Error> {
        let payload_hash = hex(&Sha256::digest(body));
        if let Some(declared) = &self.declared_payload_hash {
            // `UNSIGNED-PAYLOAD` (or any other value) would let the body change after signing.
            if !declared.eq_ignore_ascii_case(&payload_hash) {
                return Err(SigV4Error::Mismatch);
            }
        }
        let mut canonical = self.canonical_head.clone();
        canonical.push_str(&payload_hash);
        let string_to_sign = format!(
            "{}{}",
            self.string_to_sign_head,
            hex(&Sha256::digest(canonical.as_bytes()))
        );
        let expected = hex(&hmac(&self.signing_key, string_to_sign.as_bytes()));
        if bool::from(expected.as_bytes().ct_eq(self.signature.as_bytes())) {
            Ok(self.access_key_id.clone())
        } else {
            Err(SigV4Error::Mismatch)
        }
    }
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`
pub fn signing_key(secret: &[u8], date: &str, region: &str, service: &str) -> [u8; 32] {
    let mut k = zeroize::Zeroizing::new(Vec::with_capacity(4 + secret.len()));
    k.extend_from_slice(b"AWS4");
    k.extend_from_slice(secret);
    let k_date = hmac(&k, date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

/// Signs a request as an AWS SDK would (for tests and benchmarks; Gust itself only verifies).
/// Returns the `Authorization` header value for `headers`, which must hold `host` and
/// `x-amz-date`; every header in it is signed.
pub fn sign(
    secret: &str,
    access_key_id: &str,
    region: &str,
    service: &str,
    head: RequestHead<'_>,
    body: &[u8],
) -> String {
    let amz_date = head
        .headers
        .get("x-amz-date")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut names: Vec<String> = head.headers.keys().map(|k| k.as_str().to_string()).collect();
    names.sort();
    names.dedup();
    let signed_headers = names.join(";");
    let date = amz_date.get(..8).unwrap_or("");
    let placeholder = format!(
        "{ALGORITHM} Credential={access_key_id}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed_headers}, Signature=00"
    );
    let mut headers = head.headers.clone();
    headers.insert(
        http::header::AUTHORIZATION,
        http::HeaderValue::from_str(&placeholder).expect("ASCII header"),
    );
    let now = NaiveDateTime::parse_from_str(&amz_date, DATE_FORMAT)
        .map(|t| t.and_utc())
        .unwrap_or_else(|_| Utc::now());
    let pending = check_head(
        RequestHead {
            headers: &headers,
            ..head
        },
        service,
        now,
        |_| Some(secret.as_bytes()),
    )
    .expect("a request built for signing passes the header checks");
    let mut canonical = pending.canonical_head.clone();
    canonical.push_str(&hex(&Sha256::digest(body)));
    let string_to_sign = format!(
        "{}{}",
        pending.string_to_sign_head,
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let signature = hex(&hmac(&pending.signing_key, string_to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={access_key_id}/{date}/{region}/{service}/aws4_request, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~')
}

fn encode_into(bytes: &[u8], keep_slash: bool, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if is_unreserved(b) || (keep_slash && b == b'/') {
            out.push(b as char);
        } else {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 15) as usize] as char);
        }
    }
}

/// The wire path with dot segments and empty segments removed, encoded once more (every
/// service but S3 signs the already-encoded path encoded again, as botocore and the SDKs do).
fn canonical_uri(path: &str, out: &mut String) {
    let mut segments: Vec<&str> = Vec::new();
    for s in path.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    out.push('/');
    let joined = segments.join("/");
    encode_into(joined.as_bytes(), true, out);
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
}

fn percent_decode_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hexval = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hexval(b[i + 1]), hexval(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Parameters decoded, encoded strictly (RFC 3986 unreserved only), sorted by name then value.
fn canonical_query(query: &str, out: &mut String) {
    let mut pairs: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut ek = String::new();
            encode_into(&percent_decode_bytes(k), false, &mut ek);
            let mut ev = String::new();
            encode_into(&percent_decode_bytes(v), false, &mut ev);
            (ek, ev)
        })
        .collect();
    pairs.sort();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

    fn at(s: &str) -> DateTime<Utc> {
        NaiveDateTime::parse_from_str(s, DATE_FORMAT).unwrap().and_utc()
    }

    /// AWS's published example (IAM ListUsers, "Examples of the complete Signature Version 4
    /// signing process").
    #[test]
    fn the_aws_documentation_example_verifies() {
        assert_eq!(
            hex(&signing_key(SECRET.as_bytes(), "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let mut h = HeaderMap::new();
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
        );
        h.insert("host", HeaderValue::from_static("iam.amazonaws.com"));
        h.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        h.insert(
            http::header::AUTHORIZATION,
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, \
                 Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
            ),
        );
        let head = RequestHead {
            method: "GET",
            path: "/",
            query: Some("Action=ListUsers&Version=2010-05-08"),
            headers: &h,
        };
        let now = at("20150830T123900Z");
        let ok = check_head(head, "iam", now, |id| (id == "AKIDEXAMPLE").then_some(SECRET)).unwrap();
        assert_eq!(ok.verify(b"").unwrap(), "AKIDEXAMPLE");
        // Any change to what was signed breaks it.
        let p = check_head(head, "iam", now, |_| Some("wrong-secret")).unwrap();
        assert_eq!(p.verify(b""), Err(SigV4Error::Mismatch));
        let p = check_head(head, "iam", now, |_| Some(SECRET)).unwrap();
        assert_eq!(p.verify(b"{}"), Err(SigV4Error::Mismatch));
        let changed = RequestHead {
            query: Some("Action=DeleteUser&Version=2010-05-08"),
            ..head
        };
        let p = check_head(changed, "iam", now, |_| Some(SECRET)).unwrap();
        assert_eq!(p.verify(b""), Err(SigV4Error::Mismatch));
        assert_eq!(
            check_head(head, "iam", now, |_| None::<&str>).unwrap_err(),
            SigV4Error::UnknownKey
        );
        assert!(matches!(
            check_head(head, "lambda", now, |_| Some(SECRET)).unwrap_err(),
            SigV4Error::BadScope(_)
        ));
    }

    fn lambda_request(date: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("127.0.0.1:8081"));
        h.insert("x-amz-date", HeaderValue::from_str(date).unwrap());
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h
    }

    #[test]
    fn signed_requests_round_trip_and_the_clock_is_checked() {
        let mut h = lambda_request("20260101T120000Z");
        let path = "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Aecho/invocations";
        let query = Some("Qualifier=%24LATEST");
        fn post<'a>(path: &'a str, query: Option<&'a str>, headers: &'a HeaderMap) -> RequestHead<'a> {
            RequestHead {
                method: "POST",
                path,
                query,
                headers,
            }
        }
        let auth = sign(
            "s3cr3t",
            "GKIAEXAMPLE",
            "eu-west-1",
            "lambda",
            post(path, query, &h),
            b"{\"a\":1}",
        );
        h.insert(http::header::AUTHORIZATION, HeaderValue::from_str(&auth).unwrap());
        let check = |now: &str| check_head(post(path, query, &h), "lambda", at(now), |_| Some("s3cr3t"));
        assert_eq!(
            check("20260101T121400Z").unwrap().verify(b"{\"a\":1}").unwrap(),
            "GKIAEXAMPLE"
        );
        assert_eq!(
            check("20260101T114600Z").unwrap().verify(b"{\"a\":1}").unwrap(),
            "GKIAEXAMPLE"
        );
        assert!(matches!(
            check("20260101T121601Z").unwrap_err(),
            SigV4Error::Expired { .. }
        ));
        assert!(matches!(
            check("20260101T114359Z").unwrap_err(),
            SigV4Error::NotYetCurrent { .. }
        ));
        // A declared payload hash must be the body's.
        h.insert("x-amz-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
        let p = check_head(post(path, query, &h), "lambda", at("20260101T120000Z"), |_| {
            Some("s3cr3t")
        })
        .unwrap();
        assert_eq!(p.verify(b"{\"a\":1}"), Err(SigV4Error::Mismatch));
    }

    #[test]
    fn host_and_date_must_be_signed_and_the_header_complete() {
        let now = at("20260101T120000Z");
        let mut h = lambda_request("20260101T120000Z");
        fn head(h: &HeaderMap) -> RequestHead<'_> {
            RequestHead {
                method: "POST",
                path: "/",
                query: None,
                headers: h,
            }
        }
        assert_eq!(
            check_head(head(&h), "lambda", now, |_| Some("x")).unwrap_err(),
            SigV4Error::Missing
        );
        for (value, want) in [
            (
                "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/lambda/aws4_request, SignedHeaders=x-amz-date, Signature=ab",
                "IncompleteSignatureException",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=ab",
                "IncompleteSignatureException",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/lambda, SignedHeaders=host;x-amz-date, Signature=ab",
                "IncompleteSignatureException",
            ),
            ("AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/lambda/aws4_request", "IncompleteSignatureException"),
            ("Basic dXNlcjpwYXNz", "IncompleteSignatureException"),
            (
                "AWS4-HMAC-SHA256 Credential=K/20251231/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab",
                "InvalidSignatureException",
            ),
            (
                "AWS4-HMAC-SHA256 Credential=K/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host;x-amz-date, Signature=ab",
                "InvalidSignatureException",
            ),
        ] {
            h.insert(http::header::AUTHORIZATION, HeaderValue::from_static(value));
            let e = check_head(head(&h), "lambda", now, |_| Some("x"))
                .and_then(|p| p.verify(b""))
                .unwrap_err();
            assert_eq!(crate::admin::lambda_errors::LambdaErrorType::from(&e).as_str(), want, "{value}: {e}");
        }
    }

    #[test]
    fn canonical_forms() {
        let mut s = String::new();
        canonical_uri("/a/./b/../c//d%3A/", &mut s);
        assert_eq!(s, "/a/c/d%253A/");
        let mut s = String::new();
        canonical_uri("", &mut s);
        assert_eq!(s, "/");
        let mut s = String::new();
        canonical_query("b=2&a=%7E x&a=1&c", &mut s);
        assert_eq!(s, "a=1&a=~%20x&b=2&c=");
    }
}
