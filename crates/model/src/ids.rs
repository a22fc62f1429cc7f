use std::fmt;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {reason}")]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
}

/// Checks the shared name rule: `[A-Za-z0-9][A-Za-z0-9_-]{0,63}`.
///
/// Lambda allows upper case in function names and serverless.yml projects use camelCase keys,
/// so upper case is accepted (DESIGN.md proposed lower case only). No dots, slashes or other
/// bytes, so a name is always safe as a path segment or a URL segment.
fn check(kind: &'static str, name: &str) -> Result<(), NameError> {
    let err = |reason| NameError {
        kind,
        name: name.to_string(),
        reason,
    };
    let bytes = name.as_bytes();
    if bytes.is_empty() {
        return Err(err("must not be empty"));
    }
    if bytes.len() > 64 {
        return Err(err("must be at most 64 characters"));
    }
    if !bytes[0].is_ascii_alphanumeric() {
        return Err(err("must start with a letter or digit"));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
    {
        return Err(err("may contain only letters, digits, '-' and '_'"));
    }
    Ok(())
}

/// A stage name (`dev`, `prod`, `pr-42`) follows the shared name rule.
pub(crate) fn check_stage(name: &str) -> Result<(), NameError> {
    check("stage", name)
}

/// Topic and subscription names may also contain dots (`order.created`) and be 128 long.
fn check_topic(kind: &'static str, name: &str) -> Result<(), NameError> {
    let err = |reason| NameError {
        kind,
        name: name.to_string(),
        reason,
    };
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 128 {
        return Err(err("must be 1 to 128 characters"));
    }
    if !bytes[0].is_ascii_alphanumeric() {
        return Err(err("must start with a letter or digit"));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(err("may contain only letters, digits, '-', '_' and '.'"));
    }
    if name.contains("..") {
        return Err(err("must not contain '..'"));
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$doc:meta])* $ty:ident, $kind:literal) => {
        name_type!($(#[$doc])* $ty, $kind, check);
    };
    ($(#[$doc:meta])* $ty:ident, $kind:literal, $check:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $ty(String);

        impl $ty {
            pub fn new(name: impl Into<String>) -> Result<Self, NameError> {
                let name = name.into();
                $check($kind, &name)?;
                Ok(Self(name))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $ty {
            type Err = NameError;
            fn from_str(s: &str) -> Result<Self, NameError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A function's name, validated: safe in paths, URLs and logs.
    FunctionName,
    "function"
);
name_type!(
    /// An app's name (gust.toml `[app] name`, serverless.yml `service`).
    AppName,
    "app"
);

name_type!(
    /// A topic events are published to (`orders`, `order.created`).
    TopicName,
    "topic",
    check_topic
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_lambda_style_names() {
        for ok in ["a", "register-user", "registerUser", "get_user_2", &"x".repeat(64)] {
            assert!(FunctionName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn topic_names_allow_dots_but_not_traversal() {
        assert!(TopicName::new("order.created").is_ok());
        for bad in ["", ".x", "a..b", "a/b", "a b", &"t".repeat(129)] {
            assert!(TopicName::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn refuses_traversal_and_odd_bytes() {
        for bad in [
            "",
            "../etc",
            "a/b",
            "a.b",
            "-a",
            "_a",
            "a b",
            "a\0b",
            "é",
            "a%2e",
            &"x".repeat(65),
        ] {
            assert!(FunctionName::new(bad).is_err(), "{bad:?}");
        }
    }
}
