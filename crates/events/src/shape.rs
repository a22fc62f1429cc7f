//! What a subscriber receives: SQS-style and SNS-style record batches (CloudEvents attributes
//! as message attributes), Lambda's RabbitMQ event for rabbitmq sources, and the
//! `batchItemFailures` answer for partial batch failure.

use crate::delivery::Record;
use gust_model::{SourceSpec, SubscriptionSpec};
use serde_json::{json, Map, Value};

/// Where a subscription's records come from, as the SQS shape names it: `eventSource` and
/// `eventSourceARN`. A Gust topic is `aws:sqs` (handlers written for SQS check it); a broker
/// source is `gust:<type>` with an ARN-like name of the stream or subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub event_source: String,
    pub arn: String,
}

impl Origin {
    pub fn of(spec: &SubscriptionSpec, region: &str, account: &str) -> Self {
        let Some(source) = &spec.source else {
            return Self {
                event_source: "aws:sqs".into(),
                arn: format!("arn:aws:sqs:{region}:{account}:{}", spec.topic),
            };
        };
        let what = match source {
            SourceSpec::RedisStreams(s) => s.stream.as_str(),
            SourceSpec::NatsJetStream(s) => s.stream.as_str(),
            SourceSpec::Nats(s) => s.subject.as_str(),
            SourceSpec::Mqtt(s) => s.topic.as_str(),
            SourceSpec::DynamoDbStream(s) => {
                return Self {
                    event_source: "aws:dynamodb".into(),
                    arn: s.stream_arn.clone(),
                };
            }
            SourceSpec::RabbitMq(s) => {
                // As Lambda names it; the broker ARN a serverless.yml event gave, if any.
                return Self {
                    event_source: "aws:rmq".into(),
                    arn: s
                        .broker_arn
                        .clone()
                        .unwrap_or_else(|| format!("arn:gust:rabbitmq:{region}:{account}:{}", s.queue)),
                };
            }
        };
        Self {
            event_source: format!("gust:{}", source.kind()),
            arn: format!("arn:gust:{}:{region}:{account}:{what}", source.kind()),
        }
    }
}

/// Builds `{"Records":[...]}` in SQS's shape.
pub fn sqs_event(records: &[&Record], origin: &Origin, region: &str) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|c| {
            let (body, _) = c.event.data_text();
            let mut attrs = Map::new();
            for (k, v) in c.event.attributes() {
                attrs.insert(
                    format!("ce-{k}"),
                    json!({ "stringValue": v, "stringListValues": [], "binaryListValues": [], "dataType": "String" }),
                );
            }
            json!({
                "messageId": c.message_id,
                "receiptHandle": c.receipt,
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": c.attempts.to_string(),
                    "SentTimestamp": c.published_ms.to_string(),
                    "SenderId": "gust",
                    "ApproximateFirstReceiveTimestamp": c.first_ms.to_string(),
                },
                "messageAttributes": attrs,
                "eventSource": origin.event_source,
                "eventSourceARN": origin.arn,
                "awsRegion": region,
            })
        })
        .collect();
    json!({ "Records": records })
}

/// Builds Lambda's DynamoDB stream event, `{"Records":[...]}`: each record's data is the
/// stream record as `gust-aws` gave it (`eventName`, `dynamodb.Keys/NewImage/OldImage`,
/// `eventSource: aws:dynamodb`, `eventSourceARN`).
pub fn dynamodb_event(records: &[&Record]) -> Value {
    let records: Vec<Value> = records
        .iter()
        .map(|r| serde_json::from_slice(&r.event.data).unwrap_or_else(|_| json!({ "body": r.event.data_text().0 })))
        .collect();
    json!({ "Records": records })
}

/// Builds Lambda's RabbitMQ event: `{"eventSource":"aws:rmq","eventSourceArn":...,
/// "rmqMessagesByQueue":{"<queue>::<vhost>":[{"basicProperties":{...},"redelivered":..,
/// "data":"<base64>"}]}}`. `basicProperties` and `redelivered` come from the source
/// ([`Record::native`]); the data is always base64, as Lambda sends it.
pub fn rabbitmq_event(records: &[&Record], spec: &SubscriptionSpec, origin: &Origin) -> Value {
    use base64::Engine;
    let key = match &spec.source {
        Some(SourceSpec::RabbitMq(s)) => format!("{}::{}", s.queue, s.vhost()),
        _ => format!("{}::/", spec.topic),
    };
    let messages: Vec<Value> = records
        .iter()
        .map(|r| {
            let native = r.native.as_deref();
            let props = native
                .and_then(|n| n.get("basicProperties"))
                .cloned()
                .unwrap_or_else(|| redriven_properties(r));
            let redelivered = native
                .and_then(|n| n.get("redelivered"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            json!({
                "basicProperties": props,
                // Lambda's flag, and also true when Gust holds a message for a retry.
                "redelivered": redelivered || r.attempts > 1,
                "data": base64::engine::general_purpose::STANDARD.encode(&r.event.data),
            })
        })
        .collect();
    let mut by_queue = Map::new();
    by_queue.insert(key, Value::Array(messages));
    json!({
        "eventSource": origin.event_source,
        "eventSourceArn": origin.arn,
        "rmqMessagesByQueue": by_queue,
    })
}

/// `basicProperties` of a record without the broker's own (one redriven from Gust's DLQ),
/// rebuilt from its CloudEvent attributes: content type, message id and type.
fn redriven_properties(r: &Record) -> Value {
    let e = &r.event;
    json!({
        "contentType": e.datacontenttype,
        "contentEncoding": null,
        "headers": {},
        "deliveryMode": 1,
        "priority": 0,
        "correlationId": null,
        "replyTo": null,
        "expiration": null,
        "messageId": e.id,
        "timestamp": null,
        "type": Some(&e.event_type).filter(|t| *t != "gust.rabbitmq.message"),
        "userId": null,
        "appId": null,
        "clusterId": null,
        "bodySize": e.data.len(),
    })
}

/// Builds `{"Records":[...]}` in SNS's shape.
pub fn sns_event(records: &[&Record], topic: &str, subscription: &str, region: &str, account: &str) -> Value {
    let topic_arn = format!("arn:aws:sns:{region}:{account}:{topic}");
    let records: Vec<Value> = records
        .iter()
        .map(|c| {
            let (message, _) = c.event.data_text();
            let mut attrs = Map::new();
            for (k, v) in c.event.attributes() {
                attrs.insert(format!("ce-{k}"), json!({ "Type": "String", "Value": v }));
            }
            let ts = chrono::DateTime::from_timestamp_millis(c.published_ms)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            json!({
                "EventSource": "aws:sns",
                "EventVersion": "1.0",
                "EventSubscriptionArn": format!("{topic_arn}:{subscription}"),
                "Sns": {
                    "Type": "Notification",
                    "MessageId": c.message_id,
                    "TopicArn": topic_arn,
                    "Subject": c.event.subject,
                    "Message": message,
                    "Timestamp": ts,
                    "SignatureVersion": "1",
                    "Signature": "",
                    "SigningCertUrl": "",
                    "UnsubscribeUrl": "",
                    "MessageAttributes": attrs,
                }
            })
        })
        .collect();
    json!({ "Records": records })
}

/// The positions in `batch` of the records a handler reported as failed (none when the answer
/// is not a `batchItemFailures` response: then the whole batch succeeded).
///
/// As Lambda does, an item identifier that is empty or not in the batch fails the whole batch.
pub fn batch_item_failures(answer: &[u8], batch: &[&Record]) -> Result<Vec<usize>, String> {
    let Ok(v) = serde_json::from_slice::<Value>(answer) else {
        return Ok(vec![]);
    };
    let Some(items) = v.get("batchItemFailures") else {
        return Ok(vec![]);
    };
    let Some(items) = items.as_array() else {
        return Err("batchItemFailures must be a list".into());
    };
    let mut failed = Vec::new();
    for item in items {
        let id = item.get("itemIdentifier").and_then(Value::as_str).unwrap_or("");
        match batch.iter().position(|c| c.message_id == id) {
            Some(i) => failed.push(i),
            None => return Err(format!("batchItemFailures names an unknown itemIdentifier `{id}`")),
        }
    }
    Ok(failed)
}
