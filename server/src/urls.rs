//! The URL forms a member accepts: listen URLs (`http://IP:port`, or `localhost`) and advertised
//! URLs (`http://host:port`, where the host may also be a DNS name).

use std::net::SocketAddr;

use crate::error::{Result, ServerError};

/// `http://host:port` → (host without brackets, port).
fn split_http_url(url: &str) -> Result<(&str, u16)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ServerError::Config(format!("{url}: only http:// URLs are supported")))?;
    let hostport = rest.trim_end_matches('/');
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| ServerError::Config(format!("{url}: missing port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| ServerError::Config(format!("{url}: bad port")))?;
    Ok((host.trim_start_matches('[').trim_end_matches(']'), port))
}

/// `http://host:port` → a socket address to listen on.
pub fn parse_listen_url(url: &str) -> Result<SocketAddr> {
    let (host, port) = split_http_url(url)?;
    let ip = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        "" => std::net::Ipv4Addr::UNSPECIFIED.into(),
        h => h.parse().map_err(|_| {
            ServerError::Config(format!("{url}: host must be an IP address or localhost"))
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Checks an advertised URL (a peer or client URL other members and clients dial):
/// `http://host:port`, where the host is an IP address or a DNS name (as etcd allows for
/// advertised URLs; only listen URLs must be IP addresses).
pub fn check_advertised_url(url: &str) -> Result<()> {
    let (host, _) = split_http_url(url)?;
    let name_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if host.parse::<std::net::IpAddr>().is_ok() || name_ok {
        Ok(())
    } else {
        Err(ServerError::Config(format!(
            "{url}: host must be an IP address or a DNS name"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_urls_parse_like_etcd() {
        assert_eq!(
            parse_listen_url("http://127.0.0.1:2379").unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
        assert_eq!(
            parse_listen_url("http://localhost:2379/").unwrap(),
            "127.0.0.1:2379".parse().unwrap()
        );
        assert_eq!(
            parse_listen_url("http://[::1]:2379").unwrap(),
            "[::1]:2379".parse().unwrap()
        );
        assert!(parse_listen_url("https://127.0.0.1:2379").is_err());
        assert!(parse_listen_url("http://127.0.0.1").is_err());
        assert!(parse_listen_url("http://example.com:2379").is_err());
    }

    #[test]
    fn advertised_urls_may_name_hosts() {
        for ok in [
            "http://127.0.0.1:2380",
            "http://[::1]:2380",
            "http://m1:2380",
            "http://etcd-1.example.com:2380/",
            "http://localhost:2379",
        ] {
            assert!(check_advertised_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://m1:2380",
            "http://m1",
            "http://m1:port",
            "http://:2380",
            "http://m_1:2380",
            "http://-m1:2380",
            "http://m1..x:2380",
        ] {
            assert!(check_advertised_url(bad).is_err(), "{bad}");
        }
    }
}
