//! `${...}` variables in the Serverless Framework syntax.
//!
//! serverless.yml: `${env:NAME}`, `${self:path.to.key}`, `${opt:stage}`, `${sls:stage}`, with
//! comma-separated fallbacks (`${opt:stage, self:provider.stage, 'dev'}`: the first that
//! resolves wins; a quoted or bare literal ends the chain) and nesting
//! (`${env:${sls:stage}_DB}`). gust.toml: `${env:NAME}` and `${env:NAME, default}` only.
//!
//! A string that is exactly one variable takes the variable's value with its type (number,
//! boolean, mapping); variables inside a longer string are interpolated as text. A variable
//! that cannot be resolved is an error naming the variable and why; a source Gust does not
//! resolve (`ssm`, `file`, `cf`, ...) is an error too, never passed through as written.

use serde_yaml::{Mapping, Value};
use std::borrow::Cow;

/// What serverless.yml variables Gust resolves (for messages).
const SERVERLESS_SOURCES: &str = "env, self, opt:stage, sls:stage, aws:accountId and aws:region";

/// Serverless Framework sources Gust knows but does not resolve.
const UNSUPPORTED_SOURCES: [&str; 6] = ["ssm", "file", "cf", "s3", "param", "strToBool"];

/// The default stage when none is chosen.
pub(crate) const DEFAULT_STAGE: &str = "dev";

/// A lookup for environment variables.
pub(crate) type Env<'a> = &'a (dyn Fn(&str) -> Option<String> + 'a);

enum Flavor<'a> {
    /// Every `${...}` is a variable; `self` reads this document.
    Serverless { doc: &'a Value },
    /// Only `${env:...}` resolves; a `${...}` that names no known source is kept as written, so
    /// shell syntax (`${PORT}`, `${PORT:-8080}`) in commands passes through.
    Gust,
}

/// Why a variable did not resolve.
enum Fail {
    /// No source gave a value (a fallback may still): one reason per source tried.
    Unset(Vec<String>),
    /// Cannot resolve whatever the fallbacks: the variable where it happened, and why.
    Hard { var: String, reason: String },
    /// A `${self:...}` chain that comes back to itself: the paths in order.
    Cycle(Vec<String>),
}

/// Resolves variables for one manifest.
pub(crate) struct Resolver<'a> {
    flavor: Flavor<'a>,
    /// The manifest's file name, for messages (`serverless.yml`).
    file_name: String,
    env: Env<'a>,
    /// `--stage`, when given.
    cli_stage: Option<String>,
    /// The stage; `None` only while `provider.stage` itself is being resolved.
    stage: Option<String>,
}

impl<'a> Resolver<'a> {
    /// A resolver for serverless.yml, with the stage decided: `cli_stage`, else
    /// `provider.stage` (which may use `${env:...}`, `${self:...}` and `${opt:stage, ...}`),
    /// else `dev`. Errors are (key, message).
    pub(crate) fn serverless(
        file_name: &str,
        doc: &'a Value,
        env: Env<'a>,
        cli_stage: Option<&str>,
    ) -> Result<Self, (String, String)> {
        let mut r = Self {
            flavor: Flavor::Serverless { doc },
            file_name: file_name.to_string(),
            env,
            cli_stage: cli_stage.map(str::to_string),
            stage: None,
        };
        let stage = match (cli_stage, doc.get("provider").and_then(|p| p.get("stage"))) {
            (Some(s), _) => s.to_string(),
            (None, None | Some(Value::Null)) => DEFAULT_STAGE.to_string(),
            (None, Some(v)) => {
                let key = "provider.stage".to_string();
                let v = r.value(v).map_err(|m| (key.clone(), m))?;
                let s = scalar_text(&v).ok_or_else(|| (key.clone(), "must be a string".to_string()))?;
                crate::ids::check_stage(&s).map_err(|e| (key, e.to_string()))?;
                s
            }
        };
        r.stage = Some(stage);
        Ok(r)
    }

    /// A resolver for gust.toml: `${env:...}` only.
    pub(crate) fn gust(file_name: &str, env: Env<'a>) -> Self {
        Self {
            flavor: Flavor::Gust,
            file_name: file_name.to_string(),
            env,
            cli_stage: None,
            stage: None,
        }
    }

    /// The stage a serverless.yml resolver decided.
    pub(crate) fn stage(&self) -> &str {
        self.stage.as_deref().unwrap_or(DEFAULT_STAGE)
    }

    /// `v` as Gust reads it: a string's variables resolved (a string that is one variable
    /// takes that value and type); anything else as it is. Mappings and lists are not entered:
    /// their entries are resolved when they are read. The error is the message.
    pub(crate) fn value<'v>(&self, v: &'v Value) -> Result<Cow<'v, Value>, String> {
        match v {
            Value::String(s) if s.contains("${") => self.string(s).map(Cow::Owned),
            _ => Ok(Cow::Borrowed(v)),
        }
    }

    /// `v` with every variable in it resolved, entries of mappings and lists included.
    pub(crate) fn deep(&self, v: &Value) -> Result<Value, String> {
        Ok(match v {
            Value::String(s) if s.contains("${") => self.string(s)?,
            Value::Mapping(m) => {
                let mut out = Mapping::new();
                for (k, v) in m {
                    out.insert(k.clone(), self.deep(v)?);
                }
                Value::Mapping(out)
            }
            Value::Sequence(s) => Value::Sequence(s.iter().map(|v| self.deep(v)).collect::<Result<_, _>>()?),
            other => other.clone(),
        })
    }

    /// Resolves the variables in `s`; the error is the message
    /// (`cannot resolve ${env:DB_URL}: the environment variable is not set`).
    pub(crate) fn string(&self, s: &str) -> Result<Value, String> {
        let mut stack = Vec::new();
        self.interpolate(s, &mut stack)
            .map_err(|(var, fail)| message(&var, fail))
    }

    /// Resolves the variables in `s` to text (gust.toml, where values stay strings).
    pub(crate) fn text(&self, s: &str) -> Result<String, String> {
        let v = self.string(s)?;
        Ok(scalar_text(&v).unwrap_or_default())
    }

    /// Every variable in `s`; on failure, the outermost variable that failed and why.
    fn interpolate(&self, s: &str, stack: &mut Vec<String>) -> Result<Value, (String, Fail)> {
        let mut out = String::new();
        let mut pos = 0;
        while let Some((start, end)) = self.next_var(s, pos)? {
            let text = &s[start..end];
            let body = &s[start + 2..end - 1];
            let v = self.eval_var(text, body, stack).map_err(|f| (text.to_string(), f))?;
            if start == 0 && end == s.len() {
                return Ok(v);
            }
            out.push_str(&s[pos..start]);
            let piece = scalar_text(&v).ok_or_else(|| {
                let kind = match v {
                    Value::Mapping(_) => "a mapping",
                    Value::Sequence(_) => "a list",
                    _ => "no value",
                };
                (
                    text.to_string(),
                    Fail::Hard {
                        var: text.to_string(),
                        reason: format!("it resolves to {kind}, which cannot be part of a longer string"),
                    },
                )
            })?;
            out.push_str(&piece);
            pos = end;
        }
        out.push_str(&s[pos..]);
        Ok(Value::String(out))
    }

    /// The next variable at or after `from`: (start of `${`, end after `}`).
    fn next_var(&self, s: &str, from: usize) -> Result<Option<(usize, usize)>, (String, Fail)> {
        let mut from = from;
        while let Some(i) = s[from..].find("${") {
            let start = from + i;
            let Some(len) = closing(&s[start + 2..]) else {
                return match self.flavor {
                    Flavor::Gust if !names_known_source(&s[start + 2..]) => Ok(None),
                    _ => {
                        let var = s[start..].to_string();
                        Err((
                            var.clone(),
                            Fail::Hard {
                                var,
                                reason: "the closing `}` is missing".into(),
                            },
                        ))
                    }
                };
            };
            let end = start + 2 + len + 1;
            if matches!(self.flavor, Flavor::Gust) && !names_known_source(&s[start + 2..end - 1]) {
                from = end;
                continue;
            }
            return Ok(Some((start, end)));
        }
        Ok(None)
    }

    /// One `${...}`: its sources in order, the first that resolves wins.
    fn eval_var(&self, text: &str, body: &str, stack: &mut Vec<String>) -> Result<Value, Fail> {
        let parts = split_parts(body);
        let multi = parts.len() > 1;
        let mut reasons = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            match self.eval_part(text, part, i == 0, stack) {
                Ok(v) => return Ok(v),
                Err(Fail::Unset(r)) => {
                    reasons.extend(r.into_iter().map(|r| if multi { format!("`{part}`: {r}") } else { r }))
                }
                Err(other) => return Err(other),
            }
        }
        Err(Fail::Unset(reasons))
    }

    fn eval_part(&self, text: &str, part: &str, primary: bool, stack: &mut Vec<String>) -> Result<Value, Fail> {
        let hard = |reason: String| Fail::Hard {
            var: text.to_string(),
            reason,
        };
        if part.is_empty() {
            return Err(hard(if primary {
                "the variable is empty".into()
            } else {
                "a fallback is empty".into()
            }));
        }
        if let Some(q) = quoted(part) {
            return Ok(Value::String(q.to_string()));
        }
        // A nested variable as a whole source (`${opt:stage, ${self:custom.stage}}`).
        if part.starts_with("${") && closing(&part[2..]).is_some_and(|n| n + 3 == part.len()) {
            return self.eval_var(part, &part[2..part.len() - 1], stack);
        }
        // Nested variables inside a source (`env:${sls:stage}_URL`) are text.
        let resolved: Cow<'_, str> = if part.contains("${") {
            match self.interpolate(part, stack) {
                Ok(v) => Cow::Owned(scalar_text(&v).unwrap_or_default()),
                Err((var, Fail::Unset(r))) => {
                    return Err(Fail::Unset(r.into_iter().map(|r| format!("{var}: {r}")).collect()))
                }
                Err((_, other)) => return Err(other),
            }
        } else {
            Cow::Borrowed(part)
        };
        let Some(r) = parse_ref(&resolved) else {
            if primary {
                return Err(hard(format!(
                    "`{resolved}` names no variable source: use `${{source:address}}` ({})",
                    self.supported()
                )));
            }
            return Ok(literal(&resolved));
        };
        self.eval_ref(text, &r, primary, stack)
    }

    fn supported(&self) -> &'static str {
        match self.flavor {
            Flavor::Serverless { .. } => SERVERLESS_SOURCES,
            Flavor::Gust => "gust.toml resolves only env",
        }
    }

    fn eval_ref(&self, text: &str, r: &Ref<'_>, primary: bool, stack: &mut Vec<String>) -> Result<Value, Fail> {
        let hard = |reason: String| Fail::Hard {
            var: text.to_string(),
            reason,
        };
        let address = r.address.unwrap_or("").trim();
        match (&self.flavor, r.source) {
            (_, "env") => {
                if address.is_empty() {
                    return Err(hard("`env:` needs a variable name (`${env:NAME}`)".into()));
                }
                match (self.env)(address) {
                    Some(v) => Ok(Value::String(v)),
                    None => Err(Fail::Unset(vec!["the environment variable is not set".into()])),
                }
            }
            (Flavor::Serverless { doc }, "self") => self.lookup(doc, text, address, stack),
            (Flavor::Serverless { .. }, "opt") => match address {
                "stage" => match (&self.cli_stage, &self.stage) {
                    (Some(s), _) | (None, Some(s)) => Ok(Value::String(s.clone())),
                    (None, None) => Err(Fail::Unset(vec!["no `--stage` option was given".into()])),
                },
                other => Err(Fail::Unset(vec![format!(
                    "Gust has no `--{other}` option (it takes only --stage)"
                )])),
            },
            (Flavor::Serverless { .. }, "sls") => match (address, &self.stage) {
                ("stage", Some(s)) => Ok(Value::String(s.clone())),
                ("stage", None) => Err(hard(
                    "`provider.stage` decides the stage, so it cannot use ${sls:stage}: use ${opt:stage, 'dev'}"
                        .into(),
                )),
                (other, _) => Err(hard(format!(
                    "`sls:{other}` is not supported by Gust: of `sls`, only `sls:stage` is"
                ))),
            },
            // Gust is one account in one region: the app's (`provider.region`).
            (Flavor::Serverless { doc }, "aws") => match address {
                "accountId" => Ok(Value::String(crate::iam::ACCOUNT_ID.into())),
                "region" => match self.lookup(doc, text, "provider.region", stack) {
                    Err(Fail::Unset(_)) => Ok(Value::String(crate::defaults::DEFAULT_REGION.into())),
                    other => other,
                },
                other => Err(hard(format!(
                    "`aws:{other}` is not supported by Gust: of `aws`, only `aws:accountId` and `aws:region` are"
                ))),
            },
            (Flavor::Gust, "self" | "opt" | "sls") => Err(hard(format!(
                "the `{}` variable source is not supported in gust.toml: it resolves only `${{env:NAME}}` and `${{env:NAME, default}}` (per-stage values go in [stages.NAME] tables)",
                r.source
            ))),
            (_, source) if UNSUPPORTED_SOURCES.contains(&source) => Err(hard(format!(
                "the `{source}` variable source is not supported by Gust (it resolves {})",
                match self.flavor {
                    Flavor::Serverless { .. } => SERVERLESS_SOURCES,
                    Flavor::Gust => "only env in gust.toml",
                }
            ))),
            (_, source) => Err(hard(if primary {
                format!("unknown variable source `{source}` ({})", self.supported())
            } else {
                format!("unknown variable source `{source}`: quote a literal fallback ('...')")
            })),
        }
    }

    /// `${self:a.b.c}`: the value at that path, itself resolved (variables in it, deeply),
    /// following variables met on the way.
    fn lookup(&self, doc: &Value, text: &str, address: &str, stack: &mut Vec<String>) -> Result<Value, Fail> {
        if address.is_empty() {
            return Err(Fail::Hard {
                var: text.to_string(),
                reason: "`self:` needs a path (`${self:provider.stage}`)".into(),
            });
        }
        let segments: Vec<&str> = address.split('.').map(str::trim).collect();
        let mut node: Cow<'_, Value> = Cow::Borrowed(doc);
        for (i, seg) in segments.iter().enumerate() {
            let child = match &*node {
                Value::Mapping(m) => m.get(*seg),
                Value::Sequence(s) => seg.parse::<usize>().ok().and_then(|i| s.get(i)),
                _ => None,
            };
            let Some(child) = child else {
                return Err(Fail::Unset(vec![format!("{} has no `{address}`", self.file_name)]));
            };
            let path = segments[..=i].join(".");
            let last = i + 1 == segments.len();
            let next = self.resolve_at(&path, child, text, last, stack)?;
            node = Cow::Owned(next);
        }
        if node.is_null() {
            return Err(Fail::Unset(vec![format!("`{address}` is null in {}", self.file_name)]));
        }
        Ok(node.into_owned())
    }

    /// The value at `path` (reached from the variable `text`), its variables resolved: deeply
    /// when `deep`, else only when it is a string.
    fn resolve_at(
        &self,
        path: &str,
        v: &Value,
        text: &str,
        deep: bool,
        stack: &mut Vec<String>,
    ) -> Result<Value, Fail> {
        if !(has_var(v, deep)) {
            return Ok(v.clone());
        }
        if let Some(at) = stack.iter().position(|p| p == path) {
            let mut chain = stack[at..].to_vec();
            chain.push(path.to_string());
            return Err(Fail::Cycle(chain));
        }
        stack.push(path.to_string());
        let r = self.resolve_inside(path, v, text, deep, stack);
        stack.pop();
        r
    }

    fn resolve_inside(
        &self,
        path: &str,
        v: &Value,
        text: &str,
        deep: bool,
        stack: &mut Vec<String>,
    ) -> Result<Value, Fail> {
        match v {
            Value::String(s) => self.interpolate(s, stack).map_err(|(inner, fail)| match fail {
                Fail::Cycle(c) => Fail::Cycle(c),
                fail => Fail::Hard {
                    var: text.to_string(),
                    reason: format!("`{path}`: {}", message(&inner, fail)),
                },
            }),
            Value::Mapping(m) if deep => {
                let mut out = Mapping::new();
                for (k, v) in m {
                    let child = format!("{path}.{}", key_text(k));
                    out.insert(k.clone(), self.resolve_at(&child, v, text, true, stack)?);
                }
                Ok(Value::Mapping(out))
            }
            Value::Sequence(items) if deep => items
                .iter()
                .enumerate()
                .map(|(i, v)| self.resolve_at(&format!("{path}.{i}"), v, text, true, stack))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Sequence),
            other => Ok(other.clone()),
        }
    }
}

/// The final message for a variable that failed.
fn message(var: &str, fail: Fail) -> String {
    match fail {
        Fail::Unset(reasons) => format!("cannot resolve {var}: {}", reasons.join("; ")),
        Fail::Hard { var, reason } => format!("cannot resolve {var}: {reason}"),
        Fail::Cycle(chain) => format!(
            "cannot resolve {var}: circular reference: {}",
            chain.iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(" -> ")
        ),
    }
}

/// Whether `v` holds a `${` (in itself, or anywhere inside when `deep`).
fn has_var(v: &Value, deep: bool) -> bool {
    match v {
        Value::String(s) => s.contains("${"),
        Value::Mapping(m) if deep => m.values().any(|v| has_var(v, true)),
        Value::Sequence(s) if deep => s.iter().any(|v| has_var(v, true)),
        _ => false,
    }
}

fn key_text(k: &Value) -> String {
    scalar_text(k).unwrap_or_else(|| "?".into())
}

/// A scalar as text; `None` for mappings, lists and null.
pub(crate) fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A source reference: `source(param):address`.
struct Ref<'s> {
    source: &'s str,
    address: Option<&'s str>,
}

/// `env:NAME`, `self:a.b`, `file(./x.yml):key`, `strToBool(x)`; `None` for a literal
/// (`dev`, `10`, `postgres://host/db`).
fn parse_ref(text: &str) -> Option<Ref<'_>> {
    let text = text.trim();
    if !text.as_bytes().first().is_some_and(u8::is_ascii_alphabetic) {
        return None;
    }
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let source = &text[..end];
    let mut rest = &text[end..];
    let mut param = false;
    if rest.starts_with('(') {
        let close = rest.rfind(')')?;
        param = true;
        rest = &rest[close + 1..];
    }
    if rest.is_empty() {
        return param.then_some(Ref { source, address: None });
    }
    let address = rest.strip_prefix(':')?;
    if !param && address.starts_with("//") {
        return None; // a URL: `postgres://localhost/db`
    }
    Some(Ref {
        source,
        address: Some(address),
    })
}

/// Whether a variable body starts with a source Gust knows (gust.toml leaves others as text).
fn names_known_source(body: &str) -> bool {
    let first = split_parts(body).into_iter().next().unwrap_or_default();
    if first.starts_with("${") {
        return true;
    }
    parse_ref(&first).is_some_and(|r| {
        matches!(r.source, "env" | "self" | "opt" | "sls" | "aws") || UNSUPPORTED_SOURCES.contains(&r.source)
    })
}

/// A literal fallback: quoted text, a number, a boolean, or bare text.
fn literal(text: &str) -> Value {
    let text = text.trim();
    if let Some(q) = quoted(text) {
        return Value::String(q.to_string());
    }
    match text {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Value::Number(i.into());
    }
    if text.bytes().any(|b| b.is_ascii_digit()) {
        if let Ok(f) = text.parse::<f64>() {
            if f.is_finite() {
                return Value::Number(f.into());
            }
        }
    }
    Value::String(text.to_string())
}

/// `'x'` or `"x"` -> `x`.
fn quoted(text: &str) -> Option<&str> {
    let b = text.as_bytes();
    (b.len() >= 2 && (b[0] == b'\'' || b[0] == b'"') && b[b.len() - 1] == b[0]).then(|| &text[1..text.len() - 1])
}

/// Scans a variable body; calls `on_comma` at each top-level comma. Returns the byte length
/// up to the `}` that closes the variable, if there is one.
fn scan(body: &str, mut on_comma: impl FnMut(usize)) -> Option<usize> {
    let b = body.as_bytes();
    let mut depth = 0usize;
    let mut quote: Option<u8> = None;
    let mut part_start = true;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            b'\'' | b'"' if part_start => quote = Some(c),
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                part_start = true;
                continue;
            }
            b'}' if depth == 0 => return Some(i),
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                on_comma(i);
                part_start = true;
                i += 1;
                continue;
            }
            _ => {}
        }
        if !c.is_ascii_whitespace() {
            part_start = false;
        }
        i += 1;
    }
    None
}

/// The length of a variable body up to its closing `}` (`text` starts after `${`).
fn closing(text: &str) -> Option<usize> {
    scan(text, |_| {})
}

/// A body's comma-separated sources, trimmed.
fn split_parts(body: &str) -> Vec<String> {
    let mut cuts = Vec::new();
    // The body has no closing brace of its own; scan sees its end as "unterminated", fine.
    scan(body, |i| cuts.push(i));
    let mut parts = Vec::new();
    let mut start = 0;
    for cut in cuts {
        parts.push(body[start..cut].trim().to_string());
        start = cut + 1;
    }
    parts.push(body[start..].trim().to_string());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn env_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn scans_nested_variables_quotes_and_commas() {
        assert_eq!(closing("env:A}rest"), Some(5));
        assert_eq!(closing("env:${opt:stage}_X}"), Some(18));
        assert_eq!(closing("env:A, '}'}"), Some(10));
        assert_eq!(closing("env:A"), None);
        assert_eq!(
            split_parts("opt:stage, self:provider.stage, 'a, b', ${env:X, 'y'}"),
            ["opt:stage", "self:provider.stage", "'a, b'", "${env:X, 'y'}"]
        );
    }

    #[test]
    fn tells_references_from_literals() {
        assert!(parse_ref("env:X").is_some_and(|r| r.source == "env" && r.address == Some("X")));
        assert!(parse_ref("file(./a.yml):b").is_some_and(|r| r.source == "file"));
        assert!(parse_ref("strToBool(true)").is_some_and(|r| r.source == "strToBool" && r.address.is_none()));
        for lit in ["dev", "10", "postgres://localhost/db", "a b", "-1"] {
            assert!(parse_ref(lit).is_none(), "{lit}");
        }
        assert_eq!(literal("10"), Value::Number(10.into()));
        assert_eq!(literal("1.5"), Value::Number(1.5.into()));
        assert_eq!(literal("true"), Value::Bool(true));
        assert_eq!(literal("'10'"), Value::String("10".into()));
        assert_eq!(literal("\"a b\""), Value::String("a b".into()));
        assert_eq!(literal("dev"), Value::String("dev".into()));
    }

    #[test]
    fn gust_flavor_keeps_shell_syntax_and_resolves_env() {
        let env = env_of(&[("DB", "postgres://db")]);
        let lookup = |k: &str| env.get(k).cloned();
        let r = Resolver::gust("gust.toml", &lookup);
        assert_eq!(
            r.text("node s.js --port ${PORT} ${PORT:-80}").unwrap(),
            "node s.js --port ${PORT} ${PORT:-80}"
        );
        assert_eq!(r.text("${env:DB}/x").unwrap(), "postgres://db/x");
        assert_eq!(r.text("${env:NOPE, 5}").unwrap(), "5");
        let e = r.text("${self:app.name}").unwrap_err();
        assert!(e.contains("not supported in gust.toml"), "{e}");
        let e = r.text("x ${env:DB").unwrap_err();
        assert!(e.contains("the closing `}` is missing"), "{e}");
        assert_eq!(r.text("${PORT").unwrap(), "${PORT}".trim_end_matches('}'));
        let e = r.text("${ssm:/a}").unwrap_err();
        assert!(e.contains("the `ssm` variable source is not supported"), "{e}");
    }
}
