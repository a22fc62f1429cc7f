//! A DynamoDB table's stream (served by `gust-aws`) as an event source: serverless.yml
//! `stream: {type: dynamodb, arn: ...}`.
//!
//! Records come from [`DynamoDb::read_stream`], already in Lambda's DynamoDB stream record
//! shape; each is the data of one [`Record`] (so a dead letter keeps the whole record and a
//! redrive delivers it in the same shape). Order per partition key: the ordering key is the
//! partition key's value, and the worker runs this source in ordered lanes.
//!
//! The checkpoint (the sequence number after which reading resumes) is stored in aws.db
//! (`ddb_stream_checkpoint`), next to the records it points into: one file holds both, so a
//! removed or restored aws.db never leaves a checkpoint pointing into records that are not
//! there, and the event log's trait (with more than one backend) needs no new operation. It
//! advances only over settled records: to just before the oldest record still in flight, or to
//! the last one read when none is. A crash delivers again what was not settled (at least once).

use super::{AckHandle, Source, SourceError, SourceMessage, FETCH_WAIT};
use crate::cloudevent::CloudEvent;
use crate::delivery::Record;
use async_trait::async_trait;
use bytes::Bytes;
use gust_aws::dynamodb::DynamoDb;
use gust_model::{DynamoDbStreamSource, StartPosition};
use serde_json::Value as Json;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often an idle stream is read again while a fetch waits.
const POLL: Duration = Duration::from_millis(100);
/// Records counted for the lag at most.
const LAG_LIMIT: usize = 10_000;

/// Where the tables are: the database and the app and region they belong to.
#[derive(Clone)]
pub struct Tables {
    pub db: Arc<DynamoDb>,
    pub app: String,
    pub region: String,
}

impl std::fmt::Debug for Tables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tables").field("app", &self.app).finish()
    }
}

/// What is read and not yet settled.
#[derive(Default)]
struct Cursor {
    /// Set at the first connect: the checkpoint (or the start position's sequence number).
    started: bool,
    /// The last sequence number read.
    read: i64,
    /// The checkpoint last stored.
    committed: i64,
    /// Read and not yet settled.
    pending: BTreeSet<i64>,
    /// Given back for a later delivery: seq -> (due, record, deliveries so far).
    redeliver: BTreeMap<i64, (Instant, Json, u32)>,
}

pub struct DynamoDbStream {
    cfg: DynamoDbStreamSource,
    tables: Tables,
    consumer: String,
    hash_key: String,
    cursor: Arc<Mutex<Cursor>>,
}

impl DynamoDbStream {
    /// `subscription` names the checkpoint (with the app): keep it stable.
    pub fn new(cfg: DynamoDbStreamSource, subscription: &str, tables: Tables) -> Self {
        Self {
            consumer: format!("{}/{subscription}", tables.app),
            cfg,
            tables,
            hash_key: String::new(),
            cursor: Arc::new(Mutex::new(Cursor::default())),
        }
    }

    fn message(&self, seq: i64, record: Json, delivery_count: u32) -> SourceMessage {
        let id = record["eventID"]
            .as_str()
            .map_or_else(|| seq.to_string(), str::to_string);
        let name = record["eventName"].as_str().unwrap_or("RECORD").to_string();
        let ordering_key = record["dynamodb"]["Keys"].get(&self.hash_key).map(|v| v.to_string());
        let published_ms = record["dynamodb"]["ApproximateCreationDateTime"]
            .as_f64()
            .map_or_else(crate::log::now_ms, |s| (s * 1000.0) as i64);
        let mut event = CloudEvent::internal(
            &format!("aws.dynamodb.{}", name.to_ascii_lowercase()),
            Bytes::from(serde_json::to_vec(&record).expect("JSON values serialise")),
        );
        event.id = id.clone();
        event.source = format!("/dynamodb/{}", self.cfg.table);
        event.subject = Some(self.cfg.table.clone());
        event.datacontenttype = Some("application/json".into());
        SourceMessage {
            record: Record {
                message_id: id,
                receipt: seq.to_string(),
                attempts: delivery_count.max(1),
                first_ms: published_ms,
                published_ms,
                event,
                native: None,
            },
            delivery_count,
            ordering_key,
            handle: Box::new(StreamAck {
                seq,
                record,
                delivery_count,
                db: self.tables.db.clone(),
                consumer: self.consumer.clone(),
                cursor: self.cursor.clone(),
            }),
        }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&DynamoDb, &Tables) -> gust_aws::dynamodb::Result<T> + Send + 'static,
    ) -> Result<T, SourceError> {
        let tables = self.tables.clone();
        tokio::task::spawn_blocking(move || f(&tables.db, &tables))
            .await
            .map_err(|e| SourceError::Connect(format!("DynamoDB worker: {e}")))?
            .map_err(|e| SourceError::Broker(e.to_string()))
    }
}

#[async_trait]
impl Source for DynamoDbStream {
    async fn connect(&mut self) -> Result<(), SourceError> {
        let table = self.cfg.table.clone();
        let consumer = self.consumer.clone();
        let start = self.cfg.start;
        let started = self.cursor.lock().expect("cursor lock").started;
        let (head, checkpoint) = self
            .blocking(move |db, t| {
                let head = db.stream_head(&t.app, &table)?;
                let checkpoint = if started {
                    None
                } else {
                    db.stream_checkpoint(&consumer)?
                };
                // LATEST is fixed at the first start: what is written after it is delivered,
                // also while Gust is down later.
                if let (Some((_, last)), None, false, StartPosition::Latest) = (&head, checkpoint, started, start) {
                    db.save_stream_checkpoint(&consumer, *last)?;
                }
                Ok((head, checkpoint))
            })
            .await?;
        let Some((hash_key, last)) = head else {
            return Err(SourceError::Broker(format!(
                "the table {} does not exist or has no stream (StreamSpecification)",
                self.cfg.table
            )));
        };
        self.hash_key = hash_key;
        let mut c = self.cursor.lock().expect("cursor lock");
        if !c.started {
            let from = checkpoint.unwrap_or(match start {
                StartPosition::Latest => last,
                StartPosition::Earliest => 0,
            });
            c.started = true;
            c.read = from;
            c.committed = from;
        }
        Ok(())
    }

    async fn fetch(&mut self, max: usize, wait: Duration) -> Result<Vec<SourceMessage>, SourceError> {
        let deadline = Instant::now() + wait.min(FETCH_WAIT);
        loop {
            let (due, after) = {
                let mut c = self.cursor.lock().expect("cursor lock");
                let now = Instant::now();
                let ready: Vec<i64> = c
                    .redeliver
                    .iter()
                    .filter(|(_, (at, _, _))| *at <= now)
                    .map(|(s, _)| *s)
                    .take(max)
                    .collect();
                let due: Vec<(i64, Json, u32)> = ready
                    .into_iter()
                    .filter_map(|s| c.redeliver.remove(&s).map(|(_, r, n)| (s, r, n + 1)))
                    .collect();
                (due, c.read)
            };
            if !due.is_empty() {
                return Ok(due.into_iter().map(|(s, r, n)| self.message(s, r, n)).collect());
            }
            let table = self.cfg.table.clone();
            let read = self
                .blocking(move |db, t| db.read_stream(&t.app, &t.region, &table, after, max))
                .await?
                .ok_or_else(|| SourceError::Broker(format!("the table {} has no stream", self.cfg.table)))?;
            if !read.is_empty() {
                let mut c = self.cursor.lock().expect("cursor lock");
                for (seq, _) in &read {
                    c.pending.insert(*seq);
                    c.read = c.read.max(*seq);
                }
                drop(c);
                return Ok(read.into_iter().map(|(s, r)| self.message(s, r, 1)).collect());
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn lag(&mut self) -> Option<u64> {
        let table = self.cfg.table.clone();
        let committed = self.cursor.lock().expect("cursor lock").committed;
        self.blocking(move |db, t| db.stream_backlog(&t.app, &table, committed, LAG_LIMIT))
            .await
            .ok()
            .flatten()
    }
}

/// Settles one stream record: done moves the checkpoint over it (when nothing older is still
/// in flight); a retry gives it back to the source for a later fetch.
struct StreamAck {
    seq: i64,
    record: Json,
    delivery_count: u32,
    db: Arc<DynamoDb>,
    consumer: String,
    cursor: Arc<Mutex<Cursor>>,
}

#[async_trait]
impl AckHandle for StreamAck {
    async fn ack(&self) -> Result<(), SourceError> {
        let to = {
            let mut c = self.cursor.lock().expect("cursor lock");
            c.pending.remove(&self.seq);
            let to = c.pending.first().map_or(c.read, |oldest| oldest - 1);
            if to <= c.committed {
                return Ok(());
            }
            c.committed = to;
            to
        };
        let (db, consumer) = (self.db.clone(), self.consumer.clone());
        tokio::task::spawn_blocking(move || db.save_stream_checkpoint(&consumer, to))
            .await
            .map_err(|e| SourceError::Connect(format!("DynamoDB worker: {e}")))?
            .map_err(|e| SourceError::Broker(format!("storing the stream checkpoint: {e}")))
    }

    async fn retry_later(&self, delay: Duration) -> Result<(), SourceError> {
        let mut c = self.cursor.lock().expect("cursor lock");
        c.redeliver.insert(
            self.seq,
            (Instant::now() + delay, self.record.clone(), self.delivery_count),
        );
        Ok(())
    }

    async fn dead_letter(&self, _reason: &str, _error: &str) -> Result<bool, SourceError> {
        // No stream-side target (Lambda's on-failure destination is Gust's DLQ here).
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(db: &DynamoDb, op: &str, body: Json) {
        db.handle(
            "app",
            "us-east-1",
            &format!("DynamoDB_20120810.{op}"),
            body.to_string().as_bytes(),
        )
        .unwrap();
    }

    fn open(path: &std::path::Path) -> Tables {
        Tables {
            db: Arc::new(DynamoDb::open(path).unwrap()),
            app: "app".into(),
            region: "us-east-1".into(),
        }
    }

    fn put(db: &DynamoDb, id: &str, n: u32) {
        let item = serde_json::json!({"id": {"S": id}, "n": {"N": n.to_string()}});
        call(db, "PutItem", serde_json::json!({"TableName": "tab", "Item": item}));
    }

    fn source(tables: &Tables, start: StartPosition) -> DynamoDbStream {
        let cfg = DynamoDbStreamSource {
            table: "tab".into(),
            stream_arn: "arn:aws:dynamodb:us-east-1:000000000000:table/tab/stream/*".into(),
            start,
        };
        DynamoDbStream::new(cfg, "f.tab-stream", tables.clone())
    }

    fn names(batch: &[SourceMessage]) -> Vec<String> {
        batch
            .iter()
            .map(|m| {
                let r: Json = serde_json::from_slice(&m.record.event.data).unwrap();
                format!(
                    "{}:{}",
                    r["eventName"].as_str().unwrap(),
                    r["dynamodb"]["NewImage"]["n"]["N"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn the_checkpoint_moves_only_over_settled_records_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("aws.db");
        let tables = open(&path);
        call(
            &tables.db,
            "CreateTable",
            serde_json::json!({
                "TableName": "tab", "BillingMode": "PAY_PER_REQUEST",
                "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
                "StreamSpecification": {"StreamEnabled": true, "StreamViewType": "NEW_AND_OLD_IMAGES"}
            }),
        );
        put(&tables.db, "a", 1);
        // LATEST starts after what the stream already holds.
        let mut latest = source(&tables, StartPosition::Latest);
        latest.connect().await.unwrap();
        put(&tables.db, "b", 2);
        put(&tables.db, "a", 3);
        let batch = latest.fetch(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(names(&batch), ["INSERT:2", "MODIFY:3"]);
        assert_eq!(batch[0].ordering_key.as_deref(), Some(r#"{"S":"b"}"#));
        assert_eq!(batch[1].ordering_key.as_deref(), Some(r#"{"S":"a"}"#));
        // The second settles first: the checkpoint stays before the first.
        batch[1].handle.ack().await.unwrap();
        assert_eq!(latest.lag().await, Some(2));
        // A retry comes back from the source, counted as another delivery.
        batch[0].handle.retry_later(Duration::ZERO).await.unwrap();
        let again = latest.fetch(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(names(&again), ["INSERT:2"]);
        assert_eq!(again[0].delivery_count, 2);
        drop((batch, again, latest));

        // A restart (the same file) reads on from the checkpoint: the unsettled one again.
        let tables = open(&path);
        let mut reopened = source(&tables, StartPosition::Latest);
        reopened.connect().await.unwrap();
        let batch = reopened.fetch(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(names(&batch), ["INSERT:2", "MODIFY:3"], "at least once after a crash");
        for m in &batch {
            m.handle.ack().await.unwrap();
        }
        assert_eq!(reopened.lag().await, Some(0));
        assert!(reopened.fetch(10, Duration::from_millis(10)).await.unwrap().is_empty());
        let tables = open(&path);
        let mut third = source(&tables, StartPosition::Latest);
        third.connect().await.unwrap();
        assert!(
            third.fetch(10, Duration::from_millis(10)).await.unwrap().is_empty(),
            "all settled"
        );

        // TRIM_HORIZON (another subscription, no checkpoint yet) reads everything kept.
        let cfg = DynamoDbStreamSource {
            table: "tab".into(),
            stream_arn: String::new(),
            start: StartPosition::Earliest,
        };
        let mut oldest = DynamoDbStream::new(cfg, "g.tab-stream", tables.clone());
        oldest.connect().await.unwrap();
        let all = oldest.fetch(10, Duration::from_millis(10)).await.unwrap();
        assert_eq!(names(&all), ["INSERT:1", "INSERT:2", "MODIFY:3"]);
    }

    #[tokio::test]
    async fn a_table_without_a_stream_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let tables = open(&dir.path().join("aws.db"));
        let mut s = source(&tables, StartPosition::Latest);
        let e = s.connect().await.unwrap_err().to_string();
        assert!(e.contains("the table tab does not exist or has no stream"), "{e}");
    }
}
