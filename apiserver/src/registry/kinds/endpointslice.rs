//! discovery.k8s.io/v1 EndpointSlices (kube's `pkg/apis/discovery/validation`): the address
//! type is required and never changes, at most 1000 endpoints of 1 to 100 addresses each
//! (checked against the address type) and at most 100 ports with unique names.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde_json::{json, Value};

use crate::error::Cause;
use crate::machinery::validation::{dns1123_label, dns1123_subdomain};
use crate::registry::kinds::fields::{immutable, set_default};

const ADDRESS_TYPES: &[&str] = &["IPv4", "IPv6", "FQDN"];
const ENDPOINTS_MAX: usize = 1000;
const ADDRESSES_MAX: usize = 100;
const PORTS_MAX: usize = 100;
const PROTOCOLS: &[&str] = &["TCP", "UDP", "SCTP"];

fn too_many(field: String, n: usize, max: usize) -> Cause {
    Cause {
        reason: "FieldValueTooMany",
        field,
        message: format!("Too many: {n}: must have at most {max} items"),
    }
}

/// `SetDefaults_EndpointPort`: a port's name defaults to "" and its protocol to TCP.
pub fn default_endpoint_slice(slice: &mut Value) {
    if let Some(ports) = slice.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            set_default(p, "/name", json!(""));
            set_default(p, "/protocol", json!("TCP"));
        }
    }
}

/// `ValidateEndpointSlice` (the checks controllers and kube-proxy rely on).
pub fn validate_endpoint_slice(slice: &Value, causes: &mut Vec<Cause>) {
    let address_type = slice.get("addressType").and_then(Value::as_str);
    match address_type {
        None | Some("") => causes.push(Cause::required("addressType")),
        Some(t) if !ADDRESS_TYPES.contains(&t) => {
            causes.push(Cause::unsupported("addressType", t, ADDRESS_TYPES))
        }
        Some(_) => {}
    }
    let endpoints = slice
        .get("endpoints")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if endpoints.len() > ENDPOINTS_MAX {
        causes.push(too_many("endpoints".into(), endpoints.len(), ENDPOINTS_MAX));
    }
    for (i, ep) in endpoints.iter().enumerate() {
        let at = format!("endpoints[{i}]");
        let addresses = ep
            .get("addresses")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if addresses.is_empty() {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: format!("{at}.addresses"),
                message: "Required value: must contain at least 1 address".into(),
            });
        } else if addresses.len() > ADDRESSES_MAX {
            causes.push(too_many(
                format!("{at}.addresses"),
                addresses.len(),
                ADDRESSES_MAX,
            ));
        }
        for (j, a) in addresses.iter().enumerate() {
            let field = format!("{at}.addresses[{j}]");
            let s = a.as_str().unwrap_or("");
            let why = match address_type {
                Some("IPv4") => s
                    .parse::<Ipv4Addr>()
                    .is_err()
                    .then(|| "must be a valid IPv4 address".to_string()),
                Some("IPv6") => s
                    .parse::<Ipv6Addr>()
                    .is_err()
                    .then(|| "must be a valid IPv6 address".to_string()),
                // IsFullyQualifiedDomainName: a subdomain of at least two labels.
                Some("FQDN") => dns1123_subdomain(s.trim_end_matches('.')).or_else(|| {
                    (!s.trim_end_matches('.').contains('.')).then(|| {
                        "should be a domain with at least two segments separated by dots"
                            .to_string()
                    })
                }),
                _ => None,
            };
            if let Some(why) = why {
                causes.push(Cause::invalid(field, a, &why));
            }
        }
        if let Some(node) = ep.get("nodeName").and_then(Value::as_str) {
            if let Some(why) = dns1123_subdomain(node) {
                causes.push(Cause::invalid(format!("{at}.nodeName"), &json!(node), &why));
            }
        }
        if let Some(host) = ep.get("hostname").and_then(Value::as_str) {
            if let Some(why) = dns1123_label(host) {
                causes.push(Cause::invalid(format!("{at}.hostname"), &json!(host), &why));
            }
        }
    }
    let ports = slice
        .get("ports")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    if ports.len() > PORTS_MAX {
        causes.push(too_many("ports".into(), ports.len(), PORTS_MAX));
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, p) in ports.iter().enumerate() {
        let at = format!("ports[{i}]");
        if let Some(name) = p.get("name").and_then(Value::as_str) {
            if !name.is_empty() {
                if let Some(why) = dns1123_label(name) {
                    causes.push(Cause::invalid(format!("{at}.name"), &json!(name), &why));
                }
            }
            if names.contains(&name) {
                causes.push(Cause::duplicate(format!("{at}.name"), &json!(name)));
            }
            names.push(name);
        }
        match p.get("protocol").and_then(Value::as_str) {
            Some(proto) if !PROTOCOLS.contains(&proto) => causes.push(Cause::unsupported(
                format!("{at}.protocol"),
                proto,
                PROTOCOLS,
            )),
            None => causes.push(Cause::required(format!("{at}.protocol"))),
            Some(_) => {}
        }
        if let Some(n) = p.get("port").and_then(Value::as_i64) {
            if !(0..=65535).contains(&n) {
                causes.push(Cause::invalid(
                    format!("{at}.port"),
                    &json!(n),
                    "must be between 0 and 65535, inclusive",
                ));
            }
        }
    }
}

/// `ValidateEndpointSliceUpdate`: the address type never changes.
pub fn validate_endpoint_slice_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    immutable(old, new, "addressType", causes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn ports_default_and_a_valid_slice_passes() {
        let mut s = json!({"addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "n1"}],
            "ports": [{"port": 80}]});
        default_endpoint_slice(&mut s);
        assert_eq!(
            s["ports"][0],
            json!({"port": 80, "name": "", "protocol": "TCP"})
        );
        let mut causes = Vec::new();
        validate_endpoint_slice(&s, &mut causes);
        assert!(causes.is_empty(), "{:?}", rendered(&causes));
    }

    #[test]
    fn addresses_are_checked_by_address_type() {
        let mut causes = Vec::new();
        let s = json!({"addressType": "IPv6", "endpoints": [{"addresses": ["10.0.0.1", "::1"]}, {"addresses": []}]});
        validate_endpoint_slice(&s, &mut causes);
        assert_eq!(
            rendered(&causes),
            vec![
                "endpoints[0].addresses[0]: Invalid value: \"10.0.0.1\": must be a valid IPv6 address",
                "endpoints[1].addresses: Required value: must contain at least 1 address",
            ]
        );
        let mut causes = Vec::new();
        let s =
            json!({"addressType": "FQDN", "endpoints": [{"addresses": ["db.example.com", "db"]}]});
        validate_endpoint_slice(&s, &mut causes);
        assert_eq!(
            rendered(&causes),
            vec!["endpoints[0].addresses[1]: Invalid value: \"db\": should be a domain with at least two segments separated by dots"]
        );
        let mut causes = Vec::new();
        validate_endpoint_slice(&json!({"endpoints": []}), &mut causes);
        validate_endpoint_slice(&json!({"addressType": "IPX"}), &mut causes);
        assert_eq!(
            rendered(&causes),
            vec![
                "addressType: Required value",
                "addressType: Unsupported value: \"IPX\": supported values: \"IPv4\", \"IPv6\", \"FQDN\"",
            ]
        );
    }

    #[test]
    fn limits_on_endpoints_and_ports() {
        let eps: Vec<Value> = (0..1001).map(|_| json!({"addresses": ["a.b"]})).collect();
        let ports: Vec<Value> = (0..101)
            .map(|i| json!({"name": format!("p{i}"), "protocol": "TCP"}))
            .collect();
        let mut causes = Vec::new();
        validate_endpoint_slice(
            &json!({"addressType": "FQDN", "endpoints": eps, "ports": ports}),
            &mut causes,
        );
        assert_eq!(
            rendered(&causes),
            vec![
                "endpoints: Too many: 1001: must have at most 1000 items",
                "ports: Too many: 101: must have at most 100 items",
            ]
        );
        let mut causes = Vec::new();
        validate_endpoint_slice(
            &json!({"addressType": "FQDN", "ports": [{"name": "a", "protocol": "TCP"}, {"name": "a", "protocol": "TCP"}]}),
            &mut causes,
        );
        assert_eq!(
            rendered(&causes),
            vec!["ports[1].name: Duplicate value: \"a\""]
        );
    }

    #[test]
    fn the_address_type_is_immutable() {
        let mut causes = Vec::new();
        validate_endpoint_slice_update(
            &json!({"addressType": "IPv4"}),
            &json!({"addressType": "IPv6"}),
            &mut causes,
        );
        assert_eq!(
            rendered(&causes),
            vec!["addressType: Invalid value: \"IPv6\": field is immutable"]
        );
    }
}
