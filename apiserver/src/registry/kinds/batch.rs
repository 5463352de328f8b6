//! batch/v1 Jobs and CronJobs (kube's `pkg/registry/batch/{job,cronjob}` and
//! `pkg/apis/batch/{v1/defaults.go,validation}`): the selector a Job generates for itself,
//! defaults, and the checks the job and cronjob controllers rely on. The pod template's own
//! defaults and validation are the generic pod spec's (in `strategy`).

use serde_json::{json, Map, Value};

use crate::error::Cause;
use crate::machinery::selectors::LabelSelector;
use crate::registry::kinds::cron;
use crate::registry::kinds::fields::{immutable, non_negative, one_of, required, set_default};

pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";

/// kube caps a CronJob's name so the Jobs it names `<cronjob>-<minutes since epoch>` stay
/// DNS-1035 labels (63 - 11).
const CRONJOB_NAME_MAX: usize = 52;

fn manual_selector(job: &Value) -> bool {
    job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true)
}

/// The Job strategy's create-time step (`generateSelectorIfNeeded`): unless
/// `spec.manualSelector` is true, the template gets the job-name and controller-uid labels
/// (legacy and `batch.kubernetes.io/` forms, each only where the user set none) and the
/// selector matches on the controller uid. Conflicting user values stay for validation to
/// refuse.
pub fn generate_selector(job: &mut Value) {
    if manual_selector(job) || !job.get("spec").is_some_and(Value::is_object) {
        return;
    }
    let name = job.pointer("/metadata/name").cloned().unwrap_or(json!(""));
    let uid = job.pointer("/metadata/uid").cloned().unwrap_or(json!(""));
    set_default(job, "/spec/template/metadata/labels", json!({}));
    if let Some(labels) = job
        .pointer_mut("/spec/template/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        for (key, value) in [
            (LEGACY_JOB_NAME_LABEL, &name),
            (JOB_NAME_LABEL, &name),
            (LEGACY_CONTROLLER_UID_LABEL, &uid),
            (CONTROLLER_UID_LABEL, &uid),
        ] {
            labels.entry(key).or_insert_with(|| value.clone());
        }
    }
    set_default(job, "/spec/selector/matchLabels", json!({}));
    if let Some(ml) = job
        .pointer_mut("/spec/selector/matchLabels")
        .and_then(Value::as_object_mut)
    {
        ml.entry(CONTROLLER_UID_LABEL).or_insert(uid);
    }
}

/// `SetDefaults_Job` (v1).
pub fn default_job(job: &mut Value) {
    let spec_null = |job: &Value, f: &str| {
        job.pointer(&format!("/spec/{f}"))
            .is_none_or(Value::is_null)
    };
    if spec_null(job, "completions") && spec_null(job, "parallelism") {
        set_default(job, "/spec/completions", json!(1));
    }
    set_default(job, "/spec/parallelism", json!(1));
    let per_index = !spec_null(job, "backoffLimitPerIndex");
    set_default(
        job,
        "/spec/backoffLimit",
        json!(if per_index { i32::MAX } else { 6 }),
    );
    // A Job without labels of its own carries its template's.
    if let Some(tl) = job
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
    {
        let own_empty = job
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if own_empty && job.get("metadata").is_some_and(Value::is_object) {
            job["metadata"]["labels"] = Value::Object(tl);
        }
    }
    set_default(job, "/spec/completionMode", json!("NonIndexed"));
    set_default(job, "/spec/suspend", json!(false));
    set_default(job, "/spec/manualSelector", json!(false));
    let pod_failure_policy = !spec_null(job, "podFailurePolicy");
    if let Some(rules) = job
        .pointer_mut("/spec/podFailurePolicy/rules")
        .and_then(Value::as_array_mut)
    {
        for rule in rules {
            if let Some(patterns) = rule
                .get_mut("onPodConditions")
                .and_then(Value::as_array_mut)
            {
                for p in patterns.iter_mut().filter(|p| p.is_object()) {
                    set_default(p, "/status", json!("True"));
                }
            }
        }
    }
    set_default(
        job,
        "/spec/podReplacementPolicy",
        json!(if pod_failure_policy {
            "Failed"
        } else {
            "TerminatingOrFailed"
        }),
    );
}

/// `SetDefaults_CronJob` (v1).
pub fn default_cronjob(cj: &mut Value) {
    set_default(cj, "/spec/concurrencyPolicy", json!("Allow"));
    set_default(cj, "/spec/suspend", json!(false));
    set_default(cj, "/spec/successfulJobsHistoryLimit", json!(3));
    set_default(cj, "/spec/failedJobsHistoryLimit", json!(1));
}

/// `ValidateHasLabel`: the template must carry `key` = `expected`.
fn has_label(
    labels: Option<&Map<String, Value>>,
    key: &str,
    expected: &str,
    causes: &mut Vec<Cause>,
) {
    let field = format!("spec.template.metadata.labels[{key}]");
    match labels.and_then(|l| l.get(key)) {
        None => causes.push(Cause {
            reason: "FieldValueRequired",
            field,
            message: format!("Required value: {expected}"),
        }),
        Some(v) if v.as_str() != Some(expected) => causes.push(Cause::invalid(
            field,
            &json!(labels.cloned().unwrap_or_default()),
            &format!("must be '{expected}'"),
        )),
        Some(_) => {}
    }
}

/// The job spec checks shared by Jobs and CronJobs' job templates (`validateJobSpec`), at
/// `spec_pointer` (`/spec` or `/spec/jobTemplate/spec`) named `at`.
fn validate_job_spec(obj: &Value, spec_pointer: &str, at: &str, causes: &mut Vec<Cause>) {
    let p = spec_pointer.trim_start_matches('/').replace('/', ".");
    for f in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        non_negative(obj, &format!("{p}.{f}"), causes);
    }
    one_of(
        obj,
        &format!("{p}.completionMode"),
        &["NonIndexed", "Indexed"],
        causes,
    );
    let spec = obj.pointer(spec_pointer);
    let indexed = spec
        .and_then(|s| s.get("completionMode"))
        .and_then(Value::as_str)
        == Some("Indexed");
    if indexed
        && spec
            .and_then(|s| s.get("completions"))
            .is_none_or(Value::is_null)
    {
        causes.push(Cause {
            reason: "FieldValueRequired",
            field: format!("{at}.completions"),
            message: "Required value: when completion mode is Indexed".into(),
        });
    }
    one_of(
        obj,
        &format!("{p}.podReplacementPolicy"),
        &["TerminatingOrFailed", "Failed"],
        causes,
    );
    let restart = spec
        .and_then(|s| s.pointer("/template/spec/restartPolicy"))
        .and_then(Value::as_str)
        .unwrap_or("");
    if restart != "OnFailure" && restart != "Never" {
        causes.push(Cause::unsupported(
            format!("{at}.template.spec.restartPolicy"),
            restart,
            &["OnFailure", "Never"],
        ));
    }
}

/// `ValidateJob` (the parts the controllers and kubectl meet): the generated selector, the
/// selector against the template, and the job spec.
pub fn validate_job(job: &Value, causes: &mut Vec<Cause>) {
    let template_labels = job
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    let selector = job.pointer("/spec/selector").filter(|s| !s.is_null());
    if !manual_selector(job) {
        if let Some(selector) = selector {
            let uid = job
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or("");
            let name = job
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if uid.is_empty() {
                causes.push(Cause::required("metadata.uid"));
            }
            has_label(template_labels, LEGACY_CONTROLLER_UID_LABEL, uid, causes);
            has_label(template_labels, LEGACY_JOB_NAME_LABEL, name, causes);
            has_label(template_labels, CONTROLLER_UID_LABEL, uid, causes);
            has_label(template_labels, JOB_NAME_LABEL, name, causes);
            let expected: Map<String, Value> = [
                (CONTROLLER_UID_LABEL.to_string(), json!(uid)),
                (JOB_NAME_LABEL.to_string(), json!(name)),
            ]
            .into_iter()
            .collect();
            if let Ok(s) = LabelSelector::from_json(selector) {
                if !s.matches(Some(&expected)) {
                    causes.push(Cause::invalid(
                        "spec.selector",
                        selector,
                        "`selector` not auto-generated",
                    ));
                }
            }
        }
    }
    match selector {
        None => causes.push(Cause::required("spec.selector")),
        Some(selector) => match LabelSelector::from_json(selector) {
            Ok(s) => {
                if !s.matches(template_labels) {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        &json!(template_labels.cloned().unwrap_or_default()),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            Err(e) => causes.push(Cause::invalid("spec.selector", selector, &e.to_string())),
        },
    }
    // The template's labels carry the job's name: a name longer than a label value may be
    // is refused there (kube's ValidatePodTemplateSpec on the generated labels).
    for v in template_labels.into_iter().flat_map(|l| l.values()) {
        if let Some(s) = v.as_str().filter(|s| s.len() > 63) {
            causes.push(Cause::invalid(
                "spec.template.labels",
                &json!(s),
                "must be no more than 63 characters",
            ));
        }
    }
    validate_job_spec(job, "/spec", "spec", causes);
}

/// `ValidateJobSpecUpdate`: what a running Job may not change. The template may change only
/// while the Job is suspended and has never started, and then only in its scheduling
/// directives (labels, annotations, node selector, tolerations, affinity, scheduling gates);
/// completions may change only together with parallelism on an Indexed Job (elastic jobs).
pub fn validate_job_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    immutable(old, new, "spec.selector", causes);
    immutable(old, new, "spec.completionMode", causes);
    immutable(old, new, "spec.podFailurePolicy", causes);
    immutable(old, new, "spec.successPolicy", causes);
    immutable(old, new, "spec.backoffLimitPerIndex", causes);
    immutable(old, new, "spec.managedBy", causes);
    let elastic = |j: &Value| {
        j.pointer("/spec/completionMode").and_then(Value::as_str) == Some("Indexed")
            && j.pointer("/spec/completions") == j.pointer("/spec/parallelism")
    };
    if !(elastic(old) && elastic(new)) {
        immutable(old, new, "spec.completions", causes);
    }
    let suspended_unstarted = old.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true)
        && old.pointer("/status/startTime").is_none_or(Value::is_null);
    if suspended_unstarted {
        let strip = |j: &Value| {
            let mut t = j.pointer("/spec/template").cloned().unwrap_or(Value::Null);
            if let Some(m) = t.get_mut("metadata").and_then(Value::as_object_mut) {
                m.remove("labels");
                m.remove("annotations");
            }
            if let Some(s) = t.get_mut("spec").and_then(Value::as_object_mut) {
                for f in ["nodeSelector", "tolerations", "affinity", "schedulingGates"] {
                    s.remove(f);
                }
            }
            json!({"spec": {"template": t}})
        };
        immutable(&strip(old), &strip(new), "spec.template", causes);
    } else {
        immutable(old, new, "spec.template", causes);
    }
}

/// `ValidateCronJobCreate` / `ValidateCronJobSpec` without the job template's pod spec (the
/// generic pod spec check covers it).
pub fn validate_cronjob(cj: &Value, causes: &mut Vec<Cause>) {
    if let Some(name) = cj.pointer("/metadata/name").and_then(Value::as_str) {
        if name.len() > CRONJOB_NAME_MAX {
            causes.push(Cause::invalid(
                "metadata.name",
                &json!(name),
                &format!("must be no more than {CRONJOB_NAME_MAX} characters"),
            ));
        }
    }
    match cj.pointer("/spec/schedule").and_then(Value::as_str) {
        None | Some("") => causes.push(Cause::required("spec.schedule")),
        Some(schedule) => {
            if let Err(e) = cron::parse_standard(schedule) {
                causes.push(Cause::invalid("spec.schedule", &json!(schedule), &e));
            }
            if schedule.contains("TZ") {
                causes.push(Cause::invalid(
                    "spec.schedule",
                    &json!(schedule),
                    "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
                ));
            }
        }
    }
    validate_time_zone(cj.pointer("/spec/timeZone"), causes);
    non_negative(cj, "spec.startingDeadlineSeconds", causes);
    non_negative(cj, "spec.successfulJobsHistoryLimit", causes);
    non_negative(cj, "spec.failedJobsHistoryLimit", causes);
    required(cj, "spec.concurrencyPolicy", causes);
    one_of(
        cj,
        "spec.concurrencyPolicy",
        &["Allow", "Forbid", "Replace"],
        causes,
    );
    // ValidateJobTemplateSpec: the jobs' selectors are always generated.
    if let Some(sel) = cj
        .pointer("/spec/jobTemplate/spec/selector")
        .filter(|s| !s.is_null())
    {
        causes.push(Cause::invalid(
            "spec.jobTemplate.spec.selector",
            sel,
            "`selector` will be auto-generated",
        ));
    }
    if cj
        .pointer("/spec/jobTemplate/spec/manualSelector")
        .and_then(Value::as_bool)
        == Some(true)
    {
        causes.push(Cause::unsupported(
            "spec.jobTemplate.spec.manualSelector",
            "true",
            &["nil", "false"],
        ));
    }
    validate_job_spec(
        cj,
        "/spec/jobTemplate/spec",
        "spec.jobTemplate.spec",
        causes,
    );
}

/// kube's `validateTimeZone`. The zone must exist in the time zone database: checked against
/// the system's (`/usr/share/zoneinfo`) where one is installed; where none is (a container
/// from scratch) a well-formed name is accepted, as the controller reports unknown zones.
fn validate_time_zone(tz: Option<&Value>, causes: &mut Vec<Cause>) {
    let Some(Value::String(zone)) = tz else {
        return;
    };
    let value = json!(zone);
    if zone.is_empty() {
        causes.push(Cause::invalid(
            "spec.timeZone",
            &value,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    if !cron::zone_name_ok(zone) {
        causes.push(Cause::invalid(
            "spec.timeZone",
            &value,
            &format!("unknown time zone {zone}"),
        ));
        return;
    }
    if zone.eq_ignore_ascii_case("Local") {
        causes.push(Cause::invalid(
            "spec.timeZone",
            &value,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
        return;
    }
    const ZONEINFO: &str = "/usr/share/zoneinfo";
    let known = zone == "UTC"
        || !std::path::Path::new(ZONEINFO).is_dir()
        || std::path::Path::new(ZONEINFO).join(zone).is_file();
    if !known {
        causes.push(Cause::invalid(
            "spec.timeZone",
            &value,
            &format!("unknown time zone {zone}"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn job() -> Value {
        json!({"metadata": {"name": "pi", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn a_job_gets_a_generated_selector_and_template_labels() {
        let mut j = job();
        generate_selector(&mut j);
        default_job(&mut j);
        assert_eq!(
            j["spec"]["selector"],
            json!({"matchLabels": {CONTROLLER_UID_LABEL: "u-1"}})
        );
        let want = json!({CONTROLLER_UID_LABEL: "u-1", JOB_NAME_LABEL: "pi",
            "controller-uid": "u-1", "job-name": "pi"});
        assert_eq!(j["spec"]["template"]["metadata"]["labels"], want);
        assert_eq!(j["metadata"]["labels"], want);
        for (f, v) in [
            ("completions", json!(1)),
            ("parallelism", json!(1)),
            ("backoffLimit", json!(6)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
            ("manualSelector", json!(false)),
            ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ] {
            assert_eq!(j["spec"][f], v, "{f}");
        }
        let mut causes = Vec::new();
        validate_job(&j, &mut causes);
        assert!(causes.is_empty(), "{:?}", fields(&causes));
    }

    #[test]
    fn job_defaults_keep_what_is_set() {
        let mut j = json!({"metadata": {"name": "x", "labels": {"a": "b"}},
            "spec": {"parallelism": 3, "backoffLimitPerIndex": 1,
                "podFailurePolicy": {"rules": [{"onPodConditions": [{"type": "DisruptionTarget"}]}]},
                "template": {"metadata": {"labels": {"t": "1"}}}}});
        default_job(&mut j);
        assert!(j["spec"].get("completions").is_none());
        assert_eq!(j["spec"]["parallelism"], 3);
        assert_eq!(j["spec"]["backoffLimit"], i32::MAX);
        assert_eq!(j["metadata"]["labels"], json!({"a": "b"}));
        assert_eq!(j["spec"]["podReplacementPolicy"], "Failed");
        assert_eq!(
            j["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["status"],
            "True"
        );
    }

    #[test]
    fn a_manual_selector_is_required_and_must_match() {
        let mut j = job();
        j["spec"]["manualSelector"] = json!(true);
        generate_selector(&mut j);
        assert!(j["spec"].get("selector").is_none());
        let mut causes = Vec::new();
        validate_job(&j, &mut causes);
        assert_eq!(fields(&causes), vec!["spec.selector: Required value"]);

        j["spec"]["selector"] = json!({"matchLabels": {"app": "x"}});
        let mut causes = Vec::new();
        validate_job(&j, &mut causes);
        assert_eq!(
            fields(&causes),
            vec!["spec.template.metadata.labels: Invalid value: {}: `selector` does not match template `labels`"]
        );
    }

    #[test]
    fn a_conflicting_generated_label_is_refused() {
        let mut j = job();
        j["spec"]["template"]["metadata"] = json!({"labels": {"controller-uid": "other"}});
        generate_selector(&mut j);
        let mut causes = Vec::new();
        validate_job(&j, &mut causes);
        assert_eq!(causes.len(), 1, "{:?}", fields(&causes));
        assert_eq!(
            causes[0].field,
            "spec.template.metadata.labels[controller-uid]"
        );
        assert!(causes[0].message.ends_with("must be 'u-1'"));
    }

    #[test]
    fn a_job_name_too_long_for_its_pods_label_is_refused() {
        let mut j = job();
        j["metadata"]["name"] = json!("x".repeat(64));
        generate_selector(&mut j);
        let mut causes = Vec::new();
        validate_job(&j, &mut causes);
        assert_eq!(causes.len(), 2, "{:?}", fields(&causes));
        assert!(causes.iter().all(|c| c.field == "spec.template.labels"
            && c.message.ends_with("must be no more than 63 characters")));
    }

    #[test]
    fn job_restart_policy_and_indexed_completions() {
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        j["spec"]["completionMode"] = json!("Indexed");
        j["spec"]["parallelism"] = json!(-1);
        generate_selector(&mut j);
        let mut causes = Vec::new();
        validate_job(&j, &mut causes);
        assert_eq!(
            fields(&causes),
            vec![
                "spec.parallelism: Invalid value: -1: must be greater than or equal to 0",
                "spec.completions: Required value: when completion mode is Indexed",
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ]
        );
    }

    #[test]
    fn job_updates_keep_selector_template_and_completions() {
        let mut old = job();
        generate_selector(&mut old);
        default_job(&mut old);
        old["status"] = json!({"startTime": "2024-01-01T00:00:00Z"});
        let mut new = old.clone();
        new["spec"]["parallelism"] = json!(4);
        new["spec"]["suspend"] = json!(true);
        let mut causes = Vec::new();
        validate_job_update(&old, &new, &mut causes);
        assert!(causes.is_empty(), "{:?}", fields(&causes));

        new["spec"]["completions"] = json!(5);
        new["spec"]["template"]["spec"]["nodeSelector"] = json!({"a": "b"});
        new["spec"]["selector"] = json!({"matchLabels": {"x": "y"}});
        validate_job_update(&old, &new, &mut causes);
        let f: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            f,
            vec!["spec.selector", "spec.completions", "spec.template"]
        );
        assert!(causes
            .iter()
            .all(|c| c.message.ends_with("field is immutable")));

        // Suspended and never started: scheduling directives may change.
        old["spec"]["suspend"] = json!(true);
        old["status"] = json!({});
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["nodeSelector"] = json!({"a": "b"});
        let mut causes = Vec::new();
        validate_job_update(&old, &new, &mut causes);
        assert!(causes.is_empty(), "{:?}", fields(&causes));
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("j");
        validate_job_update(&old, &new, &mut causes);
        assert_eq!(causes.len(), 1);
    }

    #[test]
    fn cronjob_defaults_and_validation() {
        let mut cj = json!({"metadata": {"name": "hello"}, "spec": {"schedule": "*/1 * * * *",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "OnFailure",
                "containers": [{"name": "c", "image": "i"}]}}}}}});
        default_cronjob(&mut cj);
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["suspend"], false);
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        // The job template gets no Job defaults.
        assert!(cj["spec"]["jobTemplate"]["spec"]
            .get("backoffLimit")
            .is_none());
        let mut causes = Vec::new();
        validate_cronjob(&cj, &mut causes);
        assert!(causes.is_empty(), "{:?}", fields(&causes));

        cj["spec"]["schedule"] = json!("61 * * * *");
        cj["spec"]["concurrencyPolicy"] = json!("Sometimes");
        cj["spec"]["timeZone"] = json!("Local");
        cj["spec"]["jobTemplate"]["spec"]["selector"] = json!({"matchLabels": {"a": "b"}});
        validate_cronjob(&cj, &mut causes);
        assert_eq!(
            fields(&causes),
            vec![
                "spec.schedule: Invalid value: \"61 * * * *\": end of range (61) above maximum (59): 61",
                "spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"",
                "spec.jobTemplate.spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"}}: `selector` will be auto-generated",
            ]
        );
    }

    #[test]
    fn cronjob_schedule_with_tz_and_long_names_are_refused() {
        let mut cj = json!({"metadata": {"name": "x".repeat(53)}, "spec": {"schedule": "TZ=UTC 0 * * * *",
            "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": {"template": {"spec": {"restartPolicy": "Never"}}}}}});
        let mut causes = Vec::new();
        validate_cronjob(&cj, &mut causes);
        let f: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(f, vec!["metadata.name", "spec.schedule"]);
        cj["spec"]["schedule"] = json!("");
        cj["spec"]["timeZone"] = json!("");
        let mut causes = Vec::new();
        validate_cronjob(&cj, &mut causes);
        assert_eq!(
            fields(&causes)[1..],
            [
                "spec.schedule: Required value".to_string(),
                "spec.timeZone: Invalid value: \"\": timeZone must be nil or non-empty string"
                    .to_string()
            ]
        );
    }
}
