//! The table of Gust's error codes: for each stable code its HTTP status, its wire string,
//! who is to blame and whether `Retry-After` is sent. It is the only place where a status is
//! picked for an error: an [`crate::ApiError`] is built from an [`ErrorCode`], never from a
//! status literal, so one code cannot answer with two statuses at two call sites.
//!
//! `docs/errors.md` documents the same table; a test (`codes_match_docs` below) parses its
//! tables and fails when a code is missing there, is documented with another status, blame or
//! `Retry-After`, or is documented but no longer here.

use http::StatusCode;

/// Who caused an error; the docs' "who is to blame" column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The request was wrong, unauthorised or over a limit: sending it again unchanged fails
    /// again (unless it was refused for load, which `Retry-After` says).
    Caller,
    /// The function's code failed: its logs say why.
    Function,
    /// Gust itself failed or is not set up for this: its log says why.
    Platform,
    /// A service behind the gateway's upstream proxy failed.
    Upstream,
}

impl Blame {
    /// The word the docs use.
    pub fn as_str(self) -> &'static str {
        match self {
            Blame::Caller => "caller",
            Blame::Function => "function",
            Blame::Platform => "platform",
            Blame::Upstream => "upstream",
        }
    }
}

impl From<gust_runtime::Blame> for Blame {
    fn from(b: gust_runtime::Blame) -> Self {
        match b {
            gust_runtime::Blame::Caller => Blame::Caller,
            gust_runtime::Blame::Function => Blame::Function,
            gust_runtime::Blame::Platform => Blame::Platform,
        }
    }
}

/// What the table says about one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CodeSpec {
    pub status: u16,
    pub blame: Blame,
    /// Whether the answer carries `Retry-After` (1 s unless the error says otherwise).
    pub retry_after: bool,
}

/// Declares [`ErrorCode`], its list of every variant and its one `match`, from one table, so a
/// code cannot be added without its status, blame and `Retry-After`.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $code:ident => $status:literal, $blame:ident, $retry:literal;)*) => {
        /// A stable, documented error code (`{"error":{"code": ...}}`). The wire string is the
        /// variant's name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $($(#[$doc])* $code,)*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$code,)*];

            /// The row of the table for this code.
            pub const fn spec(self) -> CodeSpec {
                match self {
                    $(ErrorCode::$code => CodeSpec {
                        status: $status,
                        blame: Blame::$blame,
                        retry_after: $retry,
                    },)*
                }
            }

            /// The wire string.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$code => stringify!($code),)*
                }
            }
        }
    };
}

error_codes! {
    // The gateway: requests and their limits.
    /// The request body could not be read.
    BadRequest => 400, Caller, false;
    RouteNotFound => 404, Caller, false;
    /// `Allow` lists the methods the path has.
    MethodNotAllowed => 405, Caller, false;
    RequestTimeout => 408, Caller, false;
    PayloadTooLarge => 413, Caller, false;
    RequestHeaderFieldsTooLarge => 431, Caller, false;
    /// A function's `max_queue` is full, or a route's or an API key's rate limit is reached.
    TooManyRequests => 429, Caller, true;
    QuotaExceeded => 429, Caller, true;
    /// The listener is at its connection cap (answered before a request is read).
    TooManyConnections => 503, Caller, true;
    Unauthorized => 401, Caller, false;
    Forbidden => 403, Caller, false;

    // Functions.
    /// The function is not deployed (the platform API or a queue named it).
    FunctionNotFound => 404, Caller, false;
    FunctionError => 502, Function, false;
    BadFunctionResponse => 502, Function, false;
    FunctionCrashed => 502, Function, false;
    FunctionInitError => 502, Function, false;
    FunctionOutOfMemory => 502, Function, false;
    FunctionResponseTooLarge => 502, Function, false;
    FunctionTimeout => 504, Function, false;

    // Events.
    InvalidEvent => 400, Caller, false;
    TopicNotFound => 404, Caller, false;
    EventTooLarge => 413, Caller, false;

    // The upstream proxy.
    UpstreamError => 502, Upstream, false;
    /// The circuit is open, no target is healthy, or the upstream is not running.
    UpstreamUnavailable => 503, Upstream, true;
    UpstreamTimeout => 504, Upstream, false;

    // Gust itself.
    ShuttingDown => 503, Platform, false;
    PlatformError => 500, Platform, false;
    /// A route names a JWT authorizer that is not loaded.
    AuthorizerUnavailable => 500, Platform, false;
    /// A route's Lambda authorizer failed, timed out or answered garbage (never an Allow).
    AuthorizerError => 500, Function, false;
    StorageError => 500, Platform, false;

    // The admin address.
    OperatorTokenRequired => 401, Caller, false;
    OperatorOnly => 403, Caller, false;
    FunctionOnly => 403, Caller, false;
    HostNotAllowed => 403, Caller, false;
    OriginNotAllowed => 403, Caller, false;
    /// A console session (cookie) sent a non-GET without `X-Gust-Console: 1` (CSRF defence).
    ConsoleHeaderRequired => 403, Caller, false;
    /// Too many log streams (`/gust/v1/logs/stream`) are open.
    TooManyStreams => 503, Platform, true;
    NotFound => 404, Caller, false;
    InvalidParameter => 400, Caller, false;
    AccessKeysDisabled => 404, Platform, false;
    SecretsDisabled => 404, Platform, false;
    ApiKeysDisabled => 404, Platform, false;
    TelemetryDisabled => 404, Platform, false;
    EventsDisabled => 404, Platform, false;
    SchedulesDisabled => 404, Platform, false;
    DeploymentsDisabled => 404, Platform, false;
    /// A redeploy's new version does not validate, or a new or changed function does not start.
    DeployRefused => 422, Caller, false;
    /// A rollback to a version that is not kept.
    DeploymentNotFound => 404, Caller, false;
    AccessKeyNotFound => 404, Caller, false;
    ApiKeyNotFound => 404, Caller, false;
    ApiKeyExists => 409, Caller, false;
    SecretNotFound => 404, Caller, false;
    /// The secret store refused a name or value, or failed (its message says which).
    SecretError => 400, Caller, false;
    TraceNotFound => 404, Caller, false;
    ScheduleNotFound => 404, Caller, false;
    /// `gust schedules run FUNCTION` for a function with more than one schedule.
    ScheduleAmbiguous => 409, Caller, false;
    SubscriptionNotFound => 404, Caller, false;
    DeadLetterNotFound => 404, Caller, false;

    // The platform API (`GUST_API`).
    ServiceNotFound => 404, Caller, false;
    InvalidKey => 400, Caller, false;
    KeyNotFound => 404, Caller, false;
    KeyExists => 412, Caller, false;
    VersionMismatch => 412, Caller, false;
    ValueTooLarge => 413, Caller, false;
    BlobNotFound => 404, Caller, false;
    BlobTooLarge => 413, Caller, false;
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        StatusCode::from_u16(self.spec().status).expect("the table holds valid statuses")
    }

    pub fn blame(self) -> Blame {
        self.spec().blame
    }

    /// Whether the answer carries `Retry-After`.
    pub fn retry_after(self) -> bool {
        self.spec().retry_after
    }

    /// The code with this wire string.
    pub fn from_wire(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|c| c.as_str() == s)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reading the tables of a Markdown file whose header row names `status` and `key_column`:
/// shared by the test of this table and of the Lambda API's.
#[cfg(test)]
pub(crate) mod doc_tables {
    /// One documented row: the status, the codes in backticks of the key cell, and the cells
    /// by header name.
    #[derive(Debug)]
    pub struct Row {
        pub line: usize,
        pub status: u16,
        pub codes: Vec<String>,
        pub cells: std::collections::HashMap<String, String>,
    }

    pub fn read(doc: &str) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../docs")
            .join(doc);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    fn cells(line: &str) -> Vec<String> {
        let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
        inner.split('|').map(|c| c.trim().to_string()).collect()
    }

    /// Every row of every table whose header has `status` and `key_column`.
    pub fn rows(text: &str, key_column: &str) -> Vec<Row> {
        let mut rows = Vec::new();
        let mut header: Option<Vec<String>> = None;
        for (i, line) in text.lines().enumerate() {
            if !line.trim_start().starts_with('|') {
                header = None;
                continue;
            }
            let cells = cells(line);
            let Some(h) = &header else {
                if cells.iter().any(|c| c == "status") && cells.iter().any(|c| c == key_column) {
                    header = Some(cells);
                } else {
                    // A table about something else: skip it whole.
                    header = Some(Vec::new());
                }
                continue;
            };
            if h.is_empty() || cells.iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':')) {
                continue;
            }
            assert_eq!(
                cells.len(),
                h.len(),
                "line {}: {} cells under a header of {}",
                i + 1,
                cells.len(),
                h.len()
            );
            let by_name: std::collections::HashMap<String, String> = h.iter().cloned().zip(cells).collect();
            let status = by_name["status"]
                .parse()
                .unwrap_or_else(|_| panic!("line {}: status `{}` is not a number", i + 1, by_name["status"]));
            let codes: Vec<String> = by_name[key_column]
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            assert!(!codes.is_empty(), "line {}: no code in backticks", i + 1);
            rows.push(Row {
                line: i + 1,
                status,
                codes,
                cells: by_name,
            });
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashMap};

    #[test]
    fn wire_strings_are_unique_and_round_trip() {
        let mut seen = BTreeSet::new();
        for &c in ErrorCode::ALL {
            assert!(seen.insert(c.as_str()), "{c} twice");
            assert_eq!(ErrorCode::from_wire(c.as_str()), Some(c));
            assert_eq!(c.status().as_u16(), c.spec().status);
        }
        assert_eq!(ErrorCode::from_wire("NoSuchCode"), None);
    }

    /// What differs between the table above and the tables of a Markdown text.
    fn disagreements(text: &str) -> Vec<String> {
        let rows = doc_tables::rows(text, "code");
        let mut problems = Vec::new();
        let mut documented: HashMap<String, Vec<&doc_tables::Row>> = HashMap::new();
        for r in &rows {
            for c in &r.codes {
                documented.entry(c.clone()).or_default().push(r);
            }
        }
        for &code in ErrorCode::ALL {
            let spec = code.spec();
            let Some(rows) = documented.get(code.as_str()) else {
                problems.push(format!("{code} ({}) is not documented", spec.status));
                continue;
            };
            for r in rows {
                if r.status != spec.status {
                    problems.push(format!(
                        "line {}: {code} is documented as {}, answers {}",
                        r.line, r.status, spec.status
                    ));
                }
                let blame = r.cells.get("who is to blame").map(String::as_str).unwrap_or("");
                if blame.split_whitespace().next() != Some(spec.blame.as_str()) {
                    problems.push(format!(
                        "line {}: {code} blames `{blame}`, the table says {}",
                        r.line,
                        spec.blame.as_str()
                    ));
                }
                let when = r.cells.get("when").map(String::as_str).unwrap_or("");
                if when.contains("Retry-After") != spec.retry_after {
                    problems.push(format!(
                        "line {}: {code} {} Retry-After, its `when` says otherwise",
                        r.line,
                        if spec.retry_after { "sends" } else { "does not send" }
                    ));
                }
            }
        }
        let mut gone: Vec<_> = documented
            .iter()
            .filter(|(name, _)| ErrorCode::from_wire(name).is_none())
            .map(|(name, rows)| format!("line {}: {name} is documented but is no code", rows[0].line))
            .collect();
        gone.sort();
        problems.extend(gone);
        problems
    }

    /// The table above against the tables of `docs/errors.md`.
    #[test]
    fn codes_match_docs() {
        let text = doc_tables::read("errors.md");
        let rows = doc_tables::rows(&text, "code").len();
        assert!(rows >= 40, "found only {rows} rows: did the table format change?");
        let problems = disagreements(&text);
        assert!(
            problems.is_empty(),
            "docs/errors.md and codes.rs disagree:\n{}",
            problems.join("\n")
        );
    }

    /// The error codes `docs/openapi.json` lists under each error status (written by hand in
    /// `gust-api`, which cannot see this table) answer with that status here.
    #[test]
    fn the_openapi_documents_codes_with_their_statuses() {
        let doc: serde_json::Value = serde_json::from_str(&doc_tables::read("openapi.json")).unwrap();
        let mut checked = 0;
        let mut problems = Vec::new();
        for (path, ops) in doc["paths"].as_object().unwrap() {
            for (method, op) in ops.as_object().unwrap() {
                for (status, answer) in op["responses"].as_object().into_iter().flatten() {
                    let Ok(status) = status.parse::<u16>() else { continue };
                    if status < 400 {
                        continue;
                    }
                    let text = answer["description"].as_str().unwrap_or("");
                    for code in text.split('`').skip(1).step_by(2) {
                        let Some(c) = ErrorCode::from_wire(code) else { continue };
                        checked += 1;
                        if c.status().as_u16() != status {
                            problems.push(format!(
                                "{method} {path}: {code} is listed under {status}, answers {}",
                                c.status().as_u16()
                            ));
                        }
                    }
                }
            }
        }
        assert!(checked >= 20, "only {checked} codes found in docs/openapi.json");
        assert!(problems.is_empty(), "{}", problems.join("\n"));
    }

    #[test]
    fn a_wrong_doc_is_caught() {
        let doc = "intro\n\n| status | code | when | who is to blame |\n|---|---|---|---|\n\
                   | 418 | `RouteNotFound` / `Teapot` | never | caller |\n\
                   | 429 | `TooManyRequests` | busy | function |\n\n\
                   | a | b |\n|---|---|\n| x | `BadRequest` |\n";
        let problems = disagreements(doc);
        let has = |s: &str| problems.iter().any(|p| p.contains(s));
        assert!(
            has("line 5: RouteNotFound is documented as 418, answers 404"),
            "{problems:#?}"
        );
        assert!(has("line 5: Teapot is documented but is no code"), "{problems:#?}");
        assert!(has("line 6: TooManyRequests blames `function`"), "{problems:#?}");
        assert!(has("line 6: TooManyRequests sends Retry-After"), "{problems:#?}");
        // The last table is about something else: BadRequest is not documented by it.
        assert!(has("BadRequest (400) is not documented"), "{problems:#?}");
        assert_eq!(problems.len(), ErrorCode::ALL.len() - 2 + 4, "{problems:#?}");
    }
}
