//! `mainstay apiserver`: a Kubernetes API server replica, with kube-apiserver's flag names where
//! they mean the same; and the certificates and kubeconfig `mainstay dev` hands to users.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Args, Debug)]
pub struct ApiserverArgs {
    /// Comma-separated etcd client URLs (real etcd or Mainstay members).
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    etcd_servers: String,
    /// Key prefix for everything this apiserver stores.
    #[arg(long, default_value = "/registry")]
    etcd_prefix: String,
    /// How often old revisions are compacted (Go duration, `0` disables).
    #[arg(long, default_value = "5m0s")]
    etcd_compaction_interval: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    bind_address: std::net::IpAddr,
    /// Port to serve the API on (HTTPS when --tls-cert-file is given, plain HTTP otherwise).
    #[arg(long, default_value_t = 6443)]
    secure_port: u16,
    /// Serving certificate (PEM).
    #[arg(long)]
    tls_cert_file: Option<PathBuf>,
    /// Serving certificate's private key (PEM).
    #[arg(long)]
    tls_private_key_file: Option<PathBuf>,
    /// CA bundle; client certificates it signed authenticate (CN = user name).
    #[arg(long)]
    client_ca_file: Option<PathBuf>,
    /// Bearer tokens: lines of `token,user,uid[,"group1,group2"]`. Without it (and without
    /// --client-ca-file) requests are not authenticated.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// Serve watches and `resourceVersion=0` lists from an in-memory cache.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    watch_cache: bool,
    /// How long events are kept (Go duration).
    #[arg(long, default_value = "1h0m0s")]
    event_ttl: String,
    /// ClusterIP range for services (IPv4 CIDR).
    #[arg(long, default_value = "10.96.0.0/12")]
    service_cluster_ip_range: String,
    /// Read-only requests served at once; more get 429 (watches are not counted; 0 = no limit).
    #[arg(long, default_value_t = 400)]
    max_requests_inflight: usize,
    /// Mutating requests served at once; more get 429 (0 = no limit).
    #[arg(long, default_value_t = 200)]
    max_mutating_requests_inflight: usize,
    /// The tolerationSeconds of the `node.kubernetes.io/not-ready:NoExecute` toleration the
    /// DefaultTolerationSeconds admission adds to every pod without one.
    #[arg(long, default_value_t = 300)]
    default_not_ready_toleration_seconds: i64,
    /// The tolerationSeconds of the `node.kubernetes.io/unreachable:NoExecute` toleration the
    /// DefaultTolerationSeconds admission adds to every pod without one.
    #[arg(long, default_value_t = 300)]
    default_unreachable_toleration_seconds: i64,
}

/// Parses a Go duration (`5m0s`, `1h`, `300ms`, `0`).
pub fn parse_go_duration(s: &str) -> anyhow::Result<Duration> {
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
            continue;
        }
        let mut unit = c.to_string();
        if c == 'm' && chars.peek() == Some(&'s') {
            unit.push('s');
            chars.next();
        }
        let n: f64 = num.parse().with_context(|| format!("bad duration {s:?}"))?;
        num.clear();
        let secs = match unit.as_str() {
            "h" => n * 3600.0,
            "m" => n * 60.0,
            "s" => n,
            "ms" => n / 1000.0,
            _ => bail!("bad duration {s:?}: unknown unit {unit:?}"),
        };
        total += Duration::from_secs_f64(secs);
        any = true;
    }
    if !num.is_empty() || !any {
        bail!("bad duration {s:?}: missing unit");
    }
    Ok(total)
}

fn parse_cidr(s: &str) -> anyhow::Result<(std::net::Ipv4Addr, u8)> {
    let (ip, bits) = s
        .split_once('/')
        .with_context(|| format!("--service-cluster-ip-range {s:?}: want a.b.c.d/n"))?;
    let ip: std::net::Ipv4Addr = ip
        .parse()
        .with_context(|| format!("--service-cluster-ip-range {s:?}"))?;
    let bits: u8 = bits
        .parse()
        .with_context(|| format!("--service-cluster-ip-range {s:?}"))?;
    if !(8..=28).contains(&bits) {
        bail!("--service-cluster-ip-range {s:?}: prefix length must be 8..=28");
    }
    Ok((ip, bits))
}

impl ApiserverArgs {
    fn into_config(self) -> anyhow::Result<mainstay_apiserver::Config> {
        let etcd_servers: Vec<String> = self
            .etcd_servers
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect();
        if etcd_servers.is_empty() {
            bail!("--etcd-servers must name at least one URL");
        }
        if !self.etcd_prefix.starts_with('/') {
            bail!("--etcd-prefix must start with '/'");
        }
        Ok(mainstay_apiserver::Config {
            etcd_servers,
            etcd_prefix: self.etcd_prefix,
            bind_address: self.bind_address,
            secure_port: self.secure_port,
            tls_cert_file: self.tls_cert_file,
            tls_private_key_file: self.tls_private_key_file,
            client_ca_file: self.client_ca_file,
            token_auth_file: self.token_auth_file,
            compaction_interval: parse_go_duration(&self.etcd_compaction_interval)?,
            watch_cache: self.watch_cache,
            event_ttl: parse_go_duration(&self.event_ttl)?,
            service_cluster_ip_range: parse_cidr(&self.service_cluster_ip_range)?,
            max_requests_inflight: self.max_requests_inflight,
            max_mutating_requests_inflight: self.max_mutating_requests_inflight,
            default_not_ready_toleration_seconds: self.default_not_ready_toleration_seconds,
            default_unreachable_toleration_seconds: self.default_unreachable_toleration_seconds,
        })
    }
}

pub async fn run(args: ApiserverArgs) -> anyhow::Result<()> {
    let config = args.into_config()?;
    let app = mainstay_apiserver::build(config).await?;
    // Stateless: on SIGTERM/Ctrl-C it simply stops; clients retry on another replica.
    tokio::select! {
        r = mainstay_apiserver::serve(app) => r?,
        _ = crate::signal::shutdown() => {}
    }
    Ok(())
}

/// Files `mainstay dev` writes for its apiservers and users.
pub struct DevCredentials {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub token_file: PathBuf,
    pub token: String,
    ca_pem: String,
}

/// A CA, a serving certificate for localhost/127.0.0.1 signed by it, and an admin token —
/// made once per data directory and reused on later runs.
pub fn dev_credentials(dir: &Path) -> anyhow::Result<DevCredentials> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    std::fs::create_dir_all(dir)?;
    let creds = DevCredentials {
        ca_file: dir.join("ca.crt"),
        cert_file: dir.join("apiserver.crt"),
        key_file: dir.join("apiserver.key"),
        token_file: dir.join("tokens.csv"),
        token: String::new(),
        ca_pem: String::new(),
    };
    let exists = [
        &creds.ca_file,
        &creds.cert_file,
        &creds.key_file,
        &creds.token_file,
    ]
    .iter()
    .all(|p| p.exists());
    if !exists {
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "mainstay-dev-ca");
        let ca_key = KeyPair::generate()?;
        let ca_cert = ca.self_signed(&ca_key)?;
        let mut server = CertificateParams::new(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default.svc".to_string(),
        ])?;
        server
            .distinguished_name
            .push(DnType::CommonName, "kube-apiserver");
        let server_key = KeyPair::generate()?;
        let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key)?;
        let token: String = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..32)
                .map(|_| format!("{:x}", rng.random_range(0..16u8)))
                .collect()
        };
        std::fs::write(&creds.ca_file, ca_cert.pem())?;
        std::fs::write(&creds.cert_file, server_cert.pem())?;
        write_private(&creds.key_file, &server_key.serialize_pem())?;
        write_private(
            &creds.token_file,
            &format!("{token},admin,admin,\"system:masters\"\n"),
        )?;
    }
    let token_line = std::fs::read_to_string(&creds.token_file)?;
    let token = token_line
        .split(',')
        .next()
        .unwrap_or("")
        .trim()
        .to_string();
    let ca_pem = std::fs::read_to_string(&creds.ca_file)?;
    Ok(DevCredentials {
        token,
        ca_pem,
        ..creds
    })
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}

/// A kubeconfig with one context per apiserver replica (the first is current).
pub fn write_kubeconfig(
    path: &Path,
    creds: &DevCredentials,
    servers: &[String],
) -> anyhow::Result<()> {
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(&creds.ca_pem);
    let mut clusters = String::new();
    let mut contexts = String::new();
    for (i, s) in servers.iter().enumerate() {
        let name = if i == 0 {
            "mainstay-dev".to_string()
        } else {
            format!("mainstay-dev-{}", i + 1)
        };
        clusters.push_str(&format!(
            "- name: {name}\n  cluster:\n    server: {s}\n    certificate-authority-data: {ca}\n"
        ));
        contexts.push_str(&format!(
            "- name: {name}\n  context:\n    cluster: {name}\n    user: admin\n    namespace: default\n"
        ));
    }
    let text = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n{clusters}contexts:\n{contexts}current-context: mainstay-dev\nusers:\n- name: admin\n  user:\n    token: {}\n",
        creds.token
    );
    write_private(path, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("5m0s").unwrap(), Duration::from_secs(300));
        assert_eq!(parse_go_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(
            parse_go_duration("1h30m").unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(
            parse_go_duration("250ms").unwrap(),
            Duration::from_millis(250)
        );
        assert_eq!(parse_go_duration("0").unwrap(), Duration::ZERO);
        assert!(parse_go_duration("5").is_err());
        assert!(parse_go_duration("5x").is_err());
    }

    #[test]
    fn cidrs() {
        assert_eq!(parse_cidr("10.96.0.0/12").unwrap().1, 12);
        assert!(parse_cidr("10.96.0.0").is_err());
        assert!(parse_cidr("10.96.0.0/40").is_err());
    }
}
