//! `GET /gust/v1/status` and `GET /gust/v1/functions/{name}`: what the console's overview and
//! function page show besides records and series. Both are read live from what is running
//! (the invoker's pools, the event topology, the upstreams, the running version's app), not
//! from a copy kept for them, so they cannot disagree with the CLI's views.

use super::{json_response, Admin, Body};
use crate::codes::ErrorCode;
use crate::error::ApiError;
use gust_api::{Attention, FunctionDetail, Status, Trigger};
use gust_model::{App, Network, RouteTarget};
use http::{Response, StatusCode};

impl Admin {
    pub(super) async fn status(&self) -> Status {
        let running = self.deployer.get().and_then(|d| d.running());
        let (app, stage, version) = match &running {
            Some((app, version)) => (app.name.to_string(), app.stage.clone(), Some(*version)),
            None => (String::new(), String::new(), None),
        };
        let info = self.status.clone();
        let sandbox = info.as_ref().map(|i| i.sandbox.clone()).unwrap_or_default();
        let started_at = info
            .as_ref()
            .map(|i| chrono::DateTime::<chrono::Utc>::from(i.started_at).to_rfc3339())
            .unwrap_or_default();
        let mut attention = Vec::new();
        if let Some(events) = &self.events {
            if let Ok(dead) = events.log().dlq_list(None).await {
                let mut by_sub = std::collections::BTreeMap::<String, usize>::new();
                for d in &dead {
                    *by_sub.entry(d.subscription.clone()).or_default() += 1;
                }
                for (sub, n) in by_sub {
                    attention.push(Attention {
                        kind: "dlq".into(),
                        message: format!("{n} dead letter{} waiting", if n == 1 { "" } else { "s" }),
                        subject: sub,
                    });
                }
            }
            for s in events.subscriptions() {
                let Some(st) = events.source_status(s.name.as_str()) else {
                    continue;
                };
                let now = st.state();
                if now.state != "connected" {
                    attention.push(Attention {
                        kind: "source".into(),
                        subject: s.name.to_string(),
                        message: match now.last_error {
                            Some(e) => format!("{} {}: {e}", st.kind, now.state),
                            None => format!("{} {}", st.kind, now.state),
                        },
                    });
                }
            }
        }
        let upstreams: Vec<_> = self
            .upstreams
            .read()
            .expect("upstreams lock")
            .values()
            .cloned()
            .collect();
        for u in upstreams {
            let health = u.health();
            let down: Vec<_> = health.iter().filter(|(_, ok)| !ok).map(|(t, _)| t.clone()).collect();
            if u.circuit_open() || (!health.is_empty() && down.len() == health.len()) {
                attention.push(Attention {
                    kind: "upstream".into(),
                    subject: u.spec().name.to_string(),
                    message: if u.circuit_open() {
                        "its circuit is open: requests are refused with 503".into()
                    } else {
                        format!("no healthy target ({})", down.join(", "))
                    },
                });
            } else if !down.is_empty() {
                attention.push(Attention {
                    kind: "upstream".into(),
                    subject: u.spec().name.to_string(),
                    message: format!("unhealthy: {}", down.join(", ")),
                });
            }
        }
        if let (Some(schedules), Some(db)) = (&self.schedules, &self.telemetry) {
            for s in schedules.list().await.schedules {
                let q = gust_store::InvocationQuery {
                    function: Some(s.function.clone()),
                    trigger: Some("schedule".into()),
                    limit: 1,
                    ..Default::default()
                };
                if let Ok(last) = db.invocations_where(q).await {
                    if let Some(r) = last.first().filter(|r| r.outcome != "success") {
                        attention.push(Attention {
                            kind: "schedule".into(),
                            subject: s.name.clone(),
                            message: format!(
                                "its last run of {} ended in {}{}",
                                s.function,
                                r.outcome,
                                r.error_type.as_deref().map(|e| format!(" ({e})")).unwrap_or_default()
                            ),
                        });
                    }
                }
            }
        }
        match &info {
            Some(i) if i.sandbox.is_empty() => attention.push(Attention {
                kind: "sandbox".into(),
                subject: "sandbox".into(),
                message: "the sandbox is off: functions run unconfined (--sandbox off)".into(),
            }),
            Some(i) => {
                for p in i.sandbox.iter().filter(|p| !p.enforced) {
                    attention.push(Attention {
                        kind: "sandbox".into(),
                        subject: p.protection.clone(),
                        message: format!("not enforced: {}", p.detail),
                    });
                }
            }
            None => {}
        }
        Status {
            app,
            stage,
            version,
            started_at,
            sandbox,
            attention,
        }
    }

    pub(super) fn function_detail(&self, name: &str) -> Result<Response<Body>, ApiError> {
        let not_found = || ApiError::new(ErrorCode::FunctionNotFound, format!("no function `{name}`"));
        let spec = self.invoker.spec(name).ok_or_else(not_found)?;
        let stats = self.invoker.pool_stats(name).ok_or_else(not_found)?;
        let app = self.deployer.get().and_then(|d| d.running()).map(|(app, _)| app);
        let mut grants = Vec::new();
        grants.extend(spec.publishes.iter().map(|t| format!("publishes: {t}")));
        grants.extend(spec.invokes.iter().map(|f| format!("invokes: {f}")));
        grants.extend(spec.services.iter().map(|s| format!("services: {s}")));
        grants.extend(spec.secrets.iter().map(|s| format!("secrets: {s}")));
        for st in &spec.aws {
            grants.push(format!(
                "aws: {:?} {}{} on {}{}",
                st.effect,
                if st.not_actions { "not " } else { "" },
                st.actions.join(", "),
                if st.not_resources { "not " } else { "" },
                st.resources.join(", ")
            ));
        }
        let detail = FunctionDetail {
            name: name.to_string(),
            runtime: spec.runtime.clone(),
            handler: spec.handler.clone(),
            memory_mb: spec.memory_mb,
            timeout_ms: spec.timeout.as_millis() as u64,
            max_instances: spec.scaling.max_instances,
            max_queue: spec.scaling.max_queue,
            min_instances: spec.scaling.min_instances,
            idle_timeout_s: spec.scaling.idle_timeout.as_secs(),
            network: match spec.network {
                Network::Default => "default",
                Network::None => "none",
            }
            .into(),
            instances: gust_api::Instances {
                total: stats.total,
                idle: stats.idle,
                waiting: stats.waiting,
            },
            code_revision: self.invoker.code_revision(name),
            triggers: app.map(|a| triggers_of(&a, name)).unwrap_or_default(),
            grants,
        };
        Ok(json_response(StatusCode::OK, detail))
    }
}

/// Every way `app` calls `function`.
fn triggers_of(app: &App, function: &str) -> Vec<Trigger> {
    let mut out = Vec::new();
    for r in &app.routes {
        if let RouteTarget::Function { function: f, .. } = &r.target {
            if f.as_str() == function {
                out.push(Trigger {
                    kind: "http".into(),
                    detail: r.key.to_string(),
                });
            }
        }
    }
    for s in app.subscriptions.iter().filter(|s| s.function.as_str() == function) {
        out.push(match &s.source {
            Some(src) => Trigger {
                kind: "source".into(),
                detail: format!("{} ({} {})", s.name, src.kind(), src.url()),
            },
            None => Trigger {
                kind: "topic".into(),
                detail: format!("{} (topic {})", s.name, s.topic),
            },
        });
    }
    for s in app.schedules.iter().filter(|s| s.function.as_str() == function) {
        out.push(Trigger {
            kind: "schedule".into(),
            detail: format!("{}: {} ({})", s.name, s.expression, s.timezone),
        });
    }
    for a in app
        .lambda_authorizers
        .values()
        .filter(|a| a.function.as_str() == function)
    {
        out.push(Trigger {
            kind: "authorizer".into(),
            detail: a.name.to_string(),
        });
    }
    out
}
