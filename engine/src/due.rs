//! Time-driven work, the one place that lists the services that have any: what is due on the
//! engine clock (`%clock advance` runs it; on the system clock a background loop does), and the
//! stream generator, which advances a manual clock second by second and runs the due work.

use crate::clock::ClockMode;
use crate::error::{Error, Result};
use crate::{Lakebook, catalog, streams};

/// What `%stream generate` asks for.
#[derive(Debug, Clone)]
pub struct GenerateSpec {
    pub stream: String,
    pub template: streams::generator::Template,
    /// Records per second.
    pub rate: f64,
    pub duration: std::time::Duration,
    pub seed: Option<u64>,
}

#[derive(Debug, Default)]
pub struct GenerateReport {
    pub sent: u64,
    pub stored: u64,
    pub throttled: u64,
    pub failed: u64,
    pub first_error: Option<Error>,
    /// What time-driven work ran while the generator advanced a manual clock.
    pub due_work: Vec<String>,
}

impl Lakebook {
    /// Runs the time-driven work that is due on the engine clock (scheduled crawlers …) and
    /// reports what ran. `%clock advance` calls it so manual-clock notebooks stay
    /// deterministic; on the system clock a background loop calls it.
    pub async fn run_due_work(&self) -> Vec<String> {
        let mut reports = Vec::new();
        match self.streams.expire() {
            Ok(0) => {}
            Ok(n) => reports.push(format!("{n} stream record(s) passed their retention period and expired")),
            Err(e) => reports.push(format!("stream retention failed: {e}")),
        }
        match self.streams.autoscale() {
            Ok(scaled) => reports.extend(scaled),
            Err(e) => reports.push(format!("on-demand scaling failed: {e}")),
        }
        // Before Firehose, so rows an application sends to a Firehose stream (or to a stream
        // a Firehose stream reads) are delivered by the same advance when they are due.
        reports.extend(self.analytics.run_due(self.analytics_sinks()).await);
        match self.firehose.run_due().await {
            Ok(delivery) => reports.extend(delivery.lines().into_iter().map(|line| format!("firehose {line}"))),
            Err(e) => reports.push(format!("firehose delivery failed: {e}")),
        }
        match self.emr.run_due(self.clock.now()) {
            Ok(changes) => reports.extend(changes),
            Err(e) => reports.push(format!("EMR state changes failed: {e}")),
        }
        match self.redshift.run_due(self.clock.now()) {
            Ok(changes) => reports.extend(changes),
            Err(e) => reports.push(format!("Redshift snapshots failed: {e}")),
        }
        for name in self.catalog.due_crawlers(self.clock.now()) {
            let report = match self.catalog.run_crawler(&self.lake, &name, &mut |_, _| {}).await {
                Ok(summary) => format!(
                    "scheduled crawler {name} ran: {} table(s) created, {} updated, {} partition(s) added",
                    summary.count(catalog::TableAction::Created),
                    summary.count(catalog::TableAction::Updated),
                    summary.partitions_added()
                ),
                Err(e) => format!("scheduled crawler {name} failed: {e}"),
            };
            reports.push(report);
        }
        // After the crawlers, so a trigger watching a scheduled crawler fires in the same pass.
        reports.extend(self.glue.run_due_triggers(&self.lake).await);
        // Last, so a SPICE refresh sees what this pass delivered, crawled and transformed.
        reports.extend(self.dashboards.run_due().await);
        reports
    }

    /// Produces records into a stream at `rate` for `duration` of engine time, one second at
    /// a time, with PutRecords calls of ≤ 500 (so the stream's limits apply and throttled
    /// records are counted, as the Kinesis Data Generator reports them). On the manual clock
    /// each second is simulated (the clock advances and due work runs); on the system clock
    /// the generator paces itself in real time. Cancel by dropping the future.
    pub async fn generate(&self, spec: &GenerateSpec, mut progress: impl FnMut(&GenerateReport, u64)) -> Result<GenerateReport> {
        self.streams.describe(&spec.stream)?;
        let seconds = spec.duration.as_secs_f64().ceil() as u64;
        let total = (spec.rate * spec.duration.as_secs_f64()).round() as u64;
        let mut rng = streams::generator::rng(spec.seed);
        let mut report = GenerateReport::default();
        let started = tokio::time::Instant::now();
        for tick in 0..seconds {
            // Whole records per second even for fractional rates: the running total rounds.
            let due = ((spec.rate * (tick + 1) as f64).round() as u64).min(total);
            let count = due - report.sent;
            let base = self.clock.now();
            let mut batch = Vec::with_capacity(count as usize);
            for i in 0..count {
                let offset = chrono::Duration::milliseconds((i as f64 * 1000.0 / count as f64) as i64);
                let data = spec.template.render(&mut rng, base + offset);
                let partition_key = spec.template.partition_key(&data, &mut rng);
                batch.push(streams::PutEntry { partition_key, data: bytes::Bytes::from(data), explicit_hash_key: None });
            }
            report.sent += batch.len() as u64;
            for result in self.streams.put_records_in_calls(&spec.stream, batch)? {
                match result {
                    Ok(_) => report.stored += 1,
                    Err(e) => {
                        if e.code() == streams::THROTTLED {
                            report.throttled += 1;
                        } else {
                            report.failed += 1;
                        }
                        report.first_error.get_or_insert(e);
                    }
                }
            }
            progress(&report, total);
            if self.clock.mode() == ClockMode::Manual {
                self.clock.advance(std::time::Duration::from_secs(1))?;
                report.due_work.extend(self.run_due_work().await);
            } else {
                tokio::time::sleep_until(started + std::time::Duration::from_secs(tick + 1)).await;
            }
        }
        Ok(report)
    }
}
