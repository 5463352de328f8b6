//! A `kube::Client` from `--kubeconfig`, or from the environment (kube's `Config::infer`:
//! `$KUBECONFIG`, `~/.kube/config`, then the pod's service account).
//!
//! TLS is rustls on ring (kube's `rustls-tls` + `ring` features). A kubeconfig's
//! `certificate-authority-data`, or `certificate-authority` (a path, relative to the kubeconfig's
//! folder), becomes the only trusted root; `token` becomes a bearer token. Mainstay's dev
//! kubeconfig uses exactly those, with a serving certificate for `localhost` and `127.0.0.1`.

use std::path::Path;

use axum::http::{header::USER_AGENT, HeaderValue};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::Error;

/// A client for the current context of `kubeconfig` (or of the inferred configuration), sending
/// `User-Agent: user_agent` (e.g. "kube-scheduler/v1.32.0 (mainstay)").
pub async fn client(kubeconfig: Option<&Path>, user_agent: &str) -> Result<kube::Client, Error> {
    let config = with_user_agent(config(kubeconfig).await?, user_agent)?;
    Ok(kube::Client::try_from(config)?)
}

/// The client configuration [`client`] uses.
pub async fn config(kubeconfig: Option<&Path>) -> Result<kube::Config, Error> {
    match kubeconfig {
        Some(path) => {
            let wrap = |source| Error::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(wrap)?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(wrap)
        }
        None => kube::Config::infer().await.map_err(Error::InferConfig),
    }
}

fn with_user_agent(mut config: kube::Config, user_agent: &str) -> Result<kube::Config, Error> {
    let value =
        HeaderValue::from_str(user_agent).map_err(|_| Error::UserAgent(user_agent.to_string()))?;
    config.headers.retain(|(name, _)| *name != USER_AGENT);
    config.headers.push((USER_AGENT, value));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A self-signed P-256 CA certificate (public part only) made for these tests with openssl;
    /// valid until 2126.
    const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBoDCCAUegAwIBAgIUYefk+ZcrSp7K7UWiUELu41Eua98wCgYIKoZIzj0EAwIw
JTEjMCEGA1UEAwwabWFpbnN0YXktY29tcG9uZW50LXRlc3QtY2EwIBcNMjYxMjAy
MTgyMjA0WhgPMjEyNjExMDgxODIyMDRaMCUxIzAhBgNVBAMMGm1haW5zdGF5LWNv
bXBvbmVudC10ZXN0LWNhMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAETJd3jzor
LRuO+O2IBKI5MD65eT7+JSGlB+WCbCtsjMBb8AYnoa+iO0rJKIssCqfzkhRkLiVQ
V2Us91xdiTyK56NTMFEwHQYDVR0OBBYEFDSOU6eREY86UD/d2N6j/YlTjwhsMB8G
A1UdIwQYMBaAFDSOU6eREY86UD/d2N6j/YlTjwhsMA8GA1UdEwEB/wQFMAMBAf8w
CgYIKoZIzj0EAwIDRwAwRAIgOQuuOhSU68AbhPPxgNir7U9LAutQZd602ob4QNYD
nocCIHZtNlSJgUEGINHcXaEXL2mTTQeci3y6/hqEw24NmIZn
-----END CERTIFICATE-----
";

    /// `CA_PEM`, base64-encoded, as `certificate-authority-data` holds it.
    const CA_DATA: &str = "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJvRENDQVVlZ0F3SUJBZ0lVWWVmaytaY3JTcDdLN1VXaVVFTHU0MUV1YTk4d0NnWUlLb1pJemowRUF3SXcKSlRFak1DRUdBMVVFQXd3YWJXRnBibk4wWVhrdFkyOXRjRzl1Wlc1MExYUmxjM1F0WTJFd0lCY05Nall4TWpBeQpNVGd5TWpBMFdoZ1BNakV5TmpFeE1EZ3hPREl5TURSYU1DVXhJekFoQmdOVkJBTU1HbTFoYVc1emRHRjVMV052CmJYQnZibVZ1ZEMxMFpYTjBMV05oTUZrd0V3WUhLb1pJemowQ0FRWUlLb1pJemowREFRY0RRZ0FFVEpkM2p6b3IKTFJ1TytPMklCS0k1TUQ2NWVUNytKU0dsQitXQ2JDdHNqTUJiOEFZbm9hK2lPMHJKS0lzc0NxZnpraFJrTGlWUQpWMlVzOTF4ZGlUeUs1Nk5UTUZFd0hRWURWUjBPQkJZRUZEU09VNmVSRVk4NlVEL2QyTjZqL1lsVGp3aHNNQjhHCkExVWRJd1FZTUJhQUZEU09VNmVSRVk4NlVEL2QyTjZqL1lsVGp3aHNNQThHQTFVZEV3RUIvd1FGTUFNQkFmOHcKQ2dZSUtvWkl6ajBFQXdJRFJ3QXdSQUlnT1F1dU9oU1U2OEFiaFBQeGdOaXI3VTlMQXV0UVpkNjAyb2I0UU5ZRApub2NDSUhadE5sU0pnVUVHSU5IY1hhRVhMMm1UVFFlY2kzeTYvaHFFdzI0Tm1JWm4KLS0tLS1FTkQgQ0VSVElGSUNBVEUtLS0tLQo=";

    /// A private folder under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let dir = std::env::temp_dir().join(format!(
                "mainstay-component-{tag}-{}-{:x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            std::fs::create_dir_all(&dir).expect("temp dir");
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The shape `mainstay dev` writes: two contexts, the first current, CA data and a token.
    fn dev_kubeconfig(ca_line: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: mainstay-dev
  cluster:
    server: https://127.0.0.1:6443
    {ca_line}
- name: mainstay-dev-2
  cluster:
    server: https://127.0.0.1:6444
    {ca_line}
contexts:
- name: mainstay-dev
  context:
    cluster: mainstay-dev
    user: admin
    namespace: default
- name: mainstay-dev-2
  context:
    cluster: mainstay-dev-2
    user: admin
    namespace: default
current-context: mainstay-dev
users:
- name: admin
  user:
    token: 0123456789abcdef
"
        )
    }

    /// kube keeps the token in a `SecretString`; its serialization is the way to read it back.
    fn token(config: &kube::Config) -> Option<String> {
        serde_json::to_value(&config.auth_info)
            .ok()
            .and_then(|v| v["token"].as_str().map(str::to_string))
    }

    #[tokio::test]
    async fn a_dev_kubeconfig_gives_an_https_client_with_its_ca_and_token() {
        let dir = TempDir::new("kubeconfig-data");
        let path = dir.0.join("kubeconfig");
        std::fs::write(
            &path,
            dev_kubeconfig(&format!("certificate-authority-data: {CA_DATA}")),
        )
        .expect("write kubeconfig");
        let config = config(Some(&path)).await.expect("config");
        assert_eq!(config.cluster_url.to_string(), "https://127.0.0.1:6443/");
        assert_eq!(config.default_namespace, "default");
        assert_eq!(config.root_cert.as_ref().map(Vec::len), Some(1));
        assert!(!config.accept_invalid_certs);
        assert_eq!(token(&config).as_deref(), Some("0123456789abcdef"));

        let config = with_user_agent(config, "kube-scheduler/v1.32.0 (mainstay)").expect("ua");
        let agents: Vec<_> = config
            .headers
            .iter()
            .filter(|(n, _)| *n == USER_AGENT)
            .map(|(_, v)| v.to_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            agents,
            vec!["kube-scheduler/v1.32.0 (mainstay)".to_string()]
        );

        // Building the client parses the CA into rustls' root store (and picks the ring provider).
        client(Some(&path), "kube-scheduler/v1.32.0 (mainstay)")
            .await
            .expect("client");
    }

    #[tokio::test]
    async fn a_ca_path_is_read_relative_to_the_kubeconfig() {
        let dir = TempDir::new("kubeconfig-path");
        std::fs::write(dir.0.join("ca.crt"), CA_PEM).expect("write ca");
        let path = dir.0.join("kubeconfig");
        std::fs::write(&path, dev_kubeconfig("certificate-authority: ca.crt")).expect("write");
        let config = config(Some(&path)).await.expect("config");
        assert_eq!(config.root_cert.as_ref().map(Vec::len), Some(1));
        client(Some(&path), "kube-controller-manager/v1.32.0 (mainstay)")
            .await
            .expect("client");
    }

    #[tokio::test]
    async fn bad_inputs_are_errors() {
        let missing = Path::new("/nonexistent/mainstay/kubeconfig");
        let err = config(Some(missing)).await.expect_err("no such file");
        assert!(
            err.to_string().contains("/nonexistent/mainstay/kubeconfig"),
            "{err}"
        );

        let dir = TempDir::new("kubeconfig-ua");
        let path = dir.0.join("kubeconfig");
        std::fs::write(
            &path,
            dev_kubeconfig(&format!("certificate-authority-data: {CA_DATA}")),
        )
        .expect("write");
        let result = client(Some(&path), "bad\nagent").await;
        assert!(matches!(result, Err(Error::UserAgent(_))));
    }
}
