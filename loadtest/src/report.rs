//! The report: figures (each with its target where the issue sets one), the verdict, and
//! what the hub said about itself; printed as a markdown table and as JSON.

use hdrhistogram::Histogram;
use serde::Serialize;
use serde_json::Value;

use crate::verdict::Verdict;

#[derive(Debug, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: Option<f64>,
    pub unit: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
}

#[derive(Clone, Copy)]
pub enum Target {
    AtLeast(f64),
    AtMost(f64),
}

impl Figure {
    pub fn new(name: impl Into<String>, value: Option<f64>, unit: &'static str) -> Self {
        Self {
            name: name.into(),
            value,
            unit,
            target: None,
            met: None,
        }
    }

    pub fn target(mut self, t: Target) -> Self {
        self.set_target(t);
        self
    }

    pub fn set_target(&mut self, t: Target) {
        let (text, met) = match t {
            Target::AtLeast(x) => (format!("≥ {}", fmt_num(x)), self.value.map(|v| v >= x)),
            Target::AtMost(x) => (format!("≤ {}", fmt_num(x)), self.value.map(|v| v <= x)),
        };
        self.target = Some(text);
        self.met = met;
    }
}

/// One phase of a scenario (a scenario may run several, e.g. one per rate).
#[derive(Debug, Serialize)]
pub struct Phase {
    pub name: String,
    pub figures: Vec<Figure>,
    pub verdict: Verdict,
    /// Deltas and values read from the hub's `/metrics` over the phase.
    pub hub_metrics: Value,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    pub parameters: Value,
    pub hub: Value,
    pub phases: Vec<Phase>,
    /// What the load generator itself used, for judging the shared machine.
    pub loadtest_cpu_seconds: f64,
    pub passed: bool,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = format!("## loadtest `{}`\n\n", self.scenario);
        out.push_str("| phase | figure | value | target | met |\n|---|---|---|---|---|\n");
        for p in &self.phases {
            for f in &p.figures {
                let value = f.value.map_or_else(
                    || "n/a".to_owned(),
                    |v| format!("{} {}", fmt_num(v), f.unit),
                );
                let met = match f.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "",
                };
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    p.name,
                    f.name,
                    value.trim_end(),
                    f.target.as_deref().unwrap_or(""),
                    met
                ));
            }
        }
        out.push('\n');
        for p in &self.phases {
            let v = &p.verdict;
            out.push_str(&format!(
                "- {}: accepted {}, received {}, lost {}, duplicates {}, reordered {}, misrouted {}, post errors {}, agent errors {}, acks committed {} → **{}**\n",
                p.name,
                v.accepted,
                v.received,
                v.lost,
                v.duplicates,
                v.reordered,
                v.misrouted,
                v.post_errors,
                v.agent_errors,
                v.acks_committed,
                if v.passed() { "pass" } else { "FAIL" }
            ));
            for problem in &v.problems {
                out.push_str(&format!("  - {problem}\n"));
            }
        }
        out
    }
}

pub fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v == v.trunc() {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// p50, p99, p99.9 and max of a µs histogram, as figures in ms.
pub fn latency_figures(prefix: &str, h: &Histogram<u64>) -> Vec<Figure> {
    let q = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1000.0);
    vec![
        Figure::new(format!("{prefix} p50"), q(0.5), "ms"),
        Figure::new(format!("{prefix} p99"), q(0.99), "ms"),
        Figure::new(format!("{prefix} p99.9"), q(0.999), "ms"),
        Figure::new(
            format!("{prefix} max"),
            (!h.is_empty()).then(|| h.max() as f64 / 1000.0),
            "ms",
        ),
    ]
}
