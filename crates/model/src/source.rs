//! Broker event sources a subscription may read from instead of a Gust topic
//! (`source = { type = "redis-streams", ... }` in `gust.toml`; `docs/events.md`).
//!
//! This module owns the validated description only (no I/O): which broker, where, which
//! stream/subject/group, where credentials come from (the *name* of a Gust secret, never a
//! value), and the broker-side dead-letter target when the user names one. `gust-events`
//! connects from it.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Where a subscription's records come from when it reads a broker directly.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSpec {
    RedisStreams(RedisStreamsSource),
    NatsJetStream(JetStreamSource),
    /// Core NATS: at-most-once (a message in flight when Gust dies is lost).
    Nats(CoreNatsSource),
}

/// Where a new consumer group (or consumer) starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartPosition {
    /// Only records added after the group was created (`$`, JetStream `DeliverPolicy::New`).
    Latest,
    /// Everything the stream holds (`0`, JetStream `DeliverPolicy::All`).
    Earliest,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisStreamsSource {
    /// `redis://host:port[/db]` (or `rediss://` for TLS); a password in the URL is refused:
    /// name a secret in `password_secret`.
    pub url: String,
    pub stream: String,
    pub group: String,
    /// This Gust's consumer name in the group (default `gust-<host name>`); keep it stable,
    /// so pending entries of a previous run are taken up again at start.
    pub consumer: Option<String>,
    pub start: StartPosition,
    /// A field of the entry whose value keeps order: same value, in order; different values
    /// concurrently.
    pub ordering_key: Option<String>,
    pub username: Option<String>,
    pub password_secret: Option<String>,
    /// A stream dead letters are added to (then acked) instead of Gust's DLQ.
    pub dead_letter_stream: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JetStreamSource {
    pub url: String,
    pub stream: String,
    /// The subject filter of the consumer (and the stream's subject if Gust creates it).
    pub subject: String,
    pub durable: String,
    pub start: StartPosition,
    pub username: Option<String>,
    pub password_secret: Option<String>,
    /// A subject dead letters are published to (then terminated) instead of Gust's DLQ.
    pub dead_letter_subject: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CoreNatsSource {
    pub url: String,
    pub subject: String,
    /// Several Gusts (or other consumers) in one queue group share the messages.
    pub queue_group: Option<String>,
    pub username: Option<String>,
    pub password_secret: Option<String>,
}

impl SourceSpec {
    /// The `type` written in the manifest.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RedisStreams(_) => "redis-streams",
            Self::NatsJetStream(_) => "nats-jetstream",
            Self::Nats(_) => "nats",
        }
    }

    /// Whether a record in flight survives a crash of Gust (core NATS: no).
    pub fn at_least_once(&self) -> bool {
        !matches!(self, Self::Nats(_))
    }

    /// The broker's URL without credentials, for logs and the operator API.
    pub fn url(&self) -> &str {
        match self {
            Self::RedisStreams(s) => &s.url,
            Self::NatsJetStream(s) => &s.url,
            Self::Nats(s) => &s.url,
        }
    }

    /// What is read: the stream or the subject.
    pub fn address(&self) -> String {
        match self {
            Self::RedisStreams(s) => format!("stream {} group {}", s.stream, s.group),
            Self::NatsJetStream(s) => format!("stream {} subject {} durable {}", s.stream, s.subject, s.durable),
            Self::Nats(s) => match &s.queue_group {
                Some(q) => format!("subject {} queue group {q}", s.subject),
                None => format!("subject {}", s.subject),
            },
        }
    }

    /// The Gust secret holding the broker password, if any.
    pub fn password_secret(&self) -> Option<&str> {
        match self {
            Self::RedisStreams(s) => s.password_secret.as_deref(),
            Self::NatsJetStream(s) => s.password_secret.as_deref(),
            Self::Nats(s) => s.password_secret.as_deref(),
        }
    }

    /// A name part for the subscription's default name (`<function>.<this>`).
    pub fn default_name(&self) -> String {
        let raw = match self {
            Self::RedisStreams(s) => s.stream.clone(),
            Self::NatsJetStream(s) => s.durable.clone(),
            Self::Nats(s) => s.subject.clone(),
        };
        raw.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    }
}

/// The `source` table as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SourceSection {
    #[serde(rename = "type")]
    kind: String,
    url: Option<String>,
    stream: Option<String>,
    group: Option<String>,
    consumer: Option<String>,
    subject: Option<String>,
    durable: Option<String>,
    queue_group: Option<String>,
    start: Option<String>,
    ordering_key: Option<String>,
    username: Option<String>,
    password_secret: Option<String>,
    dead_letter_stream: Option<String>,
    dead_letter_subject: Option<String>,
}

/// Validates a `source` table; errors are `(key under source, message)`.
pub(crate) fn source(s: SourceSection) -> Result<SourceSpec, (String, String)> {
    let e = |k: &str, m: String| (k.to_string(), m);
    let mut given: BTreeMap<&str, bool> = BTreeMap::new();
    for (k, v) in [
        ("stream", s.stream.is_some()),
        ("group", s.group.is_some()),
        ("consumer", s.consumer.is_some()),
        ("subject", s.subject.is_some()),
        ("durable", s.durable.is_some()),
        ("queue_group", s.queue_group.is_some()),
        ("start", s.start.is_some()),
        ("ordering_key", s.ordering_key.is_some()),
        ("dead_letter_stream", s.dead_letter_stream.is_some()),
        ("dead_letter_subject", s.dead_letter_subject.is_some()),
    ] {
        given.insert(k, v);
    }
    let allowed: &[&str] = match s.kind.as_str() {
        "redis-streams" => &[
            "stream",
            "group",
            "consumer",
            "start",
            "ordering_key",
            "dead_letter_stream",
        ],
        "nats-jetstream" => &["stream", "subject", "durable", "start", "dead_letter_subject"],
        "nats" => &["subject", "queue_group"],
        other => {
            return Err(e(
                "type",
                format!("unknown source type `{other}`: use \"redis-streams\", \"nats-jetstream\" or \"nats\""),
            ))
        }
    };
    if let Some((k, _)) = given.iter().find(|(k, v)| **v && !allowed.contains(k)) {
        return Err(e(k, format!("`{k}` does not apply to a `{}` source", s.kind)));
    }
    let (scheme, default_url) = match s.kind.as_str() {
        "redis-streams" => (&["redis://", "rediss://"][..], "redis://127.0.0.1:6379"),
        _ => (&["nats://", "tls://"][..], "nats://127.0.0.1:4222"),
    };
    let url = s.url.unwrap_or_else(|| default_url.to_string());
    if !scheme.iter().any(|p| url.starts_with(p)) {
        return Err(e("url", format!("`{url}` must start with {}", scheme.join(" or "))));
    }
    let authority = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let authority = authority.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(e(
            "url",
            format!("`{url}` carries credentials: put the password in a Gust secret and name it in `password_secret` (and the user in `username`)"),
        ));
    }
    if authority.is_empty() {
        return Err(e("url", format!("`{url}` names no host")));
    }
    if let Some(p) = &s.password_secret {
        if p.is_empty() || !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(e(
                "password_secret",
                format!("`{p}` is not a secret name (letters, digits and `_`)"),
            ));
        }
    }
    let start = match s.start.as_deref() {
        None | Some("latest") => StartPosition::Latest,
        Some("earliest") => StartPosition::Earliest,
        Some(other) => return Err(e("start", format!("`{other}`: use \"latest\" or \"earliest\""))),
    };
    let need = |k: &str, v: Option<String>| -> Result<String, (String, String)> {
        match v {
            Some(v) if !v.trim().is_empty() && !v.contains(char::is_whitespace) => Ok(v),
            Some(v) => Err(e(k, format!("`{v}` must be a non-empty name without spaces"))),
            None => Err(e(k, format!("a `{}` source needs `{k}`", s.kind))),
        }
    };
    let name_ok = |k: &str, v: Option<String>| -> Result<Option<String>, (String, String)> {
        v.map(|v| need(k, Some(v))).transpose()
    };
    Ok(match s.kind.as_str() {
        "redis-streams" => SourceSpec::RedisStreams(RedisStreamsSource {
            url,
            stream: need("stream", s.stream)?,
            group: need("group", s.group)?,
            consumer: name_ok("consumer", s.consumer)?,
            start,
            ordering_key: name_ok("ordering_key", s.ordering_key)?,
            username: s.username,
            password_secret: s.password_secret,
            dead_letter_stream: name_ok("dead_letter_stream", s.dead_letter_stream)?,
        }),
        "nats-jetstream" => {
            let stream = need("stream", s.stream)?;
            if stream.contains(['.', '*', '>']) {
                return Err(e(
                    "stream",
                    format!("`{stream}`: a JetStream stream name has no `.`, `*` or `>`"),
                ));
            }
            let durable = need("durable", s.durable)?;
            if durable.contains(['.', '*', '>']) {
                return Err(e(
                    "durable",
                    format!("`{durable}`: a consumer name has no `.`, `*` or `>`"),
                ));
            }
            SourceSpec::NatsJetStream(JetStreamSource {
                url,
                stream,
                subject: need("subject", s.subject)?,
                durable,
                start,
                username: s.username,
                password_secret: s.password_secret,
                dead_letter_subject: name_ok("dead_letter_subject", s.dead_letter_subject)?,
            })
        }
        _ => SourceSpec::Nats(CoreNatsSource {
            url,
            subject: need("subject", s.subject)?,
            queue_group: name_ok("queue_group", s.queue_group)?,
            username: s.username,
            password_secret: s.password_secret,
        }),
    })
}
