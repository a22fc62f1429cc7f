//! Schedules with a clock the test moves: ticks fire once (also across a restart), missed
//! ticks follow the catch-up policy, overlap policies hold with a slow function, a failing
//! run is retried then dead-lettered (one that no retry can fix, at once), and the shop's
//! daily report runs end to end.

use crate::support::*;
use chrono::{DateTime, TimeDelta, Utc};
use gust_scheduler::ManualClock;
use std::time::Duration;

const RECORDER: &str = r#"
const fs = require("fs");
const path = require("path");
exports.handler = async (event) => {
  const rule = (event.resources || ["?/manual"])[0].split("/").pop();
  const out = path.join(process.env.LAMBDA_TASK_ROOT, "fired.log");
  fs.appendFileSync(out, `start ${rule} ${event.time} ${Date.now()}\n`);
  if (process.env.BIG) return "x".repeat(7 * 1024 * 1024);
  if (process.env.SLEEP_MS) await new Promise((r) => setTimeout(r, Number(process.env.SLEEP_MS)));
  if (process.env.FAIL) throw new Error("report failed");
  fs.appendFileSync(out, `end ${rule} ${event.time} ${Date.now()}\n`);
  return "ok";
};
"#;

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn manifest(schedules: &str, env: &str) -> String {
    format!(
        "[app]\nname = \"sched\"\n[functions.rec]\nruntime = \"nodejs20.x\"\nhandler = \"rec.handler\"\ntimeout = 10\nenvironment = {{ {env} }}\nscaling = {{ max_instances = 4 }}\n{schedules}"
    )
}

fn schedule(name: &str, expr: &str, extra: &str) -> String {
    format!("[[schedules]]\nname = \"{name}\"\nfunction = \"rec\"\nexpression = \"{expr}\"\n{extra}\n")
}

fn starts(app: &TestApp, name: &str) -> Vec<String> {
    lines(&app.dir.path().join("fired.log"))
        .into_iter()
        .filter(|l| l.starts_with(&format!("start {name} ")))
        .collect()
}

/// Waits until every schedule loop is asleep on the clock (it has looked at the current time).
async fn settled(clock: &ManualClock, loops: usize) {
    wait_for("schedule loops to sleep", Duration::from_secs(10), || {
        clock.sleepers() >= loops
    })
    .await;
}

async fn backlog(app: &TestApp, sub: &str) -> u64 {
    app.platform().events.log().backlog(sub).await.unwrap()
}

#[tokio::test]
async fn a_tick_fires_once_even_across_a_restart() {
    let clock = ManualClock::new(at("2026-11-26T10:00:30Z"));
    let dir = write_app(&[
        (
            "gust.toml",
            &manifest(&schedule("every-minute", "rate(1 minute)", ""), ""),
        ),
        ("rec.js", RECORDER),
    ]);
    let app = TestApp::start_with_clock(dir, clock.clone()).await;
    settled(&clock, 1).await;
    clock.advance(TimeDelta::seconds(30)); // 10:01:00
    wait_for("the tick to run", Duration::from_secs(10), || {
        starts(&app, "every-minute").len() == 1
    })
    .await;
    let fired = starts(&app, "every-minute");
    assert!(fired[0].contains("2026-11-26T10:01:00Z"), "{fired:?}");
    settled(&clock, 1).await;

    // Restart at the same instant: the tick is recorded, so it does not fire again.
    let app = app.restart_with_clock(clock.clone()).await;
    settled(&clock, 1).await;
    assert_eq!(backlog(&app, "gust.schedule.every-minute").await, 0);
    assert_eq!(starts(&app, "every-minute").len(), 1, "no second fire of the same tick");
    clock.advance(TimeDelta::seconds(60)); // 10:02:00
    wait_for("the next tick", Duration::from_secs(10), || {
        starts(&app, "every-minute").len() == 2
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn missed_ticks_follow_the_catch_up_policy() {
    let clock = ManualClock::new(at("2026-11-26T10:30:00Z"));
    let schedules = [
        schedule("none", "rate(1 hour)", "catch_up = \"none\""),
        schedule("last", "rate(1 hour)", "catch_up = \"last\""),
        schedule("all", "rate(1 hour)", "catch_up = \"all\"\nmax_catch_up = 2"),
    ]
    .concat();
    let dir = write_app(&[("gust.toml", &manifest(&schedules, "")), ("rec.js", RECORDER)]);
    let app = TestApp::start_with_clock(dir, clock.clone()).await;
    settled(&clock, 3).await;
    clock.set(at("2026-11-26T11:00:00Z"));
    wait_for("the 11:00 ticks", Duration::from_secs(10), || {
        ["none", "last", "all"].iter().all(|n| starts(&app, n).len() == 1)
    })
    .await;
    settled(&clock, 3).await;

    // Down from 11:00 to 15:30: 12:00, 13:00, 14:00 and 15:00 are missed.
    let clock = ManualClock::new(at("2026-11-26T15:30:00Z"));
    let app = app.restart_with_clock(clock.clone()).await;
    wait_for("catch-up runs", Duration::from_secs(15), || {
        starts(&app, "last").len() == 2 && starts(&app, "all").len() == 3
    })
    .await;
    settled(&clock, 3).await;
    for sub in ["gust.schedule.none", "gust.schedule.last", "gust.schedule.all"] {
        let app = &app;
        let mut left = 1;
        while left > 0 {
            left = backlog(app, sub).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(starts(&app, "none").len(), 1, "none: missed ticks are dropped");
    assert!(
        starts(&app, "last")[1].contains("15:00:00Z"),
        "last: the most recent missed tick"
    );
    let all = starts(&app, "all");
    assert!(
        all[1].contains("14:00:00Z") && all[2].contains("15:00:00Z"),
        "all: the 2 most recent, oldest first: {all:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn overlap_skip_drops_a_tick_while_the_previous_run_is_going() {
    let clock = ManualClock::new(at("2026-11-26T10:00:30Z"));
    let schedules = [
        schedule("skip", "rate(1 minute)", "overlap = \"skip\""),
        schedule("queue", "rate(1 minute)", "overlap = \"queue\""),
        schedule("allow", "rate(1 minute)", "overlap = \"allow\""),
    ]
    .concat();
    let dir = write_app(&[
        ("gust.toml", &manifest(&schedules, "SLEEP_MS = \"1500\"")),
        ("rec.js", RECORDER),
    ]);
    let app = TestApp::start_with_clock(dir, clock.clone()).await;
    settled(&clock, 3).await;
    clock.advance(TimeDelta::seconds(30)); // 10:01
    wait_for("the first runs to start", Duration::from_secs(10), || {
        ["skip", "queue", "allow"].iter().all(|n| starts(&app, n).len() == 1)
    })
    .await;
    settled(&clock, 3).await;
    clock.advance(TimeDelta::seconds(60)); // 10:02, while the 10:01 runs are still going
    wait_for(
        "allow to start a second run side by side",
        Duration::from_secs(10),
        || starts(&app, "allow").len() == 2,
    )
    .await;
    wait_for(
        "queue to run its second tick after the first",
        Duration::from_secs(10),
        || starts(&app, "queue").len() == 2,
    )
    .await;
    settled(&clock, 3).await;
    for sub in ["gust.schedule.skip", "gust.schedule.queue", "gust.schedule.allow"] {
        while backlog(&app, sub).await > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(
        starts(&app, "skip").len(),
        1,
        "skip: the 10:02 tick came while 10:01 ran"
    );
    let log = lines(&app.dir.path().join("fired.log"));
    let time_of = |kind: &str, name: &str, tick: &str| -> u64 {
        log.iter()
            .find(|l| l.starts_with(&format!("{kind} {name} ")) && l.contains(tick))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {kind} for {name} {tick}: {log:?}"))
    };
    assert!(
        time_of("start", "queue", "10:02") >= time_of("end", "queue", "10:01"),
        "queue: runs never overlap"
    );
    assert!(
        time_of("start", "allow", "10:02") < time_of("end", "allow", "10:01"),
        "allow: runs overlap"
    );
    app.stop().await;
}

/// The dead letters of `queue`, once there is one (or none after 10 s).
async fn dead_letters(app: &TestApp, queue: &str) -> Vec<gust_events::DeadLetter> {
    let log = app.platform().events.log().clone();
    let mut dead = Vec::new();
    for _ in 0..500 {
        dead = log.dlq_list(Some(queue)).await.unwrap();
        if !dead.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    dead
}

#[tokio::test]
async fn a_failing_scheduled_run_is_retried_then_dead_lettered() {
    let clock = ManualClock::new(at("2026-11-26T10:00:30Z"));
    let dir = write_app(&[
        (
            "gust.toml",
            &manifest(
                &schedule("flaky", "rate(1 minute)", "max_attempts = 2\nretry_delay = 0.1"),
                "FAIL = \"1\"",
            ),
        ),
        ("rec.js", RECORDER),
    ]);
    let app = TestApp::start_with_clock(dir, clock.clone()).await;
    settled(&clock, 1).await;
    clock.advance(TimeDelta::seconds(30));
    let dead = dead_letters(&app, "gust.schedule.flaky").await;
    assert_eq!(dead.len(), 1, "the run ends in the schedule's DLQ");
    assert_eq!(dead[0].attempts, 2);
    assert_eq!(dead[0].reason, "MaxAttemptsExceeded");
    assert!(dead[0].last_error.contains("report failed"), "{}", dead[0].last_error);
    assert_eq!(starts(&app, "flaky").len(), 2, "one run and one retry");
    let event = json(std::str::from_utf8(&dead[0].event.data).unwrap());
    assert_eq!(event["detail-type"], "Scheduled Event");
    assert_eq!(event["source"], "aws.events");
    assert_eq!(event["time"], "2026-11-26T10:01:00Z");
    app.stop().await;
}

#[tokio::test]
async fn a_scheduled_run_no_retry_can_fix_is_dead_lettered_at_once() {
    let clock = ManualClock::new(at("2026-11-26T10:00:30Z"));
    let dir = write_app(&[
        (
            "gust.toml",
            &manifest(
                &schedule("huge", "rate(1 minute)", "max_attempts = 5\nretry_delay = 0.1"),
                "BIG = \"1\"",
            ),
        ),
        ("rec.js", RECORDER),
    ]);
    let app = TestApp::start_with_clock(dir, clock.clone()).await;
    settled(&clock, 1).await;
    clock.advance(TimeDelta::seconds(30));
    let dead = dead_letters(&app, "gust.schedule.huge").await;
    assert_eq!(dead.len(), 1, "the run ends in the schedule's DLQ");
    assert_eq!(dead[0].reason, "NonRetryable: FunctionResponseTooLarge");
    assert_eq!(dead[0].attempts, 1, "5 were allowed; none was retried");
    assert!(
        dead[0].last_error.starts_with("FunctionResponseTooLarge: "),
        "{}",
        dead[0].last_error
    );
    // Dead-lettered records are out of the queue: no attempt can follow.
    assert_eq!(backlog(&app, "gust.schedule.huge").await, 0);
    assert_eq!(starts(&app, "huge").len(), 1, "one run, no retry");
    app.stop().await;
}

#[tokio::test]
async fn the_daily_report_runs_at_local_midnight_with_a_moved_clock() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shop"),
        dir.path(),
    );
    let clock = ManualClock::new(Utc::now());
    let app = TestApp::start_with_clock(dir, clock.clone()).await;
    settled(&clock, 1).await;
    let r = app
        .post(
            "/orders",
            r#"{"customer":"Ann","currency":"EUR","items":[{"sku":"tea","qty":3,"price":4.5}]}"#,
        )
        .await;
    assert_eq!(r.status(), 201);
    let order = json(&r.text().await.unwrap());
    let id = order["id"].as_str().unwrap().to_string();
    for _ in 0..500 {
        if app.get(&format!("/invoices/{id}")).await.status() == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(app.get(&format!("/invoices/{id}")).await.status(), 200);

    // The order's local date in Berlin is the day the next midnight run reports.
    let schedules = json(&app.admin_text("/gust/v1/schedules").await);
    let next: DateTime<Utc> = schedules["schedules"][0]["next"][0].as_str().unwrap().parse().unwrap();
    let berlin_day = (next - TimeDelta::minutes(1)).with_timezone(&chrono::FixedOffset::east_opt(3600).unwrap());
    let date = berlin_day.format("%Y-%m-%d").to_string();
    assert_eq!(
        app.get(&format!("/reports/{date}")).await.status(),
        404,
        "no report before midnight"
    );
    clock.set(next);
    let mut report = serde_json::Value::Null;
    for _ in 0..750 {
        let r = app.get(&format!("/reports/{date}")).await;
        if r.status() == 200 {
            report = json(&r.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(report["date"], date.as_str(), "{report}");
    assert_eq!(report["orders"], 1);
    assert_eq!(report["revenueEur"], 13.5);
    let r = app
        .client
        .get(app.url(&format!("/reports/{date}?format=csv")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/csv");
    assert!(r.text().await.unwrap().contains(&id));
    app.stop().await;
}
