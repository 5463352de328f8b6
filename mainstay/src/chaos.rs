//! `mainstay chaos`: the chaos suite (see `mainstay-chaos`) against the docker compose cluster.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use mainstay_chaos::Options;

#[derive(Args)]
pub struct ChaosArgs {
    /// The compose file with the store members.
    #[arg(long, default_value = "docker-compose.yml")]
    compose_file: PathBuf,
    /// The compose project the run makes (fresh: its containers and volumes are removed first).
    #[arg(long, default_value = "mainstay-chaos")]
    project: String,
    /// A store member as `service=client URL on this host` (repeatable; default: the compose
    /// file's m1, m2, m3 on 127.0.0.1:2379, :22379, :32379).
    #[arg(long = "member")]
    members: Vec<String>,
    /// The image to run (the compose file's MAINSTAY_IMAGE).
    #[arg(long)]
    image: Option<String>,
    /// Faults of each kind (kill leader, kill follower, pause, partition, restart all).
    #[arg(long, default_value_t = 10)]
    faults_per_kind: usize,
    /// Run faults, kinds in turn, for this long instead (e.g. 30m, 2h, 90s).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Keys the clients share.
    #[arg(long, default_value_t = 10)]
    keys: usize,
    /// Watch streams over the keys.
    #[arg(long, default_value_t = 3)]
    watchers: usize,
    /// Bound on each client call, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    op_timeout_ms: u64,
    /// Seed of the workload's and the faults' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where chaos-report.json (and, when a check fails, chaos-history.txt) go.
    #[arg(long, default_value = "chaos-out")]
    out_dir: PathBuf,
    /// Leave the cluster running afterwards.
    #[arg(long)]
    keep_running: bool,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| format!("{s}: not a duration"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("{s}: the unit must be s, m or h")),
    };
    Ok(Duration::from_secs(seconds))
}

pub async fn run(args: ChaosArgs) -> anyhow::Result<()> {
    let services = if args.members.is_empty() {
        vec![
            ("m1".to_string(), "http://127.0.0.1:2379".to_string()),
            ("m2".to_string(), "http://127.0.0.1:22379".to_string()),
            ("m3".to_string(), "http://127.0.0.1:32379".to_string()),
        ]
    } else {
        args.members
            .iter()
            .map(|m| {
                m.split_once('=')
                    .map(|(s, u)| (s.to_string(), u.to_string()))
                    .with_context(|| format!("--member {m}: expected service=URL"))
            })
            .collect::<anyhow::Result<_>>()?
    };
    if args.clients == 0 || args.keys == 0 || services.len() < 2 {
        bail!("the suite needs at least one client, one key and two members");
    }
    let options = Options {
        compose_file: args.compose_file,
        project: args.project,
        services,
        image: args.image,
        faults_per_kind: args.faults_per_kind,
        duration: args.duration,
        clients: args.clients,
        keys: args.keys,
        watchers: args.watchers,
        op_timeout: Duration::from_millis(args.op_timeout_ms.max(1)),
        seed: args.seed,
        out_dir: args.out_dir.clone(),
        keep_running: args.keep_running,
    };
    let report = mainstay_chaos::run(&options).await?;
    print!("{}", report.text());
    println!(
        "report: {}",
        args.out_dir.join("chaos-report.json").display()
    );
    if !report.passed() {
        bail!(
            "the chaos suite found violations (record in {})",
            args.out_dir.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("m").is_err());
    }
}
