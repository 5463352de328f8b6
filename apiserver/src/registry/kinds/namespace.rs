//! Namespace deletion: everything in a namespace being deleted goes, then the namespace.

use std::sync::Arc;

use serde_json::json;

use crate::app::App;
use crate::machinery::meta;
use crate::registry::store;
use crate::resources::{self, RESOURCES};

impl App {
    /// Deletes everything in a namespace being deleted, then the namespace (the namespace
    /// controller's job in Kubernetes, done here until controllers exist).
    /// (Boxed: it deletes through the same path that starts it.)
    pub fn finalize_namespace(
        self: Arc<Self>,
        ns: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.finalize_namespace_inner(&ns).await })
    }

    async fn finalize_namespace_inner(self: &Arc<Self>, ns: &str) {
        for r in RESOURCES.iter().filter(|r| r.namespaced) {
            let prefix = self.storage.list_prefix(r, Some(ns));
            let Ok(page) = self
                .storage
                .list(&prefix, 0, None, 0, &|_| true, false)
                .await
            else {
                return;
            };
            for s in page.items {
                if let Some(name) = meta::meta_str(&s.object, "name") {
                    let _ = store::delete_one(
                        self,
                        r,
                        Some(ns),
                        name,
                        &json!({"gracePeriodSeconds": 0}),
                        false,
                    )
                    .await;
                }
            }
        }
        let nsr = resources::find("", "v1", "namespaces").expect("namespaces");
        let key = self.storage.key(nsr, None, ns);
        if let Ok(Some(cur)) = self.storage.get(&key).await {
            let _ = self.storage.delete(&key, cur.mod_revision, &[]).await;
        }
    }
}
