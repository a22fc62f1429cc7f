//! Checks made before any face: the `Host` a request was sent to, and a browser's `Origin`.
//!
//! DNS rebinding: a web page on `evil.example` can make its own name resolve to 127.0.0.1
//! and then talk to the admin address from the victim's browser, same-origin as far as the
//! browser knows; its requests still say `Host: evil.example`. So only IP literals (a rebinding
//! attack always goes through a name), `localhost` and names the operator configured are
//! served. CSRF: a page on another origin can send requests without reading the answers; a
//! browser marks them with `Origin`, and one that is not the admin's own (the same scheme-less
//! authority as `Host`) is refused. Clients that are not browsers send no `Origin`.

use crate::codes::ErrorCode;
use crate::error::ApiError;
use std::net::IpAddr;

/// Which `Host` names the admin address answers to.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// Names accepted besides IP addresses and `localhost` (lower case, without a port).
    names: Vec<String>,
}

impl HostPolicy {
    /// Also accept these names (e.g. the name of a reverse proxy in front of the admin address).
    pub fn with_names<I: IntoIterator<Item = S>, S: AsRef<str>>(names: I) -> Self {
        Self {
            names: names
                .into_iter()
                .map(|n| n.as_ref().trim().trim_end_matches('.').to_ascii_lowercase())
                .filter(|n| !n.is_empty())
                .collect(),
        }
    }

    fn host_allowed(&self, authority: &str) -> bool {
        let host = host_part(authority).to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        if host.is_empty() {
            return false;
        }
        host.parse::<IpAddr>().is_ok() || host == "localhost" || self.names.iter().any(|n| n == host)
    }

    /// `Err` with `403 HostNotAllowed` or `403 OriginNotAllowed`.
    pub fn check(&self, headers: &http::HeaderMap) -> Result<(), ApiError> {
        let host = headers
            .get(http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        if !self.host_allowed(host) {
            return Err(ApiError::new(
                ErrorCode::HostNotAllowed,
                format!(
                    "the admin API answers to loopback addresses, localhost and configured names, not Host `{}`",
                    host.chars().take(100).collect::<String>()
                ),
            ));
        }
        if let Some(origin) = headers.get(http::header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            let own = origin
                .strip_prefix("http://")
                .or_else(|| origin.strip_prefix("https://"))
                .is_some_and(|authority| authority.eq_ignore_ascii_case(host));
            if !own {
                return Err(ApiError::new(
                    ErrorCode::OriginNotAllowed,
                    format!(
                        "requests from web pages of other origins are refused (Origin `{}`)",
                        origin.chars().take(100).collect::<String>()
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// `host` of `host`, `host:port`, `[v6]`, `[v6]:port`.
fn host_part(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map(|(h, _)| h).unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => authority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(host: Option<&str>, origin: Option<&str>) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        if let Some(v) = host {
            h.insert(http::header::HOST, v.parse().unwrap());
        }
        if let Some(v) = origin {
            h.insert(http::header::ORIGIN, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn hosts() {
        let p = HostPolicy::with_names(["Gust.Internal."]);
        for ok in [
            "127.0.0.1:8081",
            "127.0.0.1",
            "localhost:8081",
            "LOCALHOST",
            "[::1]:8081",
            "10.0.0.5:8081",
            "gust.internal:443",
        ] {
            assert!(p.check(&headers(Some(ok), None)).is_ok(), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:8081",
            "localhost.evil.example",
            "",
            "[::1",
        ] {
            let e = p.check(&headers(Some(bad), None)).unwrap_err();
            assert_eq!(e.code, ErrorCode::HostNotAllowed, "{bad}");
        }
        assert_eq!(
            p.check(&headers(None, None)).unwrap_err().code,
            ErrorCode::HostNotAllowed
        );
    }

    #[test]
    fn origins() {
        let p = HostPolicy::default();
        let h = Some("127.0.0.1:8081");
        assert!(p.check(&headers(h, Some("http://127.0.0.1:8081"))).is_ok());
        for bad in [
            "http://evil.example",
            "http://127.0.0.1:3000",
            "null",
            "http://localhost:8081",
        ] {
            let e = p.check(&headers(h, Some(bad))).unwrap_err();
            assert_eq!(e.code, ErrorCode::OriginNotAllowed, "{bad}");
        }
    }
}
