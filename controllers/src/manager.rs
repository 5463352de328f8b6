//! kube-controller-manager's frame (`cmd/kube-controller-manager/app`): one table of known
//! controllers, the `--controllers` flag, and starting the enabled controllers for one term of
//! leadership.
//!
//! As in kube 1.32's `controller_descriptor.go`, each controller has a canonical name
//! (`replicaset-controller`) and aliases (`replicaset`, the name before 1.28); `--controllers`
//! accepts either. `*` enables every controller that is on by default, `name` enables one, and
//! `-name` disables one; the first entry naming a controller decides, and without `*` only the
//! named ones run. A name that is not known is an error worded as kube's.

use futures::future::BoxFuture;
use kube::Client;
use mainstay_component::Leading;
use tokio::task::JoinSet;

use crate::{Error, Result};

/// The controller-manager's settings (kube's flags of the same meaning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerConfig {
    /// `--controllers` (default `["*"]`).
    pub controllers: Vec<String>,
    /// `--concurrent-deployment-syncs` (default 5).
    pub concurrent_deployment_syncs: usize,
    /// `--concurrent-replicaset-syncs` (default 5).
    pub concurrent_replicaset_syncs: usize,
    /// `--concurrent-namespace-syncs` (default 10).
    pub concurrent_namespace_syncs: usize,
    /// `--concurrent-gc-syncs` (default 20): workers per garbage collector queue.
    pub concurrent_gc_syncs: usize,
    /// `--concurrent-job-syncs` (default 5).
    pub concurrent_job_syncs: usize,
    /// `--concurrent-daemonset-syncs` (default 2).
    pub concurrent_daemonset_syncs: usize,
    /// `--concurrent-statefulset-syncs` (default 5).
    pub concurrent_statefulset_syncs: usize,
    /// `--concurrent-rc-syncs` (default 5): the ReplicationController controller.
    pub concurrent_rc_syncs: usize,
    /// `--concurrent-cron-job-syncs` (default 5).
    pub concurrent_cron_job_syncs: usize,
    /// `--concurrent-ttl-after-finished-syncs` (default 5).
    pub concurrent_ttl_after_finished_syncs: usize,
    /// `--concurrent-serviceaccount-syncs` (default 5).
    pub concurrent_serviceaccount_syncs: usize,
    /// `--concurrent-endpoint-syncs` (default 5).
    pub concurrent_endpoint_syncs: usize,
    /// `--concurrent-service-endpoint-syncs` (default 5): the EndpointSlice controller.
    pub concurrent_service_endpoint_syncs: usize,
    /// `--max-endpoints-per-slice` (default 100, at most 1000).
    pub max_endpoints_per_slice: usize,
    /// The node controllers' flags (node lifecycle, taint eviction, node IPAM, pod GC).
    pub node: crate::nodeconfig::NodeControllersConfig,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            controllers: vec!["*".into()],
            concurrent_deployment_syncs: 5,
            concurrent_replicaset_syncs: 5,
            concurrent_namespace_syncs: 10,
            concurrent_gc_syncs: 20,
            concurrent_job_syncs: 5,
            concurrent_daemonset_syncs: 2,
            concurrent_statefulset_syncs: 5,
            concurrent_rc_syncs: 5,
            concurrent_cron_job_syncs: 5,
            concurrent_ttl_after_finished_syncs: 5,
            concurrent_serviceaccount_syncs: 5,
            concurrent_endpoint_syncs: 5,
            concurrent_service_endpoint_syncs: 5,
            max_endpoints_per_slice: 100,
            node: Default::default(),
        }
    }
}

/// What a controller is started with.
struct Context {
    client: Client,
    config: ManagerConfig,
    leading: Leading,
}

type Start = fn(Context) -> BoxFuture<'static, Result<()>>;

/// One known controller (kube's `ControllerDescriptor`).
struct Descriptor {
    name: &'static str,
    aliases: &'static [&'static str],
    disabled_by_default: bool,
    start: Start,
}

/// Every controller this manager knows, in start order. Adding one is one line here (and its
/// `start_*` function below).
const CONTROLLERS: &[Descriptor] = &[
    Descriptor {
        name: "deployment-controller",
        aliases: &["deployment"],
        disabled_by_default: false,
        start: start_deployment,
    },
    Descriptor {
        name: "replicaset-controller",
        aliases: &["replicaset"],
        disabled_by_default: false,
        start: start_replicaset,
    },
    Descriptor {
        name: "namespace-controller",
        aliases: &["namespace"],
        disabled_by_default: false,
        start: start_namespace,
    },
    Descriptor {
        name: "garbage-collector-controller",
        aliases: &["garbagecollector"],
        disabled_by_default: false,
        start: start_garbage_collector,
    },
    Descriptor {
        name: "job-controller",
        aliases: &["job"],
        disabled_by_default: false,
        start: start_job,
    },
    Descriptor {
        name: "cronjob-controller",
        aliases: &["cronjob"],
        disabled_by_default: false,
        start: start_cronjob,
    },
    Descriptor {
        name: "ttl-after-finished-controller",
        aliases: &["ttl-after-finished"],
        disabled_by_default: false,
        start: start_ttl_after_finished,
    },
    Descriptor {
        name: "serviceaccount-controller",
        aliases: &["serviceaccount"],
        disabled_by_default: false,
        start: start_serviceaccount,
    },
    Descriptor {
        name: "endpoints-controller",
        aliases: &["endpoint"],
        disabled_by_default: false,
        start: start_endpoints,
    },
    Descriptor {
        name: "endpointslice-controller",
        aliases: &["endpointslice"],
        disabled_by_default: false,
        start: start_endpointslice,
    },
    Descriptor {
        name: "disruption-controller",
        aliases: &["disruption"],
        disabled_by_default: false,
        start: start_disruption,
    },
    Descriptor {
        name: "node-lifecycle-controller",
        aliases: &["nodelifecycle"],
        disabled_by_default: false,
        start: start_node_lifecycle,
    },
    Descriptor {
        name: "taint-eviction-controller",
        aliases: &[],
        disabled_by_default: false,
        start: start_taint_eviction,
    },
    Descriptor {
        name: "node-ipam-controller",
        aliases: &["nodeipam"],
        disabled_by_default: false,
        start: start_node_ipam,
    },
    Descriptor {
        name: "daemonset-controller",
        aliases: &["daemonset"],
        disabled_by_default: false,
        start: start_daemonset,
    },
    Descriptor {
        name: "statefulset-controller",
        aliases: &["statefulset"],
        disabled_by_default: false,
        start: start_statefulset,
    },
    Descriptor {
        name: "replicationcontroller-controller",
        aliases: &["replicationcontroller"],
        disabled_by_default: false,
        start: start_replicationcontroller,
    },
    Descriptor {
        name: "pod-garbage-collector",
        aliases: &["podgc"],
        disabled_by_default: false,
        start: start_podgc,
    },
];

fn start_deployment(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::deployment::run(
        c.client,
        c.config.concurrent_deployment_syncs,
        c.leading,
    ))
}

fn start_replicaset(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::replicaset::run(
        c.client,
        c.config.concurrent_replicaset_syncs,
        c.leading,
    ))
}

fn start_namespace(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::namespace::run(
        c.client,
        c.config.concurrent_namespace_syncs,
        c.leading,
    ))
}

fn start_node_lifecycle(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::nodelifecycle::run(
        c.client,
        c.config.node,
        c.leading,
    ))
}

fn start_garbage_collector(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::gc::run(
        c.client,
        c.config.concurrent_gc_syncs,
        c.leading,
    ))
}

fn start_job(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::job::run(
        c.client,
        c.config.concurrent_job_syncs,
        c.leading,
    ))
}

fn start_daemonset(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::daemonset::run(
        c.client,
        c.config.concurrent_daemonset_syncs,
        c.leading,
    ))
}

fn start_statefulset(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::statefulset::run(
        c.client,
        c.config.concurrent_statefulset_syncs,
        c.leading,
    ))
}

fn start_replicationcontroller(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::replicaset::run_replication_controllers(
        c.client,
        c.config.concurrent_rc_syncs,
        c.leading,
    ))
}

fn start_cronjob(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::cronjob::run(
        c.client,
        c.config.concurrent_cron_job_syncs,
        c.leading,
    ))
}

fn start_ttl_after_finished(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::ttlafterfinished::run(
        c.client,
        c.config.concurrent_ttl_after_finished_syncs,
        c.leading,
    ))
}

fn start_serviceaccount(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::serviceaccount::run(
        c.client,
        c.config.concurrent_serviceaccount_syncs,
        c.leading,
    ))
}

fn start_endpoints(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::endpoint::run(
        c.client,
        c.config.concurrent_endpoint_syncs,
        c.leading,
    ))
}

fn start_endpointslice(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::endpointslice::run(
        c.client,
        c.config.concurrent_service_endpoint_syncs,
        c.config.max_endpoints_per_slice,
        c.leading,
    ))
}

fn start_disruption(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::disruption::run(c.client, c.leading))
}

fn start_taint_eviction(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::tainteviction::run(c.client, c.leading))
}

fn start_node_ipam(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::nodeipam::run(c.client, c.config.node, c.leading))
}

fn start_podgc(c: Context) -> BoxFuture<'static, Result<()>> {
    Box::pin(crate::podgc::run(c.client, c.config.node, c.leading))
}

/// The canonical names of all known controllers.
pub fn known_controllers() -> Vec<&'static str> {
    known(CONTROLLERS)
}

fn known(table: &[Descriptor]) -> Vec<&'static str> {
    table.iter().map(|d| d.name).collect()
}

/// The canonical names `--controllers` enables, in start order.
pub fn enabled_controllers(flags: &[String]) -> Result<Vec<&'static str>> {
    enabled(CONTROLLERS, flags)
}

fn canonical<'t>(table: &'t [Descriptor], name: &str) -> Option<&'t Descriptor> {
    table
        .iter()
        .find(|d| d.name == name || d.aliases.contains(&name))
}

fn enabled(table: &[Descriptor], flags: &[String]) -> Result<Vec<&'static str>> {
    // Validate (kube's GenericControllerManagerConfigurationOptions.Validate) and replace
    // aliases by canonical names (its ApplyTo).
    let mut errors = Vec::new();
    let mut choices: Vec<(&'static str, bool)> = Vec::new();
    let mut star = false;
    for flag in flags {
        if flag == "*" {
            star = true;
            continue;
        }
        let (name, on) = match flag.strip_prefix('-') {
            Some(rest) => (rest, false),
            None => (flag.as_str(), true),
        };
        match canonical(table, name) {
            Some(d) => choices.push((d.name, on)),
            None => errors.push(format!("{name:?} is not in the list of known controllers")),
        }
    }
    match errors.len() {
        0 => {}
        // utilerrors.NewAggregate prints one error as itself and several as "[a, b]".
        1 => return Err(Error::Config(errors.remove(0))),
        _ => return Err(Error::Config(format!("[{}]", errors.join(", ")))),
    }
    // kube's IsControllerEnabled: the first explicit choice wins, then `*` turns on the
    // controllers that are on by default.
    Ok(table
        .iter()
        .filter(|d| {
            choices
                .iter()
                .find(|(name, _)| *name == d.name)
                .map_or(star && !d.disabled_by_default, |(_, on)| *on)
        })
        .map(|d| d.name)
        .collect())
}

/// Runs the enabled controllers for this term of leadership. Returns `Ok(())` when `leading` is
/// lost, or the first error of a controller that fails.
pub async fn run(client: Client, cfg: ManagerConfig, leading: Leading) -> Result<()> {
    let names = enabled_controllers(&cfg.controllers)?;
    tracing::info!(controllers = ?names, "starting controllers");
    let mut running = JoinSet::new();
    for d in CONTROLLERS.iter().filter(|d| names.contains(&d.name)) {
        let started = (d.start)(Context {
            client: client.clone(),
            config: cfg.clone(),
            leading: leading.clone(),
        });
        let name = d.name;
        running.spawn(async move { (name, started.await) });
    }
    loop {
        tokio::select! {
            _ = leading.lost() => {
                tracing::info!("leadership lost: stopping controllers");
                return Ok(());
            }
            joined = running.join_next() => match joined {
                Some(Ok((name, Err(e)))) => {
                    tracing::error!(controller = name, error = %e, "controller failed");
                    return Err(e);
                }
                Some(Ok((name, Ok(())))) => {
                    tracing::info!(controller = name, "controller stopped");
                }
                Some(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Some(Err(_)) => {}
                None => {
                    leading.lost().await;
                    return Ok(());
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never(_: Context) -> BoxFuture<'static, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// kube's own test table: two controllers on by default, two off.
    const TABLE: &[Descriptor] = &[
        Descriptor {
            name: "on-1-controller",
            aliases: &["on1"],
            disabled_by_default: false,
            start: never,
        },
        Descriptor {
            name: "on-2-controller",
            aliases: &[],
            disabled_by_default: false,
            start: never,
        },
        Descriptor {
            name: "off-1-controller",
            aliases: &["off1"],
            disabled_by_default: true,
            start: never,
        },
        Descriptor {
            name: "off-2-controller",
            aliases: &[],
            disabled_by_default: true,
            start: never,
        },
    ];

    fn flags(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn on(v: &[&str]) -> Vec<&'static str> {
        enabled(TABLE, &flags(v)).expect("valid flags")
    }

    #[test]
    fn star_enables_the_default_on_controllers() {
        assert_eq!(on(&["*"]), ["on-1-controller", "on-2-controller"]);
    }

    #[test]
    fn names_enable_and_dashes_disable() {
        assert_eq!(
            on(&["*", "off-1-controller"]),
            ["on-1-controller", "on-2-controller", "off-1-controller"]
        );
        assert_eq!(on(&["*", "-on-2-controller"]), ["on-1-controller"]);
        assert_eq!(
            on(&["off-2-controller"]),
            ["off-2-controller"],
            "without * only what is named"
        );
        assert_eq!(on(&[]), Vec::<&str>::new());
        assert_eq!(on(&["-on-1-controller"]), Vec::<&str>::new());
    }

    #[test]
    fn aliases_are_canonical_names() {
        assert_eq!(
            on(&["on1", "off1"]),
            ["on-1-controller", "off-1-controller"]
        );
        assert_eq!(on(&["*", "-on1"]), ["on-2-controller"]);
    }

    #[test]
    fn the_first_choice_wins() {
        assert_eq!(on(&["-on1", "on-1-controller", "*"]), ["on-2-controller"]);
        assert_eq!(on(&["on1", "-on1"]), ["on-1-controller"]);
    }

    #[test]
    fn unknown_names_are_errors_worded_as_kube() {
        let e = enabled(TABLE, &flags(&["*", "bogus"])).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            r#""bogus" is not in the list of known controllers"#
        );
        // Disabling an unknown controller is an error too (kube 1.32), named without the dash.
        let e = enabled(TABLE, &flags(&["-bogus", "nope"])).expect_err("unknown");
        assert_eq!(
            e.to_string(),
            r#"["bogus" is not in the list of known controllers, "nope" is not in the list of known controllers]"#
        );
        assert!(matches!(e, Error::Config(_)));
    }

    #[test]
    fn the_real_table_knows_deployment_and_replicaset() {
        assert_eq!(
            &known_controllers()[..2],
            ["deployment-controller", "replicaset-controller"]
        );
        let all = enabled_controllers(&ManagerConfig::default().controllers).expect("valid");
        assert_eq!(all, known_controllers(), "all are on by default");
        let only_rs = enabled_controllers(&flags(&["replicaset"])).expect("valid");
        assert_eq!(only_rs, ["replicaset-controller"]);
        let only_ns = enabled_controllers(&flags(&["namespace"])).expect("valid");
        assert_eq!(only_ns, ["namespace-controller"]);
        assert!(enabled_controllers(&flags(&["bogus"])).is_err());
    }

    #[test]
    fn the_workload_controllers_answer_to_kubes_names_and_aliases() {
        for (alias, name) in [
            ("job", "job-controller"),
            ("cronjob", "cronjob-controller"),
            ("ttl-after-finished", "ttl-after-finished-controller"),
            ("serviceaccount", "serviceaccount-controller"),
            ("endpoint", "endpoints-controller"),
            ("endpointslice", "endpointslice-controller"),
            ("namespace", "namespace-controller"),
            ("garbagecollector", "garbage-collector-controller"),
            ("daemonset", "daemonset-controller"),
            ("statefulset", "statefulset-controller"),
            ("replicationcontroller", "replicationcontroller-controller"),
        ] {
            assert_eq!(
                enabled_controllers(&flags(&[alias])).expect("alias"),
                [name]
            );
            assert_eq!(enabled_controllers(&flags(&[name])).expect("name"), [name]);
            assert!(enabled_controllers(&flags(&["*", &format!("-{alias}")]))
                .expect("valid")
                .iter()
                .all(|n| *n != name));
        }
        let c = ManagerConfig::default();
        assert_eq!(
            (
                c.concurrent_job_syncs,
                c.concurrent_cron_job_syncs,
                c.concurrent_endpoint_syncs
            ),
            (5, 5, 5)
        );
        assert_eq!(c.max_endpoints_per_slice, 100);
    }

    #[test]
    fn the_disruption_controller_is_on_by_default_under_both_names() {
        assert!(known_controllers().contains(&"disruption-controller"));
        let on = enabled_controllers(&flags(&["disruption"])).expect("valid");
        assert_eq!(on, ["disruption-controller"]);
        let off = enabled_controllers(&flags(&["*", "-disruption-controller"])).expect("valid");
        assert!(!off.contains(&"disruption-controller"));
    }

    #[test]
    fn the_node_controllers_have_kubes_names_and_aliases() {
        let known = known_controllers();
        for name in [
            "node-lifecycle-controller",
            "taint-eviction-controller",
            "node-ipam-controller",
            "pod-garbage-collector",
        ] {
            assert!(known.contains(&name), "{name}");
        }
        let on =
            enabled_controllers(&flags(&["nodelifecycle", "nodeipam", "podgc"])).expect("valid");
        assert_eq!(
            on,
            [
                "node-lifecycle-controller",
                "node-ipam-controller",
                "pod-garbage-collector"
            ]
        );
        let all = enabled_controllers(&flags(&["*"])).expect("valid");
        assert!(all.contains(&"taint-eviction-controller"));
    }

    #[test]
    fn defaults_are_kubes() {
        let c = ManagerConfig::default();
        assert_eq!(c.controllers, ["*"]);
        assert_eq!(c.concurrent_deployment_syncs, 5);
        assert_eq!(c.concurrent_replicaset_syncs, 5);
        assert_eq!(c.concurrent_gc_syncs, 20);
    }

    #[test]
    fn the_garbage_collector_is_known_by_its_name_and_alias() {
        assert!(known_controllers().contains(&"garbage-collector-controller"));
        let all = enabled_controllers(&ManagerConfig::default().controllers).expect("valid");
        assert!(
            all.contains(&"garbage-collector-controller"),
            "on by default"
        );
        assert_eq!(
            enabled_controllers(&flags(&["garbagecollector"])).expect("valid"),
            ["garbage-collector-controller"]
        );
        let without = enabled_controllers(&flags(&["*", "-garbagecollector"])).expect("valid");
        assert!(!without.contains(&"garbage-collector-controller"));
    }
}
