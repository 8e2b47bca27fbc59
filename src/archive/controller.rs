//! What the mirror last saw of a controller (`<source>/controller.json`, a
//! [`ControllerInfo`]): its version and the classes of its items. The worker records it when what a poll
//! shows differs from the stored record; readers (`jam serve`) answer with it as the controller would.

use crate::{
    format::{
        layout::{self, Layout},
        manifest::ControllerInfo,
    },
    store::StoreError,
};

use super::{Archive, Catalog, CatalogError};

impl Archive {
    /// Writes the controller record, replacing the previous one (the newest sight wins).
    pub async fn record_controller(
        &self,
        layout: &Layout,
        info: &ControllerInfo,
    ) -> Result<(), StoreError> {
        let key = layout::path(&layout.controller_key());
        self.store.put(&key, info.to_json()).await
    }
}

impl Catalog {
    /// The controller record of a source; `None` when the mirror has none (an older worker wrote it).
    pub async fn controller(
        &self,
        layout: &Layout,
    ) -> Result<Option<ControllerInfo>, CatalogError> {
        self.read_json(&layout.controller_key()).await
    }
}
