//! What a request means once it is parsed: the generic store every kind goes through
//! (`store`), per-kind decoding, defaults and validation (`strategy`), what a DELETE does
//! (`deletion`), the admission plugins (`admission`), kinds with behaviour of their own
//! (`kinds/`), the Scale view (`scale`) and Table printers (`printers`). It knows nothing of
//! HTTP: it takes an `ObjectRef` and returns objects or `ApiError`s.

pub mod admission;
pub mod deletion;
pub mod kinds;
pub mod printers;
pub mod scale;
pub mod store;
pub mod strategy;

use crate::resources::{ResourceInfo, Subresource};

/// The object (or collection) a request names: its resource, namespace, name and subresource
/// as the URL spells them.
#[derive(Debug)]
pub struct ObjectRef {
    pub r: &'static ResourceInfo,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub sub: Option<String>,
}

impl ObjectRef {
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
    pub fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    pub fn subresource(&self) -> Option<Subresource> {
        match self.sub.as_deref() {
            Some("status") => Some(Subresource::Status),
            Some("scale") => Some(Subresource::Scale),
            Some("binding") => Some(Subresource::Binding),
            Some("eviction") => Some(Subresource::Eviction),
            _ => None,
        }
    }
}
