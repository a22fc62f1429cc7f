//! Redis Streams as a source: a consumer group (created with `MKSTREAM` if absent, at `$` or
//! `0`), `XREADGROUP ... BLOCK` with `COUNT` = batch size, `XACK` after success.
//!
//! Nothing is acked early, so a message is always in the group's pending entries list (PEL)
//! until it is done:
//! - after a (re)connect this consumer first reads its own PEL (`XREADGROUP ... 0`): what a
//!   previous run (or the broken connection) held is delivered again at once;
//! - entries idle longer than the visibility timeout, of any consumer in the group, are taken
//!   over with `XAUTOCLAIM` (a Gust that died on another host);
//! - retry-later leaves the entry pending and claims it again (`XCLAIM`) when its backoff is
//!   over (an in-process timer; after a crash the PEL read above delivers it);
//! - the delivery count (`XPENDING`) is the attempt count.
//!
//! Entries being worked on here are never reclaimed by this consumer's own `XAUTOCLAIM`.
//! Two connections: one for the blocking reads, one shared by the ack handles.

use super::{AckHandle, Source, SourceError, SourceMessage};
use crate::cloudevent::CloudEvent;
use crate::delivery::Record;
use async_trait::async_trait;
use bytes::Bytes;
use gust_model::{RedisStreamsSource, StartPosition, SubscriptionSpec};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Value};
use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries of this consumer that are handed out or waiting for their retry.
#[derive(Default)]
struct Held {
    in_hand: HashSet<String>,
    /// Due time (epoch ms) -> entry ids to claim again then.
    retries: BTreeMap<i64, Vec<String>>,
    /// An ack failed (the connection broke): read this consumer's PEL again.
    rescan: bool,
}

pub struct RedisSource {
    cfg: RedisStreamsSource,
    client: redis::Client,
    consumer: String,
    visibility: Duration,
    reader: Option<MultiplexedConnection>,
    acker: Option<MultiplexedConnection>,
    held: Arc<Mutex<Held>>,
    /// Reading this consumer's own PEL (after a connect): from this id on.
    own_cursor: Option<String>,
    autoclaim_cursor: String,
    last_autoclaim: Instant,
}

fn broker(e: redis::RedisError) -> SourceError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
        SourceError::Connect(e.to_string())
    } else {
        SourceError::Broker(e.to_string())
    }
}

pub(super) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "local".into())
}

impl RedisSource {
    pub fn new(cfg: RedisStreamsSource, sub: &SubscriptionSpec, password: Option<String>) -> Result<Self, SourceError> {
        let mut info = redis::IntoConnectionInfo::into_connection_info(cfg.url.as_str())
            .map_err(|e| SourceError::Config(format!("source url `{}`: {e}", cfg.url)))?;
        let mut settings = info.redis_settings().clone();
        if let Some(u) = &cfg.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &password {
            settings = settings.set_password(p);
        }
        info = info.set_redis_settings(settings);
        let client = redis::Client::open(info).map_err(|e| SourceError::Config(e.to_string()))?;
        let consumer = cfg.consumer.clone().unwrap_or_else(|| format!("gust-{}", host_name()));
        Ok(Self {
            cfg,
            client,
            consumer,
            visibility: sub.visibility_timeout,
            reader: None,
            acker: None,
            held: Arc::default(),
            own_cursor: Some("0".into()),
            autoclaim_cursor: "0-0".into(),
            last_autoclaim: Instant::now(),
        })
    }

    fn reader(&mut self) -> Result<&mut MultiplexedConnection, SourceError> {
        self.reader
            .as_mut()
            .ok_or_else(|| SourceError::Connect("not connected".into()))
    }

    /// Delivery counts of `ids` from the PEL (`XPENDING stream group id id 1`).
    async fn delivery_counts(&mut self, ids: &[String]) -> Result<Vec<u32>, SourceError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.cmd("XPENDING")
                .arg(&self.cfg.stream)
                .arg(&self.cfg.group)
                .arg(id)
                .arg(id)
                .arg(1);
        }
        let replies: Vec<Value> = pipe.query_async(self.reader()?).await.map_err(broker)?;
        Ok(replies
            .iter()
            .map(|v| {
                // [[id, consumer, idle, count]]
                match v {
                    Value::Array(rows) => match rows.first() {
                        Some(Value::Array(row)) => row.get(3).and_then(as_u64).unwrap_or(1) as u32,
                        _ => 1,
                    },
                    _ => 1,
                }
            })
            .collect())
    }

    fn message(&self, id: String, fields: Vec<(String, Vec<u8>)>, delivery_count: u32) -> SourceMessage {
        let published_ms = id
            .split('-')
            .next()
            .and_then(|ms| ms.parse::<i64>().ok())
            .unwrap_or_else(crate::log::now_ms);
        let ordering_key = self.cfg.ordering_key.as_ref().and_then(|k| {
            fields
                .iter()
                .find(|(f, _)| f == k)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        });
        let event = entry_event(&self.cfg.stream, &id, &fields, published_ms);
        self.held.lock().expect("held lock").in_hand.insert(id.clone());
        SourceMessage {
            record: Record {
                message_id: id.clone(),
                receipt: id.clone(),
                attempts: delivery_count.max(1),
                first_ms: published_ms,
                published_ms,
                event,
                native: None,
            },
            delivery_count,
            ordering_key,
            handle: Box::new(RedisAck {
                conn: self.acker.clone().expect("connected"),
                stream: self.cfg.stream.clone(),
                group: self.cfg.group.clone(),
                id,
                fields,
                dead_letter_stream: self.cfg.dead_letter_stream.clone(),
                held: self.held.clone(),
            }),
        }
    }

    /// Entries not held here, with their counts from the PEL.
    async fn take_over(&mut self, entries: Vec<Entry>, out: &mut Vec<SourceMessage>) -> Result<(), SourceError> {
        let fresh: Vec<(String, Fields)> = {
            let held = self.held.lock().expect("held lock");
            entries
                .into_iter()
                .filter(|(id, _)| !held.in_hand.contains(id))
                .filter_map(|(id, f)| f.map(|f| (id, f)))
                .collect()
        };
        let ids: Vec<String> = fresh.iter().map(|(id, _)| id.clone()).collect();
        let counts = self.delivery_counts(&ids).await?;
        for ((id, fields), count) in fresh.into_iter().zip(counts) {
            out.push(self.message(id, fields, count));
        }
        Ok(())
    }
}

#[async_trait]
impl Source for RedisSource {
    async fn connect(&mut self) -> Result<(), SourceError> {
        // Blocking reads must outlive the client's default 500 ms response timeout.
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(super::FETCH_WAIT + Duration::from_secs(10)));
        let mut reader = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(broker)?;
        let acker = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(broker)?;
        let start = match self.cfg.start {
            StartPosition::Latest => "$",
            StartPosition::Earliest => "0",
        };
        let created: Result<Value, _> = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&self.cfg.stream)
            .arg(&self.cfg.group)
            .arg(start)
            .arg("MKSTREAM")
            .query_async(&mut reader)
            .await;
        match created {
            Ok(_) => {
                tracing::info!(stream = %self.cfg.stream, group = %self.cfg.group, start, "created the consumer group")
            }
            Err(e) if e.code() == Some("BUSYGROUP") => {}
            Err(e) => return Err(broker(e)),
        }
        self.reader = Some(reader);
        self.acker = Some(acker);
        // What this consumer held before (a previous run, a broken connection) comes first.
        self.own_cursor = Some("0".into());
        Ok(())
    }

    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceMessage>, SourceError> {
        let mut out = Vec::new();
        if std::mem::take(&mut self.held.lock().expect("held lock").rescan) {
            self.own_cursor = Some("0".into());
        }
        // 1. This consumer's own pending entries, after a connect or a failed ack.
        while let Some(cursor) = self.own_cursor.clone() {
            if out.len() >= max {
                return Ok(out);
            }
            let v: Value = redis::cmd("XREADGROUP")
                .arg("GROUP")
                .arg(&self.cfg.group)
                .arg(&self.consumer)
                .arg("COUNT")
                .arg(max)
                .arg("STREAMS")
                .arg(&self.cfg.stream)
                .arg(&cursor)
                .query_async(self.reader()?)
                .await
                .map_err(broker)?;
            let entries = read_reply(&v);
            match entries.last() {
                None => self.own_cursor = None,
                Some((last, _)) => self.own_cursor = Some(last.clone()),
            }
            // Reading its history does not count a delivery; the PEL's count is the one.
            self.take_over(entries, &mut out).await?;
        }
        // 2. Retries whose backoff is over: claimed again (which counts a delivery).
        let due: Vec<String> = {
            let mut held = self.held.lock().expect("held lock");
            let now = crate::log::now_ms();
            let later = held.retries.split_off(&(now + 1));
            let due = std::mem::replace(&mut held.retries, later);
            let ids: Vec<String> = due.into_values().flatten().collect();
            for id in &ids {
                held.in_hand.remove(id);
            }
            ids
        };
        if !due.is_empty() {
            let mut cmd = redis::cmd("XCLAIM");
            cmd.arg(&self.cfg.stream)
                .arg(&self.cfg.group)
                .arg(&self.consumer)
                .arg(0);
            for id in &due {
                cmd.arg(id);
            }
            let v: Value = cmd.query_async(self.reader()?).await.map_err(broker)?;
            self.take_over(entries_of(&v), &mut out).await?;
        }
        // 3. Entries idle past the visibility timeout, of any consumer (a Gust that died).
        let every = (self.visibility / 2).min(Duration::from_secs(10));
        if self.last_autoclaim.elapsed() >= every && out.len() < max {
            self.last_autoclaim = Instant::now();
            let v: Value = redis::cmd("XAUTOCLAIM")
                .arg(&self.cfg.stream)
                .arg(&self.cfg.group)
                .arg(&self.consumer)
                .arg(self.visibility.as_millis() as u64)
                .arg(&self.autoclaim_cursor)
                .arg("COUNT")
                .arg(max - out.len())
                .query_async(self.reader()?)
                .await
                .map_err(broker)?;
            if let Value::Array(parts) = &v {
                self.autoclaim_cursor = parts.first().and_then(as_string).unwrap_or_else(|| "0-0".into());
                if let Some(list) = parts.get(1) {
                    self.take_over(entries_of(list), &mut out).await?;
                }
            }
        }
        if out.len() >= max {
            return Ok(out);
        }
        // 4. New entries: block only when there is nothing yet, and not past the next retry.
        let mut block = if out.is_empty() { wait } else { Duration::ZERO };
        if let Some(next) = self.held.lock().expect("held lock").retries.keys().next() {
            let until = Duration::from_millis((next - crate::log::now_ms()).max(1) as u64);
            block = block.min(until);
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(&self.cfg.group)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max - out.len());
        if !block.is_zero() {
            cmd.arg("BLOCK").arg(block.as_millis() as u64);
        }
        cmd.arg("STREAMS").arg(&self.cfg.stream).arg(">");
        let v: Value = cmd.query_async(self.reader()?).await.map_err(broker)?;
        for (id, fields) in read_reply(&v) {
            if let Some(fields) = fields {
                out.push(self.message(id, fields, 1));
            }
        }
        Ok(out)
    }

    async fn lag(&mut self) -> Option<u64> {
        let conn = self.reader.as_mut()?;
        let reply: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&self.cfg.stream)
            .query_async(conn)
            .await
            .ok()?;
        let g = reply.groups.into_iter().find(|g| g.name == self.cfg.group)?;
        // Not yet read by the group, plus read and not yet acknowledged.
        Some(g.lag.unwrap_or(0) as u64 + g.pending as u64)
    }
}

struct RedisAck {
    conn: MultiplexedConnection,
    stream: String,
    group: String,
    id: String,
    fields: Vec<(String, Vec<u8>)>,
    dead_letter_stream: Option<String>,
    held: Arc<Mutex<Held>>,
}

#[async_trait]
impl AckHandle for RedisAck {
    async fn ack(&self) -> Result<(), SourceError> {
        // Whatever the answer, it is not held here any more: if the XACK was lost, the
        // entry is still pending and the PEL read after the reconnect delivers it again.
        self.held.lock().expect("held lock").in_hand.remove(&self.id);
        let mut conn = self.conn.clone();
        let acked: Result<i64, _> = redis::cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.id)
            .query_async(&mut conn)
            .await;
        if let Err(e) = acked {
            self.held.lock().expect("held lock").rescan = true;
            return Err(broker(e));
        }
        Ok(())
    }

    async fn retry_later(&self, delay: Duration) -> Result<(), SourceError> {
        let at = crate::log::now_ms() + delay.as_millis() as i64;
        let mut held = self.held.lock().expect("held lock");
        held.retries.entry(at).or_default().push(self.id.clone());
        Ok(())
    }

    async fn dead_letter(&self, reason: &str, error: &str) -> Result<bool, SourceError> {
        let Some(target) = &self.dead_letter_stream else {
            return Ok(false);
        };
        let mut conn = self.conn.clone();
        let mut add = redis::cmd("XADD");
        add.arg(target).arg("*");
        for (k, v) in &self.fields {
            add.arg(k).arg(v.as_slice());
        }
        add.arg("gust-reason")
            .arg(reason)
            .arg("gust-error")
            .arg(error)
            .arg("gust-stream")
            .arg(&self.stream)
            .arg("gust-id")
            .arg(&self.id);
        // Added to the dead-letter stream first; only then acked.
        let mut pipe = redis::pipe();
        pipe.atomic().add_command(add).ignore();
        pipe.cmd("XACK")
            .arg(&self.stream)
            .arg(&self.group)
            .arg(&self.id)
            .ignore();
        self.held.lock().expect("held lock").in_hand.remove(&self.id);
        let done: Result<(), _> = pipe.query_async(&mut conn).await;
        if let Err(e) = done {
            self.held.lock().expect("held lock").rescan = true;
            return Err(broker(e));
        }
        Ok(true)
    }
}

fn as_string(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn as_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Int(i) => Some(*i as u64),
        other => as_string(other)?.parse().ok(),
    }
}

/// An entry's fields, in order.
type Fields = Vec<(String, Vec<u8>)>;
/// An entry id with its fields (`None`: deleted since it was read).
type Entry = (String, Option<Fields>);

/// `[[id, [field, value, ...] | nil], ...]`: entries (nil fields: deleted since).
fn entries_of(v: &Value) -> Vec<Entry> {
    let Value::Array(items) = v else { return vec![] };
    items
        .iter()
        .filter_map(|e| {
            let Value::Array(pair) = e else { return None };
            let id = as_string(pair.first()?)?;
            let fields = match pair.get(1) {
                Some(Value::Array(kv)) => Some(
                    kv.chunks(2)
                        .filter_map(|c| {
                            let k = as_string(c.first()?)?;
                            let v = match c.get(1)? {
                                Value::BulkString(b) => b.clone(),
                                other => as_string(other)?.into_bytes(),
                            };
                            Some((k, v))
                        })
                        .collect(),
                ),
                Some(Value::Map(kv)) => Some(
                    kv.iter()
                        .filter_map(|(k, v)| Some((as_string(k)?, as_string(v)?.into_bytes())))
                        .collect(),
                ),
                _ => None,
            };
            Some((id, fields))
        })
        .collect()
}

/// An `XREADGROUP` reply, `[[stream, entries]]` (RESP2) or `{stream: entries}` (RESP3).
fn read_reply(v: &Value) -> Vec<Entry> {
    match v {
        Value::Array(streams) => streams
            .iter()
            .flat_map(|s| match s {
                Value::Array(pair) => pair.get(1).map(entries_of).unwrap_or_default(),
                _ => vec![],
            })
            .collect(),
        Value::Map(m) => m.iter().flat_map(|(_, e)| entries_of(e)).collect(),
        _ => vec![],
    }
}

/// A stream entry as a CloudEvent. Fields named `ce-<attribute>` set that attribute (as
/// CloudEvents' binary mode does with headers) and are not part of the data; the data is the
/// `data` field when that is the only other field, else a JSON object of the other fields.
/// Defaults: `id` the entry id, `source` `/redis-streams/<stream>`, `type`
/// `gust.redis-streams.entry`, `subject` the stream, `time` the entry id's timestamp.
pub(crate) fn entry_event(stream: &str, id: &str, fields: &[(String, Vec<u8>)], published_ms: i64) -> CloudEvent {
    let mut event = CloudEvent::internal("gust.redis-streams.entry", Bytes::new());
    event.id = id.to_string();
    event.source = format!("/redis-streams/{stream}");
    event.subject = Some(stream.to_string());
    event.time = chrono::DateTime::from_timestamp_millis(published_ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let mut rest: Vec<&(String, Vec<u8>)> = Vec::new();
    for f in fields {
        let Some(attr) = f.0.strip_prefix("ce-") else {
            rest.push(f);
            continue;
        };
        let value = String::from_utf8_lossy(&f.1).into_owned();
        if !event.set_attribute(attr, value) {
            rest.push(f);
        }
    }
    event.data = match rest.as_slice() {
        [(k, v)] if k == "data" => Bytes::from(v.clone()),
        _ => {
            let map: serde_json::Map<String, serde_json::Value> = rest
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        serde_json::Value::String(String::from_utf8_lossy(v).into_owned()),
                    )
                })
                .collect();
            if event.datacontenttype.is_none() {
                event.datacontenttype = Some("application/json".into());
            }
            Bytes::from(serde_json::to_vec(&map).expect("a string map serialises"))
        }
    };
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_becomes_a_cloudevent() {
        let f = |k: &str, v: &str| (k.to_string(), v.as_bytes().to_vec());
        let e = entry_event(
            "orders",
            "1700000000000-0",
            &[f("data", "{\"id\":1}")],
            1_700_000_000_000,
        );
        assert_eq!(
            (e.id.as_str(), e.source.as_str()),
            ("1700000000000-0", "/redis-streams/orders")
        );
        assert_eq!(e.event_type, "gust.redis-streams.entry");
        assert_eq!(e.time.as_deref(), Some("2023-11-14T22:13:20.000Z"));
        assert_eq!(&e.data[..], b"{\"id\":1}");

        let e = entry_event(
            "orders",
            "1-0",
            &[
                f("ce-type", "order.created"),
                f("ce-id", "o-1"),
                f("ce-region", "eu"),
                f("id", "1"),
                f("total", "9"),
            ],
            1,
        );
        assert_eq!((e.id.as_str(), e.event_type.as_str()), ("o-1", "order.created"));
        assert_eq!(e.extensions["region"], "eu");
        let data: serde_json::Value = serde_json::from_slice(&e.data).unwrap();
        assert_eq!(data, serde_json::json!({ "id": "1", "total": "9" }));
    }

    #[test]
    fn replies_parse_including_deleted_entries() {
        let b = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let v = Value::Array(vec![Value::Array(vec![
            b("orders"),
            Value::Array(vec![
                Value::Array(vec![b("1-0"), Value::Array(vec![b("data"), b("x")])]),
                Value::Array(vec![b("2-0"), Value::Nil]),
            ]),
        ])]);
        let e = read_reply(&v);
        assert_eq!(e.len(), 2);
        assert_eq!(
            e[0],
            ("1-0".to_string(), Some(vec![("data".to_string(), b"x".to_vec())]))
        );
        assert_eq!(e[1], ("2-0".to_string(), None));
    }
}
