//! Wiring the scheduler to the rest: expressions are checked at load (an error names the
//! manifest, the schedule, the expression and what is wrong), each tick becomes an
//! EventBridge "Scheduled Event" (or the schedule's constant `input`) queued through the
//! events machinery, which owns retries and the dead-letter queue.

use anyhow::{anyhow, Result};
use chrono::{DateTime, Utc};
use gust_events::Events;
use gust_gateway::SchedulesApi;
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
    pub schedules: Vec<(ScheduleSpec, Schedule)>,
    pub firer: Arc<EventsFirer>,
    pub clock: Arc<dyn Clock>,
}

impl SchedulesApi for SchedulesInfo {
    fn list(&self) -> Pin<Box<dyn Future<Output = gust_api::ScheduleList> + Send + '_>> {
        Box::pin(async move {
            let now = self.clock.now();
            let mut list = Vec::new();
            for (spec, schedule) in &self.schedules {
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
    ) -> Pin<Box<dyn Future<Output = Result<gust_api::ScheduleRun, String>> + Send + 'a>> {
        Box::pin(async move {
            let (spec, _) = self
                .schedules
                .iter()
                .find(|(s, _)| s.name.as_str() == name)
                .ok_or_else(|| format!("schedule `{name}` does not exist"))?;
            let body = payload(spec, self.clock.now(), &self.firer.region, &self.firer.account);
            let id = self
                .firer
                .events
                .run_schedule_now(name, body)
                .await
                .map_err(|e| e.to_string())?;
            Ok(gust_api::ScheduleRun {
                schedule: name.to_string(),
                function: spec.function.to_string(),
                id,
            })
        })
    }
}
