use std::fmt;

/// Which methods a route answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MethodMatch {
    Any,
    /// Upper-case method name.
    One(String),
}

/// A route key in API Gateway's form: `METHOD /path/{param}/{proxy+}`, `ANY /path`, or `$default`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteKey {
    pub method: MethodMatch,
    /// Path template starting with `/`; `None` for `$default` (matches everything).
    pub path: Option<String>,
}

const METHODS: [&str; 8] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "ANY"];

impl RouteKey {
    /// Parses `"POST /users"`, `"ANY /{proxy+}"`, `"$default"`, or `"*"` (all routes).
    pub fn parse(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "$default" || s == "*" {
            return Ok(Self {
                method: MethodMatch::Any,
                path: None,
            });
        }
        let (method, path) = s
            .split_once(char::is_whitespace)
            .ok_or_else(|| format!("route `{s}` must look like `METHOD /path`"))?;
        Self::from_parts(method, path.trim())
    }

    /// Builds a key from a method (any case; `*` and `any` mean every method) and a path.
    pub fn from_parts(method: &str, path: &str) -> Result<Self, String> {
        let upper = method.trim().to_ascii_uppercase();
        let method = match upper.as_str() {
            "*" | "ANY" => MethodMatch::Any,
            m if METHODS.contains(&m) => MethodMatch::One(upper.clone()),
            _ => return Err(format!("unknown HTTP method `{method}`")),
        };
        let path = normalize_path(path)?;
        Ok(Self {
            method,
            path: Some(path),
        })
    }
}

/// Checks a path template: segments are literals, `{name}`, or a final `{name+}`.
fn normalize_path(path: &str) -> Result<String, String> {
    let path = path.trim();
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    let segments: Vec<&str> = path[1..].split('/').collect();
    let last = segments.len().saturating_sub(1);
    for (i, seg) in segments.iter().enumerate() {
        if seg.is_empty() {
            if segments.len() == 1 {
                break; // "/" itself
            }
            if i == last {
                continue; // trailing slash is tolerated and dropped below
            }
            return Err(format!("path `{path}` has an empty segment"));
        }
        if let Some(inner) = seg.strip_prefix('{') {
            let Some(name) = inner.strip_suffix('}') else {
                return Err(format!("path `{path}`: segment `{seg}` has an unclosed `{{`"));
            };
            let (name, greedy) = match name.strip_suffix('+') {
                Some(n) => (n, true),
                None => (name, false),
            };
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("path `{path}`: bad parameter name in `{seg}`"));
            }
            if greedy && i != last {
                return Err(format!(
                    "path `{path}`: greedy parameter `{seg}` must be the last segment"
                ));
            }
        } else if seg.contains(['{', '}']) {
            return Err(format!("path `{path}`: segment `{seg}` mixes text and a parameter"));
        }
    }
    let trimmed = if path.len() > 1 {
        path.trim_end_matches('/')
    } else {
        &path
    };
    Ok(if trimmed.is_empty() { "/".into() } else { trimmed.into() })
}

impl fmt::Display for RouteKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.method, &self.path) {
            (_, None) => f.write_str("$default"),
            (MethodMatch::Any, Some(p)) => write!(f, "ANY {p}"),
            (MethodMatch::One(m), Some(p)) => write!(f, "{m} {p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_route_keys() {
        assert_eq!(RouteKey::parse("post /users").unwrap().to_string(), "POST /users");
        assert_eq!(
            RouteKey::parse("GET users/{id}/").unwrap().to_string(),
            "GET /users/{id}"
        );
        assert_eq!(RouteKey::parse("ANY /{proxy+}").unwrap().to_string(), "ANY /{proxy+}");
        assert_eq!(RouteKey::parse("*").unwrap().to_string(), "$default");
        assert_eq!(RouteKey::parse("GET /").unwrap().to_string(), "GET /");
    }

    #[test]
    fn refuses_bad_route_keys() {
        for bad in [
            "FETCH /a",
            "/users",
            "GET /a/{b+}/c",
            "GET /a/{b",
            "GET /a//b",
            "GET /x{y}",
        ] {
            assert!(RouteKey::parse(bad).is_err(), "{bad}");
        }
    }
}
