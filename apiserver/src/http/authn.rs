//! Authentication: a kube-apiserver token file (`--token-auth-file`) or a verified client
//! certificate (its CN, passed on by the TLS layer) names the `User`.

use std::collections::HashMap;

use ::http::HeaderMap;

use crate::error::ApiError;
use crate::http::tls;

/// Paths served without authentication (kube-apiserver's `system:public-info-viewer`).
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

/// A user known from the token file or a client certificate.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// Reads a kube-apiserver token file: `token,user,uid[,"g1,g2"]`.
pub fn parse_token_file(text: &str) -> Result<HashMap<String, User>, String> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
            return Err(format!(
                "token file line {}: want token,user,uid[,groups]",
                n + 1
            ));
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            fields[0].clone(),
            User {
                name: fields[1].clone(),
                groups,
            },
        );
    }
    Ok(out)
}

/// Checks the bearer token against `tokens` when a token file is configured (`App` holds
/// them). Requests that arrived with a verified client certificate carry
/// `x-mainstay-client-cert-user` set by the TLS layer (which strips it from requests).
pub fn authenticate(
    tokens: Option<&HashMap<String, User>>,
    headers: &HeaderMap,
) -> Result<Option<User>, ApiError> {
    if let Some(u) = headers
        .get(tls::CLIENT_CERT_USER_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        return Ok(Some(User {
            name: u.to_string(),
            groups: vec![],
        }));
    }
    let Some(tokens) = tokens else {
        return Ok(None);
    };
    let token = headers
        .get(::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match token.and_then(|t| tokens.get(t)) {
        Some(u) => Ok(Some(u.clone())),
        None => Err(ApiError::unauthorized()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_like_kube() {
        let t =
            parse_token_file("# comment\nabc,admin,1,\"system:masters,dev\"\nxyz,bob,2\n").unwrap();
        assert_eq!(t["abc"].name, "admin");
        assert_eq!(t["abc"].groups, vec!["system:masters", "dev"]);
        assert!(t["xyz"].groups.is_empty());
        assert!(parse_token_file("onlytoken\n").is_err());
    }
}
