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
    /// An AMQP 0-9-1 queue (RabbitMQ), manual acks.
    RabbitMq(RabbitMqSource),
    /// An MQTT 3.1.1 topic filter, QoS 1 with manual acks and a persistent session.
    Mqtt(MqttSource),
    /// A DynamoDB table's stream served by Gust (`gust-aws`): read from a durable checkpoint.
    DynamoDbStream(DynamoDbStreamSource),
}

/// A serverless.yml `stream: {type: dynamodb, arn}` event: the change records of a table Gust
/// serves, in Lambda's DynamoDB stream event shape.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamoDbStreamSource {
    pub table: String,
    /// The ARN the manifest named (shown to handlers as `eventSourceARN` is the real one).
    pub stream_arn: String,
    /// Where a subscription without a checkpoint starts: `LATEST` or `TRIM_HORIZON`.
    pub start: StartPosition,
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

#[derive(Debug, Clone, PartialEq)]
pub struct RabbitMqSource {
    /// `amqp://host:port/vhost` (or `amqps://`); the virtual host is URL-encoded (`%2f` is
    /// `/`). A password in the URL is refused: name a secret in `password_secret`.
    pub url: String,
    pub queue: String,
    /// Default `guest` (RabbitMQ's default user) when neither this nor a password is set.
    pub username: Option<String>,
    pub password_secret: Option<String>,
    /// Unacknowledged deliveries the broker may push (`basic.qos`); default the
    /// subscription's concurrency x batch size.
    pub prefetch: Option<u16>,
    /// The exchange the queue dead-letters to (its `x-dead-letter-exchange`): a dead letter
    /// is `nack`ed without requeue, and RabbitMQ moves it there, instead of Gust's DLQ.
    pub dead_letter_exchange: Option<String>,
    /// The broker ARN a serverless.yml `rabbitmq` event named, shown to handlers as
    /// `eventSourceArn` (not a gust.toml key).
    pub broker_arn: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MqttSource {
    /// `mqtt://host[:port]` (default port 1883).
    pub url: String,
    /// A topic filter (`+` and `#` wildcards allowed).
    pub topic: String,
    /// 1 (at least once, the default) or 0 (at most once).
    pub qos: u8,
    /// Several consumers in one group share the messages (`$share/<group>/<topic>`).
    pub shared_group: Option<String>,
    /// The MQTT client id, which names the broker's session: keep it stable so a restarted
    /// Gust gets what the broker kept for it (default `gust-<host name>-<subscription>`).
    pub client_id: Option<String>,
    pub username: Option<String>,
    pub password_secret: Option<String>,
    /// `false` (the default): the broker keeps the session (subscription and unacknowledged
    /// QoS 1 messages) while Gust is away.
    pub clean_session: bool,
}

impl MqttSource {
    /// The filter Gust subscribes to (with the shared-subscription prefix when grouped).
    pub fn filter(&self) -> String {
        match &self.shared_group {
            Some(g) => format!("$share/{g}/{}", self.topic),
            None => self.topic.clone(),
        }
    }
}

impl RabbitMqSource {
    /// The virtual host named by the URL's path, decoded (`/` when there is none).
    pub fn vhost(&self) -> String {
        let rest = self.url.split_once("://").map(|(_, r)| r).unwrap_or("");
        match rest.split_once('/') {
            None | Some((_, "")) => "/".into(),
            Some((_, path)) => percent_decode(path.split(['?', '#']).next().unwrap_or("")),
        }
    }
}

/// `%XX` escapes decoded (an invalid escape is kept as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl SourceSpec {
    /// The `type` written in the manifest.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RedisStreams(_) => "redis-streams",
            Self::NatsJetStream(_) => "nats-jetstream",
            Self::Nats(_) => "nats",
            Self::RabbitMq(_) => "rabbitmq",
            Self::Mqtt(_) => "mqtt",
            Self::DynamoDbStream(_) => "dynamodb-stream",
        }
    }

    /// Whether a record in flight survives a crash of Gust (core NATS, MQTT QoS 0 or a clean
    /// session: no).
    pub fn at_least_once(&self) -> bool {
        match self {
            Self::Nats(_) => false,
            Self::Mqtt(m) => m.qos == 1 && !m.clean_session,
            _ => true,
        }
    }

    /// The broker's URL without credentials, for logs and the operator API.
    pub fn url(&self) -> &str {
        match self {
            Self::RedisStreams(s) => &s.url,
            Self::NatsJetStream(s) => &s.url,
            Self::Nats(s) => &s.url,
            Self::RabbitMq(s) => &s.url,
            Self::Mqtt(s) => &s.url,
            Self::DynamoDbStream(s) => &s.stream_arn,
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
            Self::RabbitMq(s) => format!("queue {} vhost {}", s.queue, s.vhost()),
            Self::Mqtt(s) => format!("topic {} qos {}", s.filter(), s.qos),
            Self::DynamoDbStream(s) => format!("table {} stream", s.table),
        }
    }

    /// The Gust secret holding the broker password, if any.
    pub fn password_secret(&self) -> Option<&str> {
        match self {
            Self::RedisStreams(s) => s.password_secret.as_deref(),
            Self::NatsJetStream(s) => s.password_secret.as_deref(),
            Self::Nats(s) => s.password_secret.as_deref(),
            Self::RabbitMq(s) => s.password_secret.as_deref(),
            Self::Mqtt(s) => s.password_secret.as_deref(),
            Self::DynamoDbStream(_) => None,
        }
    }

    /// A name part for the subscription's default name (`<function>.<this>`).
    pub fn default_name(&self) -> String {
        let raw = match self {
            Self::RedisStreams(s) => s.stream.clone(),
            Self::NatsJetStream(s) => s.durable.clone(),
            Self::Nats(s) => s.subject.clone(),
            Self::RabbitMq(s) => s.queue.clone(),
            Self::Mqtt(s) => s.topic.replace(['+', '#'], "_"),
            Self::DynamoDbStream(s) => format!("{}-stream", s.table),
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
    queue: Option<String>,
    prefetch: Option<u16>,
    dead_letter_exchange: Option<String>,
    topic: Option<String>,
    qos: Option<u8>,
    shared_group: Option<String>,
    client_id: Option<String>,
    clean_session: Option<bool>,
    /// `dynamodb-stream`: the table (declared under `[dynamodb.tables]`) whose stream is read.
    table: Option<String>,
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
        ("queue", s.queue.is_some()),
        ("prefetch", s.prefetch.is_some()),
        ("dead_letter_exchange", s.dead_letter_exchange.is_some()),
        ("topic", s.topic.is_some()),
        ("qos", s.qos.is_some()),
        ("shared_group", s.shared_group.is_some()),
        ("client_id", s.client_id.is_some()),
        ("clean_session", s.clean_session.is_some()),
        ("table", s.table.is_some()),
        ("url", s.url.is_some()),
        ("username", s.username.is_some()),
        ("password_secret", s.password_secret.is_some()),
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
        "rabbitmq" => &["queue", "prefetch", "dead_letter_exchange"],
        "mqtt" => &["topic", "qos", "shared_group", "client_id", "clean_session"],
        // A table Gust serves itself: no broker, so no URL or credentials.
        "dynamodb-stream" => &["table", "start"],
        other => return Err(e(
            "type",
            format!(
                "unknown source type `{other}`: use \"redis-streams\", \"nats-jetstream\", \"nats\", \"rabbitmq\", \"mqtt\" or \"dynamodb-stream\""
            ),
        )),
    };
    // The broker kinds all take a URL and credentials.
    let allowed: Vec<&str> = if s.kind == "dynamodb-stream" {
        allowed.to_vec()
    } else {
        allowed
            .iter()
            .copied()
            .chain(["url", "username", "password_secret"])
            .collect()
    };
    if let Some((k, _)) = given.iter().find(|(k, v)| **v && !allowed.contains(k)) {
        return Err(e(k, format!("`{k}` does not apply to a `{}` source", s.kind)));
    }
    if s.kind == "dynamodb-stream" {
        let table = match s.table {
            Some(t) if !t.trim().is_empty() => t,
            _ => {
                return Err(e(
                    "table",
                    "a `dynamodb-stream` source needs `table` (a table of `[dynamodb.tables]` with `stream` set)"
                        .into(),
                ))
            }
        };
        let start = match s.start.as_deref() {
            None | Some("latest") => StartPosition::Latest,
            Some("earliest") => StartPosition::Earliest,
            Some(other) => return Err(e("start", format!("`{other}`: use \"latest\" or \"earliest\""))),
        };
        // The ARN handlers see as `eventSourceARN`, as serverless.yml's `Fn::GetAtt: [T,
        // StreamArn]` gives it; the region is the app's (filled in by the manifest reader).
        return Ok(SourceSpec::DynamoDbStream(DynamoDbStreamSource {
            stream_arn: format!("table/{table}/stream/*"),
            table,
            start,
        }));
    }
    let (scheme, default_url) = match s.kind.as_str() {
        "redis-streams" => (&["redis://", "rediss://"][..], "redis://127.0.0.1:6379"),
        "rabbitmq" => (&["amqp://", "amqps://"][..], "amqp://127.0.0.1:5672/%2f"),
        // Plain TCP only: the MQTT client is built without TLS (docs/events.md).
        "mqtt" => (&["mqtt://", "tcp://"][..], "mqtt://127.0.0.1:1883"),
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
        "rabbitmq" => {
            if s.prefetch == Some(0) {
                return Err(e(
                    "prefetch",
                    "0 would let the broker push without limit: give 1..=65535 (or leave it out for concurrency x batch size)".into(),
                ));
            }
            SourceSpec::RabbitMq(RabbitMqSource {
                url,
                queue: need("queue", s.queue)?,
                username: s.username,
                password_secret: s.password_secret,
                prefetch: s.prefetch,
                dead_letter_exchange: name_ok("dead_letter_exchange", s.dead_letter_exchange)?,
                broker_arn: None,
            })
        }
        "mqtt" => {
            let topic = need("topic", s.topic)?;
            if topic.starts_with("$share/") {
                return Err(e(
                    "topic",
                    format!("`{topic}`: give the plain topic and name the group in `shared_group`"),
                ));
            }
            let qos = s.qos.unwrap_or(1);
            if qos > 1 {
                return Err(e(
                    "qos",
                    format!("{qos}: use 1 (at least once, the default) or 0 (at most once); Gust's own delivery is at least once, so QoS 2 would add nothing"),
                ));
            }
            let shared_group = name_ok("shared_group", s.shared_group)?;
            if let Some(g) = shared_group.as_deref().filter(|g| g.contains(['/', '+', '#'])) {
                return Err(e("shared_group", format!("`{g}` must not contain `/`, `+` or `#`")));
            }
            SourceSpec::Mqtt(MqttSource {
                url,
                topic,
                qos,
                shared_group,
                client_id: name_ok("client_id", s.client_id)?,
                username: s.username,
                password_secret: s.password_secret,
                clean_session: s.clean_session.unwrap_or(false),
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

/// A rabbitmq source from a serverless.yml `rabbitmq` event (validated like a gust.toml one);
/// errors are `(key under source, message)`.
pub(crate) fn rabbitmq(
    url: String,
    queue: String,
    username: Option<String>,
    password_secret: Option<String>,
    broker_arn: Option<String>,
) -> Result<SourceSpec, (String, String)> {
    let spec = source(SourceSection {
        kind: "rabbitmq".into(),
        url: Some(url),
        stream: None,
        group: None,
        consumer: None,
        subject: None,
        durable: None,
        queue_group: None,
        start: None,
        ordering_key: None,
        username,
        password_secret,
        dead_letter_stream: None,
        dead_letter_subject: None,
        queue: Some(queue),
        prefetch: None,
        dead_letter_exchange: None,
        topic: None,
        qos: None,
        shared_group: None,
        client_id: None,
        clean_session: None,
        table: None,
    })?;
    Ok(match spec {
        SourceSpec::RabbitMq(r) => SourceSpec::RabbitMq(RabbitMqSource { broker_arn, ..r }),
        other => other,
    })
}

/// `s` with every byte outside the URL path's unreserved set escaped (`/` -> `%2F`).
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rmq(url: &str) -> RabbitMqSource {
        match rabbitmq(url.into(), "q".into(), None, None, None).unwrap() {
            SourceSpec::RabbitMq(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rabbitmq_virtual_hosts_are_decoded_from_the_url() {
        assert_eq!(rmq("amqp://127.0.0.1:5672/%2f").vhost(), "/");
        assert_eq!(rmq("amqp://127.0.0.1:5672").vhost(), "/");
        assert_eq!(rmq("amqp://127.0.0.1:5672/").vhost(), "/");
        assert_eq!(rmq("amqps://mq.example:5671/orders%2Fprod").vhost(), "orders/prod");
        assert_eq!(rmq("amqp://h/shop?heartbeat=10").vhost(), "shop");
        assert_eq!(percent_encode("orders/prod"), "orders%2Fprod");
    }

    #[test]
    fn rabbitmq_sources_refuse_credentials_in_the_url_and_other_schemes() {
        let err = rabbitmq("amqp://guest:guest@127.0.0.1/%2f".into(), "q".into(), None, None, None).unwrap_err();
        assert_eq!(err.0, "url");
        assert!(err.1.contains("password_secret"), "{}", err.1);
        let err = rabbitmq("http://127.0.0.1".into(), "q".into(), None, None, None).unwrap_err();
        assert!(err.1.contains("amqp://"), "{}", err.1);
    }
}
