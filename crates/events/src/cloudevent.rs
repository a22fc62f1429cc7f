//! CloudEvents 1.0 over HTTP: binary mode (`ce-*` headers), structured mode
//! (`application/cloudevents+json`), batch mode (`application/cloudevents-batch+json`), and
//! plain JSON, for which Gust fills the attributes in.

use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Largest event accepted (data plus attributes), as SQS and Lambda async allow.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One event, attributes and data, as stored and delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub event_type: String,
    pub subject: Option<String>,
    pub time: Option<String>,
    pub datacontenttype: Option<String>,
    pub dataschema: Option<String>,
    /// Extension attributes (`traceparent`, `region`, ...), as strings.
    pub extensions: BTreeMap<String, String>,
    pub data: Bytes,
    /// Whether the producer supplied `id` (or an idempotency key): only then is it deduplicated.
    pub dedup_key: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    #[error("CloudEvent attribute `{0}` is required")]
    Missing(&'static str),
    #[error("CloudEvent attribute `{0}` is invalid: {1}")]
    Invalid(String, String),
    #[error("unsupported CloudEvents specversion `{0}`: only 1.0 is supported")]
    SpecVersion(String),
    #[error("the event is {0} bytes; the limit is {MAX_EVENT_BYTES}")]
    TooLarge(usize),
    #[error("a CloudEvents batch must be a JSON array of events")]
    NotABatch,
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn check_size(e: CloudEvent) -> Result<CloudEvent, EventError> {
    let attrs: usize = e.extensions.iter().map(|(k, v)| k.len() + v.len()).sum();
    let size = e.data.len() + attrs + e.id.len() + e.source.len() + e.event_type.len();
    if size > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(size));
    }
    Ok(e)
}

impl CloudEvent {
    /// Sets the context attribute `name` (lower case: `type`, `subject`, an extension...) from
    /// a broker's header or field. False when `name` is neither a CloudEvents attribute nor a
    /// valid extension name (`specversion` is taken and ignored: every event here is 1.0).
    pub(crate) fn set_attribute(&mut self, name: &str, value: String) -> bool {
        match name {
            "id" => self.id = value,
            "source" => self.source = value,
            "type" => self.event_type = value,
            "subject" => self.subject = Some(value),
            "time" => self.time = Some(value),
            "datacontenttype" => self.datacontenttype = Some(value),
            "dataschema" => self.dataschema = Some(value),
            "specversion" => {}
            other if check_ext_name(other).is_ok() => {
                self.extensions.insert(other.to_string(), value);
            }
            _ => return false,
        }
        true
    }
}

fn check_ext_name(name: &str) -> Result<(), EventError> {
    if name.is_empty() || name.len() > 64 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
        return Err(EventError::Invalid(
            name.into(),
            "extension names are lower-case letters and digits".into(),
        ));
    }
    Ok(())
}

/// Parses a publish request body into events; `topic` is the default `type` for plain JSON.
pub fn from_http(headers: &HeaderMap, body: &Bytes, topic: &str) -> Result<Vec<CloudEvent>, EventError> {
    let content_type = header(headers, "content-type").unwrap_or_default().to_ascii_lowercase();
    let media = content_type.split(';').next().unwrap_or("").trim().to_string();
    if media == "application/cloudevents-batch+json" {
        let v: Value = serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
        let Value::Array(items) = v else {
            return Err(EventError::NotABatch);
        };
        return items.into_iter().map(structured).collect();
    }
    if media == "application/cloudevents+json" {
        let v: Value = serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
        return Ok(vec![structured(v)?]);
    }
    if let Some(spec) = header(headers, "ce-specversion") {
        return Ok(vec![binary(headers, body, &spec, &content_type)?]);
    }
    // Plain JSON: any JSON value is the data; Gust fills the attributes.
    if body.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(body.len()));
    }
    serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|e| EventError::NotJson(e.to_string()))?;
    let key = header(headers, "idempotency-key");
    let mut extensions = BTreeMap::new();
    if let Some(tp) = header(headers, "traceparent") {
        extensions.insert("traceparent".into(), tp);
    }
    Ok(vec![check_size(CloudEvent {
        id: key.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        source: "/gust/http".into(),
        event_type: header(headers, "x-event-type").unwrap_or_else(|| topic.to_string()),
        subject: None,
        time: Some(now_rfc3339()),
        datacontenttype: Some("application/json".into()),
        dataschema: None,
        extensions,
        data: body.clone(),
        dedup_key: key,
    })?])
}

fn binary(headers: &HeaderMap, body: &Bytes, spec: &str, content_type: &str) -> Result<CloudEvent, EventError> {
    if spec != "1.0" {
        return Err(EventError::SpecVersion(spec.into()));
    }
    let req = |name: &'static str| {
        header(headers, &format!("ce-{name}"))
            .filter(|v| !v.is_empty())
            .ok_or(EventError::Missing(name))
    };
    let id = req("id")?;
    let mut extensions = BTreeMap::new();
    for (name, value) in headers {
        let Some(attr) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        if matches!(
            attr,
            "id" | "source" | "type" | "specversion" | "subject" | "time" | "dataschema"
        ) {
            continue;
        }
        check_ext_name(attr)?;
        let v = value
            .to_str()
            .map_err(|_| EventError::Invalid(attr.into(), "not valid text".into()))?;
        extensions.insert(attr.to_string(), v.to_string());
    }
    if let Some(tp) = header(headers, "traceparent") {
        extensions.entry("traceparent".into()).or_insert(tp);
    }
    check_size(CloudEvent {
        dedup_key: header(headers, "idempotency-key").or_else(|| Some(id.clone())),
        id,
        source: req("source")?,
        event_type: req("type")?,
        subject: header(headers, "ce-subject"),
        time: header(headers, "ce-time"),
        datacontenttype: (!content_type.is_empty()).then(|| content_type.to_string()),
        dataschema: header(headers, "ce-dataschema"),
        extensions,
        data: body.clone(),
    })
}

fn structured(v: Value) -> Result<CloudEvent, EventError> {
    let Value::Object(mut o) = v else {
        return Err(EventError::Invalid(
            "event".into(),
            "a structured CloudEvent must be a JSON object".into(),
        ));
    };
    let take_str = |o: &mut Map<String, Value>, name: &str| -> Result<Option<String>, EventError> {
        match o.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(EventError::Invalid(name.into(), "must be a string".into())),
        }
    };
    let spec = take_str(&mut o, "specversion")?.ok_or(EventError::Missing("specversion"))?;
    if spec != "1.0" {
        return Err(EventError::SpecVersion(spec));
    }
    let id = take_str(&mut o, "id")?
        .filter(|s| !s.is_empty())
        .ok_or(EventError::Missing("id"))?;
    let source = take_str(&mut o, "source")?
        .filter(|s| !s.is_empty())
        .ok_or(EventError::Missing("source"))?;
    let event_type = take_str(&mut o, "type")?
        .filter(|s| !s.is_empty())
        .ok_or(EventError::Missing("type"))?;
    let subject = take_str(&mut o, "subject")?;
    let time = take_str(&mut o, "time")?;
    let datacontenttype = take_str(&mut o, "datacontenttype")?;
    let dataschema = take_str(&mut o, "dataschema")?;
    let data = match (o.remove("data"), o.remove("data_base64")) {
        (Some(_), Some(_)) => {
            return Err(EventError::Invalid(
                "data".into(),
                "`data` and `data_base64` are exclusive".into(),
            ))
        }
        (None, Some(Value::String(b))) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|e| EventError::Invalid("data_base64".into(), e.to_string()))?,
        ),
        (None, Some(_)) => return Err(EventError::Invalid("data_base64".into(), "must be a string".into())),
        // JSON data is kept as JSON text; a string under a non-JSON content type is its text.
        (Some(Value::String(s)), None) if datacontenttype.as_deref().is_some_and(|c| !c.contains("json")) => {
            Bytes::from(s)
        }
        (Some(v), None) => Bytes::from(serde_json::to_vec(&v).expect("JSON value serialises")),
        (None, None) => Bytes::new(),
    };
    let mut extensions = BTreeMap::new();
    for (k, v) in o {
        check_ext_name(&k)?;
        let v = match v {
            Value::String(s) => s,
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => {
                return Err(EventError::Invalid(
                    k,
                    "extension values must be strings, numbers or booleans".into(),
                ))
            }
        };
        extensions.insert(k, v);
    }
    check_size(CloudEvent {
        dedup_key: Some(id.clone()),
        id,
        source,
        event_type,
        subject,
        time,
        datacontenttype: datacontenttype.or(Some("application/json".into())),
        dataschema,
        extensions,
        data,
    })
}

impl CloudEvent {
    /// An event made by Gust itself (an asynchronous invocation's payload).
    pub fn internal(event_type: &str, data: Bytes) -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            source: "/gust".into(),
            event_type: event_type.into(),
            subject: None,
            time: Some(now_rfc3339()),
            datacontenttype: Some("application/json".into()),
            dataschema: None,
            extensions: BTreeMap::new(),
            data,
            dedup_key: None,
        }
    }

    /// A context attribute or extension by its CloudEvents name.
    pub fn attribute(&self, name: &str) -> Option<String> {
        match name {
            "id" => Some(self.id.clone()),
            "source" => Some(self.source.clone()),
            "type" => Some(self.event_type.clone()),
            "subject" => self.subject.clone(),
            _ => self.extensions.get(name).cloned(),
        }
    }

    /// All attributes (context and extensions) as `(name, value)` pairs, `specversion` first.
    pub fn attributes(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("specversion".to_string(), "1.0".to_string()),
            ("id".into(), self.id.clone()),
            ("source".into(), self.source.clone()),
            ("type".into(), self.event_type.clone()),
        ];
        for (k, v) in [
            ("subject", &self.subject),
            ("time", &self.time),
            ("datacontenttype", &self.datacontenttype),
            ("dataschema", &self.dataschema),
        ] {
            if let Some(v) = v {
                out.push((k.into(), v.clone()));
            }
        }
        out.extend(self.extensions.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// The data as text when it is, else base64 (and `true`).
    pub fn data_text(&self) -> (String, bool) {
        match std::str::from_utf8(&self.data) {
            Ok(s) => (s.to_string(), false),
            Err(_) => (base64::engine::general_purpose::STANDARD.encode(&self.data), true),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn plain_json_gets_attributes_filled_in() {
        let h = headers(&[("content-type", "application/json"), ("idempotency-key", "k1")]);
        let e = from_http(&h, &Bytes::from_static(br#"{"order":1}"#), "orders")
            .unwrap()
            .remove(0);
        assert_eq!(
            (e.id.as_str(), e.event_type.as_str(), e.source.as_str()),
            ("k1", "orders", "/gust/http")
        );
        assert_eq!(e.dedup_key.as_deref(), Some("k1"));
        assert_eq!(&e.data[..], br#"{"order":1}"#);
        let e = from_http(&HeaderMap::new(), &Bytes::from_static(b"[1]"), "t")
            .unwrap()
            .remove(0);
        assert_eq!(e.dedup_key, None, "no key, no dedup");
        assert!(matches!(
            from_http(&HeaderMap::new(), &Bytes::from_static(b"{bad"), "t"),
            Err(EventError::NotJson(_))
        ));
    }

    #[test]
    fn binary_mode() {
        let h = headers(&[
            ("ce-specversion", "1.0"),
            ("ce-id", "e1"),
            ("ce-source", "/orders"),
            ("ce-type", "order.created"),
            ("ce-region", "eu"),
            ("content-type", "application/json"),
        ]);
        let e = from_http(&h, &Bytes::from_static(b"{}"), "t").unwrap().remove(0);
        assert_eq!(e.event_type, "order.created");
        assert_eq!(e.extensions["region"], "eu");
        assert_eq!(e.dedup_key.as_deref(), Some("e1"));
        let mut h2 = h.clone();
        h2.remove("ce-source");
        assert_eq!(from_http(&h2, &Bytes::new(), "t"), Err(EventError::Missing("source")));
        let mut h3 = h.clone();
        h3.insert("ce-specversion", HeaderValue::from_static("0.3"));
        assert!(matches!(
            from_http(&h3, &Bytes::new(), "t"),
            Err(EventError::SpecVersion(_))
        ));
    }

    #[test]
    fn structured_and_batch_modes() {
        let h = headers(&[("content-type", "application/cloudevents+json; charset=utf-8")]);
        let body = br#"{"specversion":"1.0","id":"x","source":"/s","type":"t.created","region":"us","data":{"a":1}}"#;
        let e = from_http(&h, &Bytes::from_static(body), "t").unwrap().remove(0);
        assert_eq!(&e.data[..], br#"{"a":1}"#);
        assert_eq!(e.attribute("region").as_deref(), Some("us"));
        let body = br#"{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"AAE="}"#;
        let e = from_http(&h, &Bytes::from_static(body), "t").unwrap().remove(0);
        assert_eq!(&e.data[..], &[0u8, 1]);
        let missing = br#"{"specversion":"1.0","source":"/s","type":"t"}"#;
        assert_eq!(
            from_http(&h, &Bytes::from_static(missing), "t"),
            Err(EventError::Missing("id"))
        );
        let bad_ext = br#"{"specversion":"1.0","id":"1","source":"/s","type":"t","Bad-Name":"x"}"#;
        assert!(matches!(
            from_http(&h, &Bytes::from_static(bad_ext), "t"),
            Err(EventError::Invalid(_, _))
        ));

        let hb = headers(&[("content-type", "application/cloudevents-batch+json")]);
        let batch = br#"[{"specversion":"1.0","id":"1","source":"/s","type":"t"},{"specversion":"1.0","id":"2","source":"/s","type":"t"}]"#;
        assert_eq!(from_http(&hb, &Bytes::from_static(batch), "t").unwrap().len(), 2);
        assert_eq!(
            from_http(&hb, &Bytes::from_static(b"{}"), "t"),
            Err(EventError::NotABatch)
        );
    }

    #[test]
    fn oversized_events_are_refused() {
        let big = format!("\"{}\"", "x".repeat(MAX_EVENT_BYTES));
        let e = from_http(&HeaderMap::new(), &Bytes::from(big), "t").unwrap_err();
        assert!(matches!(e, EventError::TooLarge(_)), "{e:?}");
    }
}
