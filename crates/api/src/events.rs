//! Topics, subscriptions and dead letters: what `POST /gust/v1/events/{topic}` answers, the
//! subscriptions with their backlogs, and the dead-letter queues with redrive and purge
//! (`docs/events.md`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /gust/v1/events/{topic}` (202), also the public gateway's `POST /events/{topic}`:
/// the events are durable when this is answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Published {
    pub topic: String,
    /// One per event of the request (a batch has several).
    pub events: Vec<PublishedEvent>,
}

/// One published event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PublishedEvent {
    /// The CloudEvents `id` (given, or made by Gust).
    pub id: String,
    /// A repeat of an id inside the dedup window: accepted, not stored or delivered again.
    pub duplicate: bool,
    /// How many subscriptions it fans out to.
    pub deliveries: u64,
}

/// `GET /gust/v1/subscriptions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionList {
    pub subscriptions: Vec<Subscription>,
}

/// A subscription (a function on a topic, or a function's async queue `gust.async.<name>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Subscription {
    pub name: String,
    pub topic: String,
    pub function: String,
    /// Events not yet delivered.
    pub backlog: u64,
    /// Events in its dead-letter queue.
    pub dead_letters: u64,
    pub batch_size: u32,
    pub max_attempts: u32,
    pub max_event_age_s: u64,
    /// The broker it reads, for a subscription with a `source` (`null` for a Gust topic).
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub source: Option<SubscriptionSource>,
}

/// A broker source and its live state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SubscriptionSource {
    /// `redis-streams`, `nats-jetstream`, `nats`, `rabbitmq` or `mqtt`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The broker URL (never with credentials).
    pub url: String,
    /// What is read: stream and group, subject, durable consumer.
    pub address: String,
    /// `at-least-once`, or `at-most-once` (core NATS; MQTT with QoS 0 or a clean session).
    pub guarantee: String,
    /// `connecting`, `connected` or `reconnecting`.
    pub state: String,
    /// RFC 3339: when the state last changed.
    pub since: String,
    /// The last connection or broker error, kept after a reconnect.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub last_error: Option<String>,
    /// Messages the broker holds that this subscription has not finished (Redis: the group's
    /// lag plus pending entries; JetStream: pending plus unacknowledged), when it tells.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub lag: Option<u64>,
}

/// `GET /gust/v1/dlq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
}

/// An event that could not be delivered, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    pub subscription: String,
    /// Its number in the subscription's queue (for show, redrive and purge).
    pub seq: i64,
    pub message_id: String,
    pub attempts: u32,
    /// `MaxAttemptsExceeded` or `MaxEventAgeExceeded`.
    pub reason: String,
    pub last_error: String,
    /// RFC 3339; `null` only for a time that cannot be written.
    #[serde(deserialize_with = "crate::nullable")]
    #[schema(required = true)]
    pub failed_at: Option<String>,
    pub event: DeadLetterEvent,
}

/// The dead letter's event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterEvent {
    pub id: String,
    /// The CloudEvents `type`.
    #[serde(rename = "type")]
    pub event_type: String,
    pub source: String,
    /// The data as text, or base64 when it is not UTF-8 (`data_base64`).
    pub data: String,
    pub data_base64: bool,
}

/// `POST /gust/v1/dlq/{subscription}/redrive`: how many dead letters were queued again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Redriven {
    pub redriven: u64,
}

/// `DELETE /gust/v1/dlq/{subscription}`: how many dead letters were deleted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Purged {
    pub purged: u64,
}
