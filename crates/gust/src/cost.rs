//! Pay-per-use cost: GB-seconds and requests at a price table (AWS Lambda's x86 list price by
//! default), beside what an always-on instance would have cost over the same period. Pure
//! functions, tested against hand-computed figures.

use serde::Deserialize;

/// Prices in USD. Defaults: AWS Lambda x86, us-east-1 list price (first tier), and a small
/// always-on instance (2 vCPU, 2 GiB: an EC2 t3.small on demand).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prices {
    pub per_gb_second: f64,
    pub per_million_requests: f64,
    /// The always-on alternative: price per hour of one instance.
    pub always_on_per_hour: f64,
    pub always_on_name: String,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            per_gb_second: 0.000_016_666_7,
            per_million_requests: 0.20,
            always_on_per_hour: 0.0208,
            always_on_name: "t3.small (2 vCPU, 2 GiB)".into(),
        }
    }
}

/// One function's bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Cost {
    pub function: String,
    pub requests: u64,
    pub gb_seconds: f64,
    pub compute_usd: f64,
    pub request_usd: f64,
    pub total_usd: f64,
    /// One always-on instance for the same period.
    pub always_on_usd: f64,
}

/// `billed_mb_ms` is the sum of billed milliseconds x memory MB (billed duration is rounded up to
/// 1 ms per invocation, as Lambda bills); `period_hours` is the window the usage covers.
pub fn cost(function: &str, requests: u64, billed_mb_ms: u64, period_hours: f64, p: &Prices) -> Cost {
    let gb_seconds = billed_mb_ms as f64 / 1024.0 / 1000.0;
    let compute_usd = gb_seconds * p.per_gb_second;
    let request_usd = requests as f64 / 1_000_000.0 * p.per_million_requests;
    Cost {
        function: function.into(),
        requests,
        gb_seconds,
        compute_usd,
        request_usd,
        total_usd: compute_usd + request_usd,
        always_on_usd: period_hours * p.always_on_per_hour,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_cases() {
        let p = Prices::default();
        // 1,000,000 requests of 100 ms at 128 MB: 12,500 GB-s -> $0.208334 + $0.20.
        let c = cost("f", 1_000_000, 1_000_000 * 100 * 128, 24.0, &p);
        assert!((c.gb_seconds - 12_500.0).abs() < 1e-9);
        assert!((c.compute_usd - 0.208_333_75).abs() < 1e-9, "{}", c.compute_usd);
        assert!((c.request_usd - 0.20).abs() < 1e-12);
        assert!((c.always_on_usd - 0.4992).abs() < 1e-12);
        // 3 requests of 1 ms at 1024 MB: 0.003 GB-s.
        let c = cost("g", 3, 3 * 1024, 1.0, &p);
        assert!((c.gb_seconds - 0.003).abs() < 1e-12);
        assert!((c.total_usd - (0.003 * 0.000_016_666_7 + 3.0 * 0.2 / 1e6)).abs() < 1e-15);
        // A custom price table.
        let p = Prices {
            per_gb_second: 1.0,
            per_million_requests: 0.0,
            always_on_per_hour: 2.0,
            always_on_name: "x".into(),
        };
        let c = cost("h", 10, 2048 * 1000, 0.5, &p);
        assert!((c.total_usd - 2.0).abs() < 1e-12);
        assert!((c.always_on_usd - 1.0).abs() < 1e-12);
    }
}
