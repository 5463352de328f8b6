use super::*;
use crate::machinery::time::civil_from_days;
use serde_json::json;

#[test]
fn civil_dates() {
    assert_eq!(civil_from_days(0), (1970, 1, 1));
    assert_eq!(
        timestamp(&[0x08, 0x80, 0x8b, 0xd2, 0xbb, 0x06], false).unwrap(),
        Some("2025-01-01T00:00:00Z".into())
    );
    assert_eq!(timestamp(&[], false).unwrap(), None);
    // MicroTime: 2025-01-01T00:00:00.123456789 → microseconds.
    let micro = [
        0x08, 0x80, 0x8b, 0xd2, 0xbb, 0x06, 0x10, 0x95, 0x9a, 0xef, 0x3a,
    ];
    assert_eq!(
        timestamp(&micro, true).unwrap(),
        Some("2025-01-01T00:00:00.123456Z".into())
    );
    assert!(timestamp(&[0x10, 0xff, 0xff, 0xff, 0xff, 0x0f], false).is_err());
}

#[test]
fn malformed_input_is_an_error() {
    assert!(matches!(
        decode_object(b"{}"),
        Err(DecodeError::Malformed(_))
    ));
    // Length runs past the end.
    assert!(matches!(
        decode_object(b"k8s\0\x0a\x7f"),
        Err(DecodeError::Malformed(_))
    ));
    // Truncated varint.
    assert!(matches!(
        decode_object(b"k8s\0\x08\xff"),
        Err(DecodeError::Malformed(_))
    ));
    // No kind.
    assert!(matches!(
        decode_object(b"k8s\0"),
        Err(DecodeError::Malformed(_))
    ));
    // Every prefix of a valid body either decodes or errors, never panics.
    let good = namespace_body();
    for n in 0..good.len() {
        let _ = decode_object(&good[..n]);
    }
    // Deep nesting is bounded.
    let mut inner: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut m = vec![0x0a];
        m.extend(varint_bytes(inner.len() as u64));
        m.extend(&inner);
        inner = m;
    }
    let _ = decode_message("ObjectMeta", &inner, 0);
}

#[test]
fn unsupported_kind_is_415() {
    let body = unknown("rbac.authorization.k8s.io/v1", "Role", &[]);
    assert!(matches!(
        decode_object(&body),
        Err(DecodeError::Unsupported(_))
    ));
}

fn varint_bytes(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn ld(num: u32, b: &[u8]) -> Vec<u8> {
    let mut out = varint_bytes(u64::from(num) << 3 | 2);
    out.extend(varint_bytes(b.len() as u64));
    out.extend(b);
    out
}

fn unknown(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = ld(1, api_version.as_bytes());
    tm.extend(ld(2, kind.as_bytes()));
    let mut out = MAGIC.to_vec();
    out.extend(ld(1, &tm));
    out.extend(ld(2, raw));
    out.extend(ld(3, b""));
    out.extend(ld(4, b""));
    out
}

fn namespace_body() -> Vec<u8> {
    let mut meta = ld(1, b"demo");
    meta.extend(ld(2, b""));
    meta.extend(ld(8, b""));
    let mut raw = ld(1, &meta);
    raw.extend(ld(2, b""));
    raw.extend(ld(3, &ld(1, b"")));
    unknown("v1", "Namespace", &raw)
}

/// `v` without null-valued object members (Go's JSON writes a zero Time as `null`).
fn strip_nulls(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Request bodies captured from kubectl 1.32's generators (`kubectl create namespace`,
/// `create configmap`, ...) decode to the JSON the same command writes with
/// `--dry-run=client -o json`.
#[test]
fn kubectl_generator_fixtures() {
    macro_rules! fixture {
        ($name:literal) => {
            (
                $name,
                include_bytes!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/protobuf/",
                    $name,
                    ".pb"
                ))
                .as_slice(),
                include_str!(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/fixtures/protobuf/",
                    $name,
                    ".json"
                )),
            )
        };
    }
    let fixtures = [
        fixture!("namespace"),
        fixture!("configmap"),
        fixture!("secret"),
        fixture!("secret-tls"),
        fixture!("deployment"),
        fixture!("deployment-zero"),
        fixture!("service"),
        fixture!("service-headless"),
    ];
    for (name, pb, json) in fixtures {
        let got = decode_object(pb).unwrap_or_else(|e| panic!("{name}: {e}"));
        let want = strip_nulls(serde_json::from_str(json).unwrap());
        assert_eq!(got, want, "{name}");
    }
    let zero = decode_object(fixtures[5].1).unwrap();
    assert_eq!(zero["spec"]["replicas"], json!(0));
}

fn vf(num: u32, v: u64) -> Vec<u8> {
    let mut out = varint_bytes(u64::from(num) << 3);
    out.extend(varint_bytes(v));
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

/// A Pod as Go's marshaller writes it: zero non-pointer scalars present on the wire,
/// embedded structs (VolumeSource, LocalObjectReference, ProbeHandler) as sub-messages.
#[test]
fn pod_with_volumes_env_probes() {
    let meta = cat(&[
        ld(1, b"p"),
        ld(2, b""),
        vf(7, 0),
        ld(8, b""),
        ld(11, &cat(&[ld(1, b"a"), ld(2, b"b")])),
    ]);
    let empty_dir = ld(1, &cat(&[ld(1, b"v"), ld(2, &ld(2, &ld(1, b"")))]));
    let cm_vol = ld(
        1,
        &cat(&[
            ld(1, b"c"),
            ld(2, &ld(19, &cat(&[ld(1, &ld(1, b"cm")), vf(3, 420)]))),
        ]),
    );
    let env = ld(
        7,
        &cat(&[
            ld(1, b"E"),
            ld(2, b""),
            ld(3, &ld(4, &cat(&[ld(1, &ld(1, b"s")), ld(2, b"k")]))),
        ]),
    );
    let resources = ld(8, &ld(1, &cat(&[ld(1, b"cpu"), ld(2, &ld(1, b"100m"))])));
    let mount = ld(
        9,
        &cat(&[ld(1, b"v"), vf(2, 0), ld(3, b"/v"), ld(4, b""), ld(6, b"")]),
    );
    let probe = ld(
        11,
        &cat(&[
            ld(
                1,
                &ld(
                    2,
                    &cat(&[
                        ld(1, b"/"),
                        ld(2, &cat(&[vf(1, 1), vf(2, 0), ld(3, b"http")])),
                    ]),
                ),
            ),
            vf(2, 0),
            vf(4, 5),
        ]),
    );
    let port = ld(6, &cat(&[ld(1, b""), vf(2, 0), vf(3, 80), ld(4, b"TCP")]));
    let container = ld(
        2,
        &cat(&[
            ld(1, b"x"),
            ld(2, b"i"),
            port,
            env,
            resources,
            mount,
            probe,
            vf(16, 0),
        ]),
    );
    let spec = cat(&[
        empty_dir,
        cm_vol,
        container,
        vf(4, 0),
        vf(11, 0),
        ld(3, b"Never"),
    ]);
    let status = ld(3, &cat(&[ld(1, b"Pending"), ld(7, b"")]));
    let raw = cat(&[ld(1, &meta), ld(2, &spec), status]);
    let got = decode_object(&unknown("v1", "Pod", &raw)).unwrap();
    let want = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "b"}},
        "spec": {
            "volumes": [
                {"name": "v", "emptyDir": {}},
                {"name": "c", "configMap": {"name": "cm", "defaultMode": 420}},
            ],
            "containers": [{
                "name": "x", "image": "i",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}],
                "resources": {"limits": {"cpu": "100m"}},
                "volumeMounts": [{"name": "v", "mountPath": "/v"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 5},
            }],
            "terminationGracePeriodSeconds": 0,
            "restartPolicy": "Never",
        },
        "status": {"phase": "Pending"},
    });
    assert_eq!(got, want);
}

#[test]
fn namespace_synthetic() {
    assert_eq!(
        decode_object(&namespace_body()).unwrap(),
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}, "spec": {}, "status": {}})
    );
}

/// kubectl drain's Eviction (client-go may send it as protobuf): a grace period of 0 and a
/// uid precondition survive, as pointers do.
#[test]
fn eviction_with_delete_options() {
    let meta = cat(&[ld(1, b"web-1"), ld(3, b"ns")]);
    let opts = cat(&[vf(1, 0), ld(2, &ld(1, b"u-1")), ld(5, b"All")]);
    let raw = cat(&[ld(1, &meta), ld(2, &opts)]);
    for version in ["policy/v1", "policy/v1beta1"] {
        let v = decode_object(&unknown(version, "Eviction", &raw)).unwrap();
        assert_eq!(v["kind"], "Eviction");
        assert_eq!(v["metadata"]["name"], "web-1");
        assert_eq!(
            v["deleteOptions"],
            json!({"gracePeriodSeconds": 0, "preconditions": {"uid": "u-1"}, "dryRun": ["All"]})
        );
    }
    // A budget: int-or-string fields and the selector.
    let spec = cat(&[
        ld(1, &cat(&[vf(1, 0), vf(2, 5)])),
        ld(2, &ld(1, &cat(&[ld(1, b"app"), ld(2, b"web")]))),
    ]);
    let raw = cat(&[ld(1, &ld(1, b"web")), ld(2, &spec)]);
    let v = decode_object(&unknown("policy/v1", "PodDisruptionBudget", &raw)).unwrap();
    assert_eq!(v["spec"]["selector"]["matchLabels"], json!({"app": "web"}));
    assert_eq!(v["spec"]["minAvailable"], 5, "{v}");
}
