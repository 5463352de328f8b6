use super::*;
use serde_json::json;

fn labels(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

fn perr(s: &str) -> String {
    match LabelSelector::parse(s) {
        Ok(sel) => panic!("{s:?} parsed as {sel}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn label_parse_and_display_round_trip() {
    for (input, canonical) in [
        ("", ""),
        ("a=b", "a=b"),
        ("a==b", "a==b"),
        ("a!=b", "a!=b"),
        ("a", "a"),
        ("!a", "!a"),
        ("  a = b ,  c ", "a=b,c"),
        ("x in (b,a,a)", "x in (a,b)"),
        ("x notin (a)", "x notin (a)"),
        ("z=1,a=2", "a=2,z=1"),
        ("a>5", "a>5"),
        ("a<5", "a<5"),
        ("a=", "a="),
        ("x in ()", "x in ()"),
        ("x in (,a)", "x in (,a)"),
        ("example.com/app=web", "example.com/app=web"),
        ("x in (in,notin)", "x in (in,notin)"),
    ] {
        let sel = LabelSelector::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(sel.to_string(), canonical, "input {input:?}");
        let again = LabelSelector::parse(&sel.to_string()).expect("reparse");
        assert_eq!(again, sel, "round trip of {input:?}");
    }
    assert!(LabelSelector::parse("").expect("empty").is_empty());
    assert!(!LabelSelector::parse("a").expect("a").is_empty());
}

#[test]
fn label_parse_errors_match_kube() {
    assert_eq!(
        perr("a b"),
        "unable to parse requirement: found 'b', expected: '=', '!=', '==', 'in', notin'"
    );
    assert_eq!(perr("a=b c"), "found 'c', expected: ',' or 'end of string'");
    assert_eq!(perr("a=b,"), "found '', expected: identifier after ','");
    assert_eq!(
        perr(",a"),
        "found ',', expected: !, identifier, or 'end of string'"
    );
    assert_eq!(
        perr("a in b"),
        "unable to parse requirement: found 'b' expected: '('"
    );
    assert_eq!(
        perr("a in (b"),
        "unable to parse requirement: found '', expected: ',' or ')'"
    );
    assert_eq!(
        perr("a in (=)"),
        "unable to parse requirement: found '=', expected: ',', ')' or identifier"
    );
    assert_eq!(
        perr("a (b)"),
        "unable to parse requirement: found '(', expected: '=', '!=', '==', 'in', notin'"
    );
    assert_eq!(
        perr("!"),
        "unable to parse requirement: found '', expected: identifier"
    );
    assert_eq!(perr("!a=b"), "found '=', expected: ',' or 'end of string'");
    assert_eq!(
        perr("a=(b)"),
        "unable to parse requirement: found '(', expected: identifier"
    );
    assert_eq!(
            perr("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' operators, the value must be an integer"
        );
    assert_eq!(
            perr("-a=b"),
            "unable to parse requirement: <nil>: Invalid value: \"-a\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
        );
    assert_eq!(
            perr("a=-b"),
            "unable to parse requirement: values[0][a]: Invalid value: \"-b\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
        );
    assert_eq!(
            perr("Foo.com/a=b"),
            "unable to parse requirement: <nil>: Invalid value: \"Foo.com/a\": prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
        );
    assert!(perr("a/b/c").contains("a qualified name must consist of"));
    // Label values must start with an alphanumeric, so kube rejects negative Lt/Gt bounds.
    assert!(perr("a<-5")
        .starts_with("unable to parse requirement: values[0][a]: Invalid value: \"-5\""));
    assert!(perr("/a").contains("prefix part must be non-empty"));
    let long = "a".repeat(64);
    assert!(perr(&long).contains("name part must be no more than 63 characters"));
    assert!(perr(&format!("a={long}")).contains("must be no more than 63 characters"));
}

#[test]
fn label_matching() {
    let l = labels(json!({"app": "web", "tier": "front", "n": "7"}));
    let m = |s: &str| LabelSelector::parse(s).expect(s).matches(Some(&l));
    assert!(m(""));
    assert!(m("app=web"));
    assert!(m("app==web"));
    assert!(!m("app=db"));
    assert!(m("app!=db"));
    assert!(m("missing!=x"));
    assert!(m("app in (db,web)"));
    assert!(!m("app notin (db,web)"));
    assert!(m("missing notin (a)"));
    assert!(!m("missing in (a)"));
    assert!(m("app"));
    assert!(!m("!app"));
    assert!(m("!missing"));
    assert!(m("n>6"));
    assert!(!m("n>7"));
    assert!(m("n<8"));
    assert!(!m("app>1"));
    assert!(!m("missing>1"));
    assert!(m("app=web,tier=front"));
    assert!(!m("app=web,tier=back"));
    // No labels at all.
    let sel = LabelSelector::parse("a!=b,!c").expect("parse");
    assert!(sel.matches(None));
    assert!(!LabelSelector::parse("a").expect("parse").matches(None));
}

#[test]
fn label_from_json() {
    let sel = LabelSelector::from_json(&json!({
        "matchLabels": {"b": "2", "a": "1"},
        "matchExpressions": [
            {"key": "c", "operator": "In", "values": ["y", "x"]},
            {"key": "d", "operator": "NotIn", "values": ["z"]},
            {"key": "e", "operator": "Exists"},
            {"key": "f", "operator": "DoesNotExist"}
        ]
    }))
    .expect("valid");
    assert_eq!(sel.to_string(), "a=1,b=2,c in (x,y),d notin (z),e,!f");
    let l = labels(json!({"a": "1", "b": "2", "c": "x", "e": ""}));
    assert!(sel.matches(Some(&l)));

    let empty = LabelSelector::from_json(&json!({})).expect("empty");
    assert!(empty.is_empty());
    assert!(empty.matches(None));
    let nothing = LabelSelector::from_json(&Value::Null).expect("null");
    assert!(!nothing.is_empty());
    assert!(!nothing.matches(Some(&l)));

    let bad =
        LabelSelector::from_json(&json!({"matchExpressions": [{"key": "a", "operator": "Bogus"}]}));
    assert_eq!(
        bad.map_err(|e| e.to_string()),
        Err("\"Bogus\" is not a valid label selector operator".to_string())
    );
    let bad = LabelSelector::from_json(
        &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
    );
    assert_eq!(
            bad.map_err(|e| e.to_string()),
            Err("values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty".to_string())
        );
    let bad = LabelSelector::from_json(
        &json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
    );
    assert!(bad.is_err());

    assert_eq!(LabelSelector::format_json(None), "<none>");
    assert_eq!(LabelSelector::format_json(Some(&json!({}))), "<none>");
    assert_eq!(
        LabelSelector::format_json(Some(&json!({"matchLabels": {"app": "x"}}))),
        "app=x"
    );
    assert_eq!(
        LabelSelector::format_json(Some(
            &json!({"matchExpressions": [{"key": "a", "operator": "?"}]})
        )),
        "<error>"
    );
}

#[test]
fn format_labels_sorted() {
    let l = labels(json!({"b": "2", "a": "1"}));
    assert_eq!(format_labels(Some(&l)), "a=1,b=2");
    assert_eq!(format_labels(None), "<none>");
}

#[test]
fn field_parse_and_display() {
    let s = FieldSelector::parse("metadata.name=foo,status.phase!=Running").expect("parse");
    assert_eq!(s.to_string(), "metadata.name=foo,status.phase!=Running");
    // Sorted by raw term; `==` prints as `=`.
    let s = FieldSelector::parse("z==1,a=2").expect("parse");
    assert_eq!(s.to_string(), "a=2,z=1");
    let s = FieldSelector::parse(r"a=x\,y\=z\\w").expect("parse");
    assert_eq!(s.to_string(), r"a=x\,y\=z\\w");
    assert_eq!(FieldSelector::parse(&s.to_string()).expect("reparse"), s);
    assert!(FieldSelector::parse("").expect("empty").is_empty());
    assert!(FieldSelector::parse(",,").expect("empties").is_empty());
    let s = FieldSelector::parse("a=").expect("empty value");
    assert_eq!(s.to_string(), "a=");
}

#[test]
fn field_parse_errors() {
    let e = |s: &str| {
        FieldSelector::parse(s)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        e("foo"),
        Err("invalid selector: 'foo'; can't understand 'foo'".to_string())
    );
    assert_eq!(
        e("a=b=c"),
        Err("invalid field selector: unescaped character in value: 61".to_string())
    );
    assert_eq!(
        e(r"a=b\x"),
        Err(r"invalid field selector: invalid escape sequence: \x".to_string())
    );
    assert_eq!(
        e(r"a=b\"),
        Err(r"invalid field selector: invalid escape sequence: \".to_string())
    );
}

#[test]
fn field_validate_for_kinds() {
    let v = |sel: &str, av: &str, kind: &str| {
        FieldSelector::parse(sel)
            .expect(sel)
            .validate_for(av, kind)
            .map_err(|e| e.to_string())
    };
    for f in [
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
        "metadata.name",
        "metadata.namespace",
    ] {
        assert_eq!(v(&format!("{f}=x"), "v1", "Pod"), Ok(()), "{f}");
    }
    assert_eq!(
        v("spec.foo=x", "v1", "Pod"),
        Err("field label not supported: spec.foo".to_string())
    );
    assert_eq!(v("spec.unschedulable=true", "v1", "Node"), Ok(()));
    assert_eq!(
        v("metadata.namespace=x", "v1", "Node"),
        Err("field label not supported: metadata.namespace".to_string())
    );
    assert_eq!(v("status.phase=Active", "v1", "Namespace"), Ok(()));
    assert_eq!(v("type=Opaque", "v1", "Secret"), Ok(()));
    for f in [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ] {
        assert_eq!(v(&format!("{f}=x"), "v1", "Event"), Ok(()), "{f}");
    }
    assert_eq!(
            v("status.replicas=1", "apps/v1", "ReplicaSet"),
            Err("\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"".to_string())
        );
    assert_eq!(
        v("status.replicas=1", "v1", "ReplicationController"),
        Ok(())
    );
    assert_eq!(v("spec.type=ClusterIP", "v1", "Service"), Ok(()));
    assert_eq!(v("metadata.name=a", "v1", "ConfigMap"), Ok(()));
    assert_eq!(
            v("data.x=a", "v1", "ConfigMap"),
            Err("\"data.x\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"".to_string())
        );
    assert_eq!(
            v("status.replicas=1", "apps/v1", "Deployment"),
            Err("\"status.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"".to_string())
        );
    assert_eq!(
        v("metadata.namespace=a", "coordination.k8s.io/v1", "Lease"),
        Ok(())
    );
}

#[test]
fn field_matching_each_field() {
    let pod = json!({
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": "n1", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                 "serviceAccountName": "sa", "hostNetwork": true},
        "status": {"phase": "Running", "podIP": "10.0.0.1", "podIPs": [{"ip": "10.0.0.1"}],
                   "nominatedNodeName": "n2"}
    });
    let m = |sel: &str, av: &str, kind: &str, obj: &Value| {
        FieldSelector::parse(sel).expect(sel).matches(av, kind, obj)
    };
    for sel in [
        "metadata.name=p",
        "metadata.namespace=ns",
        "spec.nodeName=n1",
        "spec.host=n1",
        "spec.restartPolicy=Always",
        "spec.schedulerName=default-scheduler",
        "spec.serviceAccountName=sa",
        "spec.hostNetwork=true",
        "status.phase=Running",
        "status.podIP=10.0.0.1",
        "status.nominatedNodeName=n2",
        "status.phase!=Pending",
        "spec.nodeName=n1,status.phase=Running",
    ] {
        assert!(m(sel, "v1", "Pod", &pod), "{sel}");
    }
    assert!(!m("spec.nodeName=n2", "v1", "Pod", &pod));
    assert!(!m("spec.nodeName!=n1", "v1", "Pod", &pod));
    // Unscheduled pod: spec.nodeName is "".
    let pending = json!({"metadata": {"name": "q"}, "spec": {}});
    assert!(m("spec.nodeName=", "v1", "Pod", &pending));
    assert!(m("spec.hostNetwork=false", "v1", "Pod", &pending));

    let node = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
    assert!(m("spec.unschedulable=true", "v1", "Node", &node));
    assert!(m(
        "spec.unschedulable=false",
        "v1",
        "Node",
        &json!({"metadata": {"name": "n"}})
    ));

    let ns = json!({"metadata": {"name": "default"}, "status": {"phase": "Active"}});
    assert!(m("status.phase=Active", "v1", "Namespace", &ns));

    let secret = json!({"metadata": {"name": "s"}, "type": "Opaque"});
    assert!(m("type=Opaque", "v1", "Secret", &secret));

    let rs = json!({"metadata": {"name": "r"}, "status": {"replicas": 3}});
    assert!(m("status.replicas=3", "apps/v1", "ReplicaSet", &rs));
    assert!(m("status.replicas=0", "apps/v1", "ReplicaSet", &json!({})));

    let ev = json!({
        "metadata": {"name": "e", "namespace": "ns"},
        "involvedObject": {"kind": "Pod", "namespace": "ns", "name": "p", "uid": "u1",
                           "apiVersion": "v1", "resourceVersion": "5", "fieldPath": "spec.containers{c}"},
        "reason": "Started", "type": "Normal", "reportingComponent": "kubelet",
        "source": {"component": ""}
    });
    for sel in [
        "involvedObject.kind=Pod",
        "involvedObject.namespace=ns",
        "involvedObject.name=p",
        "involvedObject.uid=u1",
        "involvedObject.apiVersion=v1",
        "involvedObject.resourceVersion=5",
        "involvedObject.fieldPath=spec.containers{c}",
        "reason=Started",
        "type=Normal",
        "reportingComponent=kubelet",
        // source falls back to reportingComponent when source.component is empty.
        "source=kubelet",
    ] {
        assert!(m(sel, "v1", "Event", &ev), "{sel}");
    }
    let svc =
        json!({"metadata": {"name": "s"}, "spec": {"clusterIP": "10.96.0.1", "type": "ClusterIP"}});
    assert!(m(
        "spec.clusterIP=10.96.0.1,spec.type=ClusterIP",
        "v1",
        "Service",
        &svc
    ));
    // An unsupported field compares as "" rather than panicking.
    assert!(m("bogus=", "v1", "ConfigMap", &json!({})));
    assert!(!m("bogus=x", "v1", "ConfigMap", &json!({})));
}

#[test]
fn name_pinned() {
    let s = FieldSelector::parse("metadata.name=web-0").expect("parse");
    assert_eq!(s.name_pinned(), Some("web-0"));
    let s = FieldSelector::parse("metadata.name!=web-0").expect("parse");
    assert_eq!(s.name_pinned(), None);
    let s = FieldSelector::parse("metadata.namespace=a,metadata.name==x").expect("parse");
    assert_eq!(s.name_pinned(), Some("x"));
    assert_eq!(FieldSelector::parse("").expect("parse").name_pinned(), None);
}
