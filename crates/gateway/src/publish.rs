//! `POST /events/{topic}` (gateway) and `POST /gust/v1/events/{topic}` (admin, `GUST_API`):
//! CloudEvents in binary, structured or batch mode, or plain JSON. Answers 202 only after the
//! events are durable ([`gust_api::Published`]); bad input is refused whole and nothing of it
//! is stored.

use crate::codes::ErrorCode;
use crate::error::{ApiError, Body};
use bytes::Bytes;
use gust_events::{from_http, Events};
use http::{HeaderMap, Response, StatusCode};

/// Publishes to `topic` (already percent-decoded by the caller, who also checked that this
/// caller may publish there).
pub async fn publish(
    events: &Events,
    topic: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response<Body>, ApiError> {
    if !events.has_topic(topic) {
        return Err(ApiError::new(
            ErrorCode::TopicNotFound,
            format!("topic `{topic}` does not exist"),
        ));
    }
    // A function passes its trace as `X-Amzn-Trace-Id` (its `_X_AMZN_TRACE_ID`); events carry
    // it on as a W3C `traceparent`.
    let mut headers = headers.clone();
    if !headers.contains_key("traceparent") {
        let from_xray = headers
            .get("x-amzn-trace-id")
            .and_then(|v| v.to_str().ok())
            .and_then(gust_model::TraceParent::from_xray);
        if let Some(t) = from_xray.and_then(|t| http::HeaderValue::from_str(&t.to_string()).ok()) {
            headers.insert("traceparent", t);
        }
    }
    let parsed = from_http(&headers, body, topic)?;
    let published = events.publish(topic, parsed).await?;
    let answer = gust_api::Published {
        topic: topic.to_string(),
        events: published
            .into_iter()
            .map(|p| gust_api::PublishedEvent {
                id: p.id,
                duplicate: p.duplicate,
                deliveries: p.deliveries as u64,
            })
            .collect(),
    };
    Ok(Response::builder()
        .status(StatusCode::ACCEPTED)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            serde_json::to_vec(&answer).expect("answer bodies serialise to JSON"),
        ))
        .expect("static response parts are valid"))
}
