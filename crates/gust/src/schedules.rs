//! Wiring the scheduler to the rest: expressions are checked at load (an error names the
//! manifest, the schedule, the expression and what is wrong), each tick becomes an
//! EventBridge "Scheduled Event" (or the schedule's constant `input`) queued through the
//! events machinery, which owns retries and the dead-letter queue.

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use gust_events::Events;
use gust_gateway::{ScheduleRunError, SchedulesApi};
use gust_model::{App, ScheduleSpec};
use gust_scheduler::{Clock, Firer, Schedule};
use serde_json::json;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Parses every schedule of `app`; the first bad one fails the load.
pub fn compile(app: &App, manifest: &str) -> Result<Vec<(ScheduleSpec, Schedule)>> {
    app.schedules
        .iter()
        .map(|spec| {
            Schedule::parse(&spec.expression, &spec.timezone)
                .map(|s| (spec.clone(), s))
                .map_err(|e| {
                    anyhow!(
                        "{manifest}: schedule `{}` (`{}` in {}): {e}",
                        spec.name,
                        spec.expression,
                        spec.timezone
                    )
                })
        })
        .collect()
}

/// The event a scheduled run receives.
pub fn payload(spec: &ScheduleSpec, time: DateTime<Utc>, region: &str, account: &str) -> bytes::Bytes {
    let value = spec.input.clone().unwrap_or_else(|| {
        json!({
            "version": "0",
            "id": uuid_v4(),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": account,
            "time": time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "region": region,
            "resources": [format!("arn:aws:events:{region}:{account}:rule/{}", spec.name)],
            "detail": {},
        })
    });
    bytes::Bytes::from(serde_json::to_vec(&value).expect("JSON value serialises"))
}

fn uuid_v4() -> String {
    // The events crate already generates ids; reuse its CloudEvent id source.
    gust_events::CloudEvent::internal("x", bytes::Bytes::new()).id
}

/// Fires ticks into the events log.
pub struct EventsFirer {
    pub events: Arc<Events>,
    pub region: String,
    pub account: String,
}

#[async_trait::async_trait]
impl Firer for EventsFirer {
    async fn last_fired(&self, schedule: &str) -> Result<Option<DateTime<Utc>>, String> {
        let ms = self
            .events
            .log()
            .last_fired(schedule)
            .await
            .map_err(|e| e.to_string())?;
        Ok(ms.and_then(DateTime::from_timestamp_millis))
    }

    async fn fire(&self, spec: &ScheduleSpec, tick: DateTime<Utc>, skip: bool) -> Result<bool, String> {
        let body = (!skip).then(|| payload(spec, tick, &self.region, &self.account));
        let fired = self
            .events
            .fire_schedule(spec.name.as_str(), tick.timestamp_millis(), body)
            .await
            .map_err(|e| e.to_string())?;
        if fired && !skip {
            tracing::info!(schedule = %spec.name, tick = %tick, function = %spec.function, "schedule fired");
        }
        Ok(fired)
    }

    async fn busy(&self, schedule: &str) -> bool {
        self.events.schedule_busy(schedule).await.unwrap_or(false)
    }
}

/// `GET /gust/v1/schedules` and `POST /gust/v1/schedules/{name}/run`.
pub struct SchedulesInfo {
    /// The running version's schedules (a redeploy replaces them).
    pub schedules: std::sync::RwLock<Arc<Vec<(ScheduleSpec, Schedule)>>>,
    pub firer: Arc<EventsFirer>,
    pub clock: Arc<dyn Clock>,
}

impl SchedulesInfo {
    fn current(&self) -> Arc<Vec<(ScheduleSpec, Schedule)>> {
        self.schedules.read().expect("schedules lock").clone()
    }

    /// The schedules of the app's new version, after a redeploy.
    pub fn set(&self, schedules: Vec<(ScheduleSpec, Schedule)>) {
        *self.schedules.write().expect("schedules lock") = Arc::new(schedules);
    }
}

impl SchedulesApi for SchedulesInfo {
    fn list(&self) -> Pin<Box<dyn Future<Output = gust_api::ScheduleList> + Send + '_>> {
        Box::pin(async move {
            let now = self.clock.now();
            let mut list = Vec::new();
            let schedules = self.current();
            for (spec, schedule) in schedules.iter() {
                let last = self.firer.last_fired(spec.name.as_str()).await.ok().flatten();
                let next: Vec<String> = if spec.enabled {
                    schedule.next_n(now, 3).iter().map(|t| t.to_rfc3339()).collect()
                } else {
                    vec![]
                };
                list.push(gust_api::Schedule {
                    name: spec.name.to_string(),
                    function: spec.function.to_string(),
                    expression: spec.expression.clone(),
                    timezone: spec.timezone.clone(),
                    enabled: spec.enabled,
                    catch_up: format!("{:?}", spec.catch_up).to_lowercase(),
                    overlap: format!("{:?}", spec.overlap).to_lowercase(),
                    next,
                    last_fired: last.map(|t| t.to_rfc3339()),
                });
            }
            gust_api::ScheduleList {
                now: now.to_rfc3339(),
                schedules: list,
            }
        })
    }

    fn run<'a>(
        &'a self,
        name: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<gust_api::ScheduleRun, ScheduleRunError>> + Send + 'a>> {
        Box::pin(async move {
            let schedules = self.current();
            let spec = find_schedule(schedules.iter().map(|(s, _)| s), name)?;
            let body = payload(spec, self.clock.now(), &self.firer.region, &self.firer.account);
            let id = self
                .firer
                .events
                .run_schedule_now(spec.name.as_str(), body)
                .await
                .map_err(|e| ScheduleRunError::Failed(e.to_string()))?;
            Ok(gust_api::ScheduleRun {
                schedule: spec.name.to_string(),
                function: spec.function.to_string(),
                id,
            })
        })
    }
}

/// The schedule `name` asks for: the schedule of that name, else the one schedule of the
/// function of that name (serverless.yml schedules get generated names, so users know the
/// function's). A function with several is ambiguous: the error lists them.
fn find_schedule<'a>(
    mut schedules: impl Iterator<Item = &'a ScheduleSpec> + Clone,
    name: &str,
) -> Result<&'a ScheduleSpec, ScheduleRunError> {
    if let Some(s) = schedules.clone().find(|s| s.name.as_str() == name) {
        return Ok(s);
    }
    let of_function: Vec<&ScheduleSpec> = schedules.by_ref().filter(|s| s.function.as_str() == name).collect();
    match of_function.as_slice() {
        [one] => Ok(one),
        [] => Err(ScheduleRunError::NotFound(format!(
            "no schedule `{name}`, and no function `{name}` with a schedule"
        ))),
        many => Err(ScheduleRunError::Ambiguous(format!(
            "function `{name}` has {} schedules: {}; run one by its name",
            many.len(),
            many.iter().map(|s| s.name.as_str()).collect::<Vec<_>>().join(", ")
        ))),
    }
}

#[cfg(test)]
mod find_tests {
    use super::*;

    fn spec(name: &str, function: &str) -> ScheduleSpec {
        ScheduleSpec {
            name: gust_model::TopicName::new(name).unwrap(),
            function: gust_model::FunctionName::new(function).unwrap(),
            expression: "rate(1 hour)".into(),
            timezone: "UTC".into(),
            input: None,
            description: None,
            enabled: true,
            catch_up: gust_model::CatchUp::None,
            overlap: gust_model::Overlap::Skip,
            jitter: std::time::Duration::ZERO,
            max_attempts: 1,
            retry_delay: std::time::Duration::ZERO,
        }
    }

    #[test]
    fn a_schedule_is_found_by_its_name_or_its_functions() {
        let all = [spec("report-daily", "report"), spec("a", "twice"), spec("b", "twice")];
        let find = |n: &str| find_schedule(all.iter(), n).map(|s| s.name.to_string());
        assert_eq!(find("report-daily"), Ok("report-daily".into()));
        assert_eq!(find("report"), Ok("report-daily".into()));
        // A schedule's own name wins over a function's.
        assert_eq!(find("a"), Ok("a".into()));
        match find("twice") {
            Err(ScheduleRunError::Ambiguous(m)) => assert!(m.contains("a, b"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(find("nothing"), Err(ScheduleRunError::NotFound(_))));
    }
}
