//! A log-scale histogram of invocation durations (microseconds): the part of a per-minute
//! rollup ([`crate::rollups`]) that p50 and p99 are read from.
//!
//! Bucket 0 holds 0 µs; bucket `i >= 1` holds `[γ^(i-1), γ^i)` µs with γ = 1.1, so 1 µs to an
//! hour spans about 230 buckets, of which a minute of one function fills a few dozen. A
//! percentile is the bucket holding the nearest-rank value (the `ceil(p·n)`-th smallest),
//! reported as `2·lo·γ/(1+γ)`, the point equally far, relatively, from both ends of the
//! bucket. Its **relative error is at most (γ-1)/(γ+1) ≈ 4.8%** against the exact nearest-rank
//! percentile, plus up to 0.5 µs from rounding to whole microseconds (which only matters below
//! ~20 µs). Counts are exact, so merging minutes or functions is adding counts and the bound
//! holds for any merge; no quantile sketch with its merge error is needed.
//!
//! Stored as a blob of LEB128 varint pairs (gap from the previous non-empty bucket, count):
//! one to four bytes per non-empty bucket, no schema of its own.

/// Bucket width ratio.
const GAMMA: f64 = 1.1;

/// The most a reported percentile is off, relatively, from the exact one (above ~20 µs).
#[cfg(test)]
pub(crate) const MAX_RELATIVE_ERROR: f64 = (GAMMA - 1.0) / (GAMMA + 1.0);

/// Counts per bucket; `counts[i]` is bucket `i`, trailing buckets absent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
}

/// The bucket holding `us`.
fn bucket(us: u64) -> usize {
    if us == 0 {
        return 0;
    }
    1 + ((us as f64).ln() / GAMMA.ln()).floor() as usize
}

/// What a percentile falling in `bucket` is reported as.
fn representative(bucket: usize) -> u64 {
    if bucket == 0 {
        return 0;
    }
    let lo = GAMMA.powi(bucket as i32 - 1);
    (2.0 * lo * GAMMA / (1.0 + GAMMA)).round() as u64
}

impl Histogram {
    pub(crate) fn record(&mut self, us: u64) {
        self.add_to(bucket(us), 1);
    }

    fn add_to(&mut self, bucket: usize, n: u64) {
        if self.counts.len() <= bucket {
            self.counts.resize(bucket + 1, 0);
        }
        self.counts[bucket] += n;
    }

    #[cfg(test)]
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (i, &n) in other.counts.iter().enumerate() {
            if n > 0 {
                self.add_to(i, n);
            }
        }
    }

    pub(crate) fn clear(&mut self) {
        self.counts.clear();
    }

    pub(crate) fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The `p`-quantile (`0 < p <= 1`) by nearest rank, `None` when empty.
    pub(crate) fn percentile(&self, p: f64) -> Option<u64> {
        let n = self.total();
        if n == 0 {
            return None;
        }
        let rank = ((p * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(representative(i));
            }
        }
        None
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let mut last = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            if n > 0 {
                put_varint(&mut out, (i - last) as u64);
                put_varint(&mut out, n);
                last = i;
            }
        }
        out
    }

    /// Adds the counts of an encoded histogram (a merge without decoding to a value first).
    /// A damaged blob adds what could be read before the damage.
    pub(crate) fn add_encoded(&mut self, mut blob: &[u8]) {
        let mut at = 0usize;
        while let (Some(gap), Some(n)) = (take_varint(&mut blob), take_varint(&mut blob)) {
            at = match at.checked_add(gap as usize) {
                // A bucket past any u64 duration's is damage, not data.
                Some(i) if i <= bucket(u64::MAX) => i,
                _ => return,
            };
            self.add_to(at, n);
        }
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn take_varint(blob: &mut &[u8]) -> Option<u64> {
    let mut v = 0u64;
    for (i, &b) in blob.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            *blob = &blob[i + 1..];
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_reported_within_the_bound() {
        // Each value alone: its percentile is its bucket's representative.
        let mut v = 1u64;
        while v < 10_000_000_000 {
            let mut h = Histogram::default();
            h.record(v);
            let got = h.percentile(0.5).unwrap() as f64;
            let off = (got - v as f64).abs();
            // The stated bound, plus rounding to whole microseconds.
            assert!(off <= MAX_RELATIVE_ERROR * v as f64 + 0.5, "{v} reported as {got}");
            v = v * 1013 / 1000 + 1;
        }
        let mut h = Histogram::default();
        h.record(0);
        assert_eq!(h.percentile(0.99), Some(0));
        assert_eq!(Histogram::default().percentile(0.5), None);
    }

    #[test]
    fn encoding_round_trips_and_merging_adds() {
        let mut a = Histogram::default();
        for us in [0, 1, 7, 900, 900, 1_500_000, u64::MAX] {
            a.record(us);
        }
        let mut back = Histogram::default();
        back.add_encoded(&a.encode());
        assert_eq!(back, a);
        back.add_encoded(&a.encode());
        let mut twice = a.clone();
        twice.merge(&a);
        assert_eq!((back.total(), &back), (14, &twice));
        // Damage stops the merge where it starts.
        let mut cut = Histogram::default();
        let blob = a.encode();
        cut.add_encoded(&blob[..blob.len() - 1]);
        assert_eq!(cut.total(), 6);
        cut.add_encoded(&[0xff; 30]);
        assert_eq!(cut.total(), 6);
    }

    #[test]
    fn nearest_rank_picks_the_right_bucket() {
        let mut h = Histogram::default();
        for us in (1..=100).map(|i| i * 1000) {
            h.record(us);
        }
        // Exact nearest-rank: p50 = 50 ms, p99 = 99 ms.
        for (p, exact) in [(0.5, 50_000.0), (0.99, 99_000.0), (1.0, 100_000.0)] {
            let got = h.percentile(p).unwrap() as f64;
            assert!((got - exact).abs() / exact <= MAX_RELATIVE_ERROR, "p{p}: {got}");
        }
    }
}
