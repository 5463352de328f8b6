//! Kubernetes quantities and what a pod asks for (kube's `resource.Quantity` and
//! `component-helpers/resource.PodRequests`), as plain integers: milli-cpu, bytes, counts.
//!
//! Pure: no I/O. All arithmetic saturates, so no quantity the API server sends can overflow.
//!
//! **Malformed quantities** (the API server validates them, so this only happens with a broken
//! or foreign server) never panic. They are read conservatively, so a bad value can only keep a
//! pod off a node, never overcommit one:
//! - in a **pod's requests or overhead** a malformed quantity counts as [`UNPARSABLE_REQUEST`]
//!   (`i64::MAX`): nothing fits it, and the pod fails with `Insufficient <resource>`;
//! - in a **node's allocatable** a malformed quantity counts as zero.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

pub const CPU: &str = "cpu";
pub const MEMORY: &str = "memory";
pub const EPHEMERAL_STORAGE: &str = "ephemeral-storage";
pub const PODS: &str = "pods";

/// kube's `DefaultMilliCPURequest`: the cpu a container without a cpu request counts for in
/// scoring (never in filtering).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// kube's `DefaultMemoryRequest` (200 MiB), likewise.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// What a malformed quantity in a pod's requests counts for: more than any node has.
pub const UNPARSABLE_REQUEST: i64 = i64::MAX;

/// Why a string is not a Kubernetes quantity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scheduler: {0:?} is not a quantity")]
pub struct QuantityError(pub String);

/// A parsed quantity: `sign * digits * 10^exp10 * 2^exp2`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedQuantity {
    negative: bool,
    digits: u128,
    exp10: i32,
    exp2: u32,
}

/// Parses kube's quantity grammar:
/// `[+-] (digits | digits.digits | digits. | .digits) [suffix]`, where the suffix is one of the
/// binary SI suffixes `Ki Mi Gi Ti Pi Ei`, the decimal SI suffixes `m "" k M G T P E`, or a
/// decimal exponent `e<int>` / `E<int>` (`1E` alone is exa, `1E3` is a thousand).
pub fn parse_quantity(s: &str) -> Result<ParsedQuantity, QuantityError> {
    let err = || QuantityError(s.to_string());
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut negative = false;
    if let Some(&c) = bytes.first() {
        if c == b'+' || c == b'-' {
            negative = c == b'-';
            i = 1;
        }
    }
    let mut digits: u128 = 0;
    let mut exp10: i64 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    // Digits past what u128 holds only shift the exponent (they are below the precision that
    // matters for any resource; the value is rounded up anyway).
    let mut truncated = false;
    while i < bytes.len() {
        let c = bytes[i];
        if c.is_ascii_digit() {
            seen_digit = true;
            let d = u128::from(c - b'0');
            match digits.checked_mul(10).and_then(|v| v.checked_add(d)) {
                Some(v) if !truncated => {
                    digits = v;
                    if seen_dot {
                        exp10 -= 1;
                    }
                }
                _ => {
                    truncated = true;
                    if !seen_dot {
                        exp10 += 1;
                    }
                }
            }
        } else if c == b'.' && !seen_dot {
            seen_dot = true;
        } else {
            break;
        }
        i += 1;
    }
    if !seen_digit {
        return Err(err());
    }
    let suffix = &s[i..];
    let mut exp2 = 0u32;
    match suffix {
        "" => {}
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        _ => {
            let rest = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(err)?;
            let body = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if body.is_empty() || !body.bytes().all(|b| b.is_ascii_digit()) {
                return Err(err());
            }
            let e: i64 = rest.parse().map_err(|_| err())?;
            exp10 = exp10.checked_add(e).ok_or_else(err)?;
        }
    }
    // Anything beyond ±10^400 is absurd; clamp so the arithmetic below stays in range (the
    // results saturate long before).
    let exp10 = exp10.clamp(-400, 400) as i32;
    Ok(ParsedQuantity {
        negative,
        digits,
        exp10,
        exp2,
    })
}

impl ParsedQuantity {
    /// The value in units of `10^-scale` (scale 0: `Value()`, scale 3: `MilliValue()`), rounded
    /// up as kube rounds (`ScaledValue`: toward positive infinity), saturating at `i64`.
    pub fn scaled(&self, scale: i32) -> i64 {
        let magnitude = magnitude(self.digits, self.exp10 + scale, self.exp2, !self.negative);
        if self.negative {
            // Rounding toward +inf for a negative value is truncation of its magnitude.
            -(magnitude.min(i64::MAX as u128) as i64)
        } else {
            magnitude.min(i64::MAX as u128) as i64
        }
    }

    /// `Value()`: whole units, rounded up.
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// `MilliValue()`: thousandths, rounded up.
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
    }
}

/// `digits * 10^exp10 * 2^exp2`, rounded up when `round_up` (else truncated), saturating.
fn magnitude(digits: u128, exp10: i32, exp2: u32, round_up: bool) -> u128 {
    if digits == 0 {
        return 0;
    }
    let Some(mut v) = 1u128.checked_shl(exp2).and_then(|p| digits.checked_mul(p)) else {
        return u128::MAX;
    };
    if exp10 >= 0 {
        for _ in 0..exp10 {
            match v.checked_mul(10) {
                Some(n) => v = n,
                None => return u128::MAX,
            }
        }
        v
    } else {
        let mut divisor: u128 = 1;
        for _ in 0..(-exp10) {
            match divisor.checked_mul(10) {
                Some(d) => divisor = d,
                // The divisor exceeds any u128 value: the quotient is below one.
                None => return u128::from(round_up),
            }
        }
        let q = v / divisor;
        if round_up && v % divisor != 0 {
            q + 1
        } else {
            q
        }
    }
}

/// The unit a resource is counted in.
fn is_cpu(name: &str) -> bool {
    name == CPU
}

/// kube's `IsScalarResourceName`: extended resources (`example.com/gpu`), prefixed native
/// resources (`kubernetes.io/...`), hugepages and attachable volumes.
pub fn is_scalar_resource_name(name: &str) -> bool {
    if name.starts_with("requests.") {
        return false;
    }
    name.contains('/') || name.starts_with("hugepages-") || name.starts_with("attachable-volumes-")
}

/// A set of resource amounts: cpu in millicores, memory and ephemeral storage in bytes, `pods`
/// as a count, and scalar (extended) resources in whole units.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Only meaningful for allocatable: how many pods the node takes.
    pub pods: i64,
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a resource list. `on_malformed` is what an unparsable quantity counts for (see the
    /// module docs); resources that are neither native nor scalar are ignored, as kube does.
    pub fn from_list(list: &BTreeMap<String, Quantity>, on_malformed: i64) -> Resources {
        let mut r = Resources::default();
        r.add_list(list, on_malformed);
        r
    }

    /// A node's allocatable (malformed values count as zero).
    pub fn allocatable(list: Option<&BTreeMap<String, Quantity>>) -> Resources {
        list.map(|l| Resources::from_list(l, 0)).unwrap_or_default()
    }

    fn add_list(&mut self, list: &BTreeMap<String, Quantity>, on_malformed: i64) {
        for (name, q) in list {
            let amount = read(name, q, on_malformed);
            self.add_one(name, amount);
        }
    }

    fn add_one(&mut self, name: &str, amount: i64) {
        match name {
            CPU => self.milli_cpu = self.milli_cpu.saturating_add(amount),
            MEMORY => self.memory = self.memory.saturating_add(amount),
            EPHEMERAL_STORAGE => {
                self.ephemeral_storage = self.ephemeral_storage.saturating_add(amount)
            }
            PODS => self.pods = self.pods.saturating_add(amount),
            _ if is_scalar_resource_name(name) => {
                let e = self.scalar.entry(name.to_string()).or_insert(0);
                *e = e.saturating_add(amount);
            }
            _ => {}
        }
    }

    /// Adds `other` to `self` (saturating).
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_add(other.milli_cpu);
        self.memory = self.memory.saturating_add(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_add(other.ephemeral_storage);
        self.pods = self.pods.saturating_add(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = e.saturating_add(*v);
        }
    }

    /// Subtracts `other` from `self` (saturating; entries that reach zero are dropped).
    pub fn sub(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.saturating_sub(other.milli_cpu);
        self.memory = self.memory.saturating_sub(other.memory);
        self.ephemeral_storage = self
            .ephemeral_storage
            .saturating_sub(other.ephemeral_storage);
        self.pods = self.pods.saturating_sub(other.pods);
        for (k, v) in &other.scalar {
            if let Some(e) = self.scalar.get_mut(k) {
                *e = e.saturating_sub(*v);
                if *e == 0 {
                    self.scalar.remove(k);
                }
            }
        }
    }

    /// Takes the larger of each amount.
    pub fn max_with(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_insert(0);
            *e = (*e).max(*v);
        }
    }

    /// True when `other` asks for less of something than `self` (used to tell whether an
    /// update freed resources).
    pub fn any_less_than(&self, other: &Resources) -> bool {
        other.milli_cpu < self.milli_cpu
            || other.memory < self.memory
            || other.ephemeral_storage < self.ephemeral_storage
            || self
                .scalar
                .iter()
                .any(|(k, v)| other.scalar.get(k).copied().unwrap_or(0) < *v)
    }
}

/// One quantity in the unit its resource is counted in; requests are never negative.
fn read(name: &str, q: &Quantity, on_malformed: i64) -> i64 {
    match parse_quantity(&q.0) {
        Ok(p) => {
            let v = if is_cpu(name) {
                p.milli_value()
            } else {
                p.value()
            };
            v.max(0)
        }
        Err(_) => on_malformed,
    }
}

/// What a pod asks for, computed once per pod.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    /// kube's `PodRequests`: the sum of the containers' requests, at least the largest init
    /// container's (sidecars — init containers with `restartPolicy: Always` — run alongside and
    /// add up), plus the pod overhead. Used by filtering and by balanced allocation.
    pub requests: Resources,
    /// The same with a missing cpu or memory request counted as 100m / 200Mi per container
    /// (kube's `NonMissingContainerRequests`). Used by least-allocated scoring, so pods without
    /// requests still spread.
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
}

impl PodRequests {
    pub fn of(spec: &PodSpec) -> PodRequests {
        let requests = aggregate(spec, false);
        let non_zero = aggregate(spec, true);
        PodRequests {
            requests,
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
        }
    }
}

fn container_requests(c: &Container, non_missing: bool) -> Resources {
    let list = c.resources.as_ref().and_then(|r| r.requests.as_ref());
    let mut r = list
        .map(|l| Resources::from_list(l, UNPARSABLE_REQUEST))
        .unwrap_or_default();
    if non_missing {
        if !list.is_some_and(|l| l.contains_key(CPU)) {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.is_some_and(|l| l.contains_key(MEMORY)) {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

/// kube's `AggregateContainerRequests` + overhead.
fn aggregate(spec: &PodSpec, non_missing: bool) -> Resources {
    let mut reqs = Resources::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_missing));
    }
    let mut sidecars = Resources::default();
    let mut init_max = Resources::default();
    for c in spec.init_containers.iter().flatten() {
        let mut r = container_requests(c, non_missing);
        if c.restart_policy.as_deref() == Some("Always") {
            // A sidecar keeps running: it adds to the pod's total and to every later init
            // container's peak.
            reqs.add(&r);
            sidecars.add(&r);
            r = sidecars.clone();
        } else {
            r.add(&sidecars);
        }
        init_max.max_with(&r);
    }
    reqs.max_with(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add_list(overhead, UNPARSABLE_REQUEST);
    }
    reqs
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn milli(s: &str) -> i64 {
        parse_quantity(s).unwrap().milli_value()
    }
    fn value(s: &str) -> i64 {
        parse_quantity(s).unwrap().value()
    }

    #[test]
    fn cpu_forms_in_millicores() {
        assert_eq!(milli("100m"), 100);
        assert_eq!(milli("2"), 2000);
        assert_eq!(milli("1.5"), 1500);
        assert_eq!(milli("0.1"), 100);
        assert_eq!(milli(".5"), 500);
        assert_eq!(milli("5."), 5000);
        assert_eq!(milli("+3"), 3000);
        assert_eq!(milli("1e3"), 1_000_000);
        assert_eq!(milli("1E3"), 1_000_000);
        assert_eq!(milli("1e-3"), 1);
        assert_eq!(milli("1k"), 1_000_000);
        // Below a millicore rounds up, as MilliValue does.
        assert_eq!(milli("0.5m"), 1);
        assert_eq!(milli("0.0001"), 1);
        assert_eq!(milli("0"), 0);
        assert_eq!(milli("0m"), 0);
    }

    #[test]
    fn memory_forms_in_bytes() {
        assert_eq!(value("128Mi"), 128 * 1024 * 1024);
        assert_eq!(value("1Ki"), 1024);
        assert_eq!(value("1Gi"), 1 << 30);
        assert_eq!(value("1Ti"), 1 << 40);
        assert_eq!(value("1Pi"), 1 << 50);
        assert_eq!(value("1Ei"), 1 << 60);
        assert_eq!(value("1G"), 1_000_000_000);
        assert_eq!(value("1M"), 1_000_000);
        assert_eq!(value("1T"), 1_000_000_000_000);
        assert_eq!(value("1P"), 1_000_000_000_000_000);
        assert_eq!(value("1E"), 1_000_000_000_000_000_000);
        assert_eq!(value("129e6"), 129_000_000);
        assert_eq!(value("1.5Gi"), 3 << 29);
        assert_eq!(value("0.5Ki"), 512);
        // Value() rounds up: 100m bytes is one byte, 1.5 is two.
        assert_eq!(value("100m"), 1);
        assert_eq!(value("1.5"), 2);
        assert_eq!(value("123"), 123);
    }

    #[test]
    fn saturates_instead_of_overflowing() {
        assert_eq!(value("16Ei"), i64::MAX);
        assert_eq!(value("1e400"), i64::MAX);
        assert_eq!(
            milli("99999999999999999999999999999999999999999999"),
            i64::MAX
        );
        assert_eq!(value("1e-400"), 1);
        assert_eq!(value("0e-400"), 0);
        assert_eq!(value("-1.5"), -1);
    }

    #[test]
    fn rejects_what_kube_rejects() {
        for bad in [
            "", "m", "Mi", "1K", "1 Mi", " 1", "1..5", "1.5.", "abc", "1e", "1e+", "1Mii", "--1",
            "1mi", "1.5e3.2", "1e3m", "0x10",
        ] {
            assert!(parse_quantity(bad).is_err(), "{bad:?} parsed");
        }
    }

    fn q(s: &str) -> Quantity {
        Quantity(s.to_string())
    }

    fn list(items: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        items.iter().map(|(k, v)| (k.to_string(), q(v))).collect()
    }

    fn container(reqs: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: if reqs.is_empty() {
                    None
                } else {
                    Some(list(reqs))
                },
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn malformed_requests_never_fit_and_malformed_allocatable_is_zero() {
        let r = Resources::from_list(
            &list(&[("cpu", "lots"), ("memory", "1Gi")]),
            UNPARSABLE_REQUEST,
        );
        assert_eq!(r.milli_cpu, i64::MAX);
        assert_eq!(r.memory, 1 << 30);
        let a = Resources::allocatable(Some(&list(&[
            ("cpu", "4"),
            ("memory", "??"),
            ("pods", "110"),
        ])));
        assert_eq!((a.milli_cpu, a.memory, a.pods), (4000, 0, 110));
        // Unknown non-scalar names are ignored; extended ones are kept.
        let a = Resources::allocatable(Some(&list(&[("example.com/gpu", "2"), ("weird", "3")])));
        assert_eq!(a.scalar.get("example.com/gpu"), Some(&2));
        assert_eq!(a.scalar.len(), 1);
    }

    #[test]
    fn pod_requests_sum_containers_take_init_max_and_add_overhead() {
        let spec = PodSpec {
            containers: vec![
                container(&[("cpu", "100m"), ("memory", "100Mi")]),
                container(&[("cpu", "200m")]),
            ],
            init_containers: Some(vec![
                container(&[("cpu", "1"), ("memory", "50Mi")]),
                container(&[("memory", "300Mi")]),
            ]),
            overhead: Some(list(&[("cpu", "10m"), ("memory", "1Mi")])),
            ..Default::default()
        };
        let r = PodRequests::of(&spec);
        // max(sum containers = 300m/100Mi, init max = 1000m/300Mi) + overhead.
        assert_eq!(r.requests.milli_cpu, 1010);
        assert_eq!(r.requests.memory, 301 << 20);
        // Non-zero: the second container has no memory request → 200Mi; init containers get
        // defaults too: init1 cpu 1 / mem 50Mi, init2 cpu 100m / mem 300Mi.
        // containers: cpu 300m, mem 300Mi; init max: cpu 1000m, mem 300Mi → 1000m, 300Mi.
        assert_eq!(r.non_zero_milli_cpu, 1010);
        assert_eq!(r.non_zero_memory, 301 << 20);
    }

    #[test]
    fn sidecars_add_to_the_total_and_to_later_init_containers() {
        let mut sidecar = container(&[("cpu", "500m")]);
        sidecar.restart_policy = Some("Always".into());
        let spec = PodSpec {
            containers: vec![container(&[("cpu", "1")])],
            init_containers: Some(vec![sidecar, container(&[("cpu", "1200m")])]),
            ..Default::default()
        };
        let r = PodRequests::of(&spec);
        // Running: 1000 + 500 sidecar = 1500; second init container peaks at 1200 + 500 = 1700.
        assert_eq!(r.requests.milli_cpu, 1700);
    }

    #[test]
    fn empty_pod_has_zero_requests_but_default_non_zero() {
        let spec = PodSpec {
            containers: vec![container(&[]), container(&[("cpu", "0")])],
            ..Default::default()
        };
        let r = PodRequests::of(&spec);
        assert_eq!(r.requests, Resources::default());
        // An explicit zero stays zero; only missing requests get the default.
        assert_eq!(r.non_zero_milli_cpu, 100);
        assert_eq!(r.non_zero_memory, 2 * DEFAULT_MEMORY_REQUEST);
    }

    #[test]
    fn resources_sub_and_less() {
        let mut a = Resources::from_list(&list(&[("cpu", "2"), ("example.com/gpu", "2")]), 0);
        let b = Resources::from_list(&list(&[("cpu", "1"), ("example.com/gpu", "2")]), 0);
        assert!(a.any_less_than(&b));
        assert!(!b.any_less_than(&a));
        a.sub(&b);
        assert_eq!(a.milli_cpu, 1000);
        assert!(a.scalar.is_empty());
    }
}
