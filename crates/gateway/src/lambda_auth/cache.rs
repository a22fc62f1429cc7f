//! Lambda authorizer answers by identity, for `resultTtlInSeconds` (API Gateway's authorizer
//! cache). Bounded: past [`MAX_ENTRIES`] the oldest answers go first, so a flood of distinct
//! tokens costs memory up to the bound and then only more invocations.
//!
//! Every entry of one cache has the same TTL, so insertion order is expiry order: a queue of
//! (key, expiry) in insertion order finds both the expired and the oldest entries at its front.

use super::answer::Answer;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Answers one authorizer keeps at most.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
pub struct AnswerCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, (Instant, Arc<Answer>)>,
    order: VecDeque<(String, Instant)>,
}

impl AnswerCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.ttl.is_zero()
    }

    pub fn get(&self, key: &str, now: Instant) -> Option<Arc<Answer>> {
        if !self.enabled() {
            return None;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        match inner.map.get(key) {
            Some((expires, answer)) if *expires > now => Some(answer.clone()),
            Some(_) => {
                inner.map.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn insert(&self, key: String, answer: Arc<Answer>, now: Instant) {
        if !self.enabled() {
            return;
        }
        let expires = now + self.ttl;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.map.insert(key.clone(), (expires, answer));
        inner.order.push_back((key, expires));
        // Drop what expired, then the oldest while over the bound. A queue entry whose key was
        // stored again later (a newer expiry) leaves the newer answer in place.
        while let Some((k, at)) = inner.order.front().cloned() {
            let over = inner.map.len() > self.capacity || inner.order.len() > 2 * self.capacity;
            if at > now && !over {
                break;
            }
            inner.order.pop_front();
            if inner.map.get(&k).is_some_and(|(e, _)| *e == at) {
                inner.map.remove(&k);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer() -> Arc<Answer> {
        Arc::new(Answer::Simple {
            authorized: true,
            context: Default::default(),
        })
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let c = AnswerCache::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        c.insert("a".into(), answer(), t0);
        assert!(c.get("a", t0 + Duration::from_secs(9)).is_some());
        assert!(c.get("a", t0 + Duration::from_secs(10)).is_none());
        assert!(c.get("b", t0).is_none());
    }

    #[test]
    fn ttl_zero_caches_nothing() {
        let c = AnswerCache::new(Duration::ZERO, 100);
        c.insert("a".into(), answer(), Instant::now());
        assert!(c.get("a", Instant::now()).is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn bounded_oldest_first() {
        let c = AnswerCache::new(Duration::from_secs(60), 3);
        let t0 = Instant::now();
        for (i, k) in ["a", "b", "c", "d"].iter().enumerate() {
            c.insert(k.to_string(), answer(), t0 + Duration::from_millis(i as u64));
        }
        assert_eq!(c.len(), 3);
        assert!(c.get("a", t0).is_none(), "the oldest went first");
        assert!(c.get("d", t0).is_some());
        // Re-storing keys over and over keeps the queue bounded too.
        for i in 0..100u64 {
            c.insert("d".into(), answer(), t0 + Duration::from_millis(10 + i));
        }
        assert!(c.inner.lock().unwrap().order.len() <= 6);
        assert!(c.get("d", t0).is_some());
    }
}
