//! The concurrent map behind the claim table: `DashMap` normally, a
//! `Mutex<HashMap>` under loom (which cannot see inside DashMap). Both offer one
//! operation, [`Map::update`], an atomic read-modify-write of one key's slot, so
//! the claim protocol above it is the same code in production and in models.

/// What [`Map::update`] does with the slot after the closure looked at it.
pub(crate) enum Action<V> {
    /// Leave it as it is (mutations through `&mut` stay).
    Keep,
    /// Fill a vacant slot.
    Insert(V),
    /// Replace an occupied slot's value.
    Set(V),
    /// Empty an occupied slot.
    Remove,
}

#[cfg(not(feature = "loom"))]
mod imp {
    use compact_str::CompactString;
    use dashmap::mapref::entry::Entry;
    use dashmap::DashMap;

    use super::Action;

    /// A sharded concurrent map from string keys.
    pub(crate) struct Map<V> {
        inner: DashMap<CompactString, V, ahash::RandomState>,
    }

    impl<V> Map<V> {
        pub(crate) fn new() -> Self {
            Map {
                inner: DashMap::with_hasher(ahash::RandomState::new()),
            }
        }

        /// Runs `f` on `key`'s slot with the slot's shard locked.
        #[inline]
        pub(crate) fn update<R>(
            &self,
            key: &str,
            f: impl FnOnce(Option<&mut V>) -> (R, Action<V>),
        ) -> R {
            match self.inner.entry(CompactString::from(key)) {
                Entry::Vacant(e) => {
                    let (r, action) = f(None);
                    if let Action::Insert(v) | Action::Set(v) = action {
                        e.insert(v);
                    }
                    r
                }
                Entry::Occupied(mut e) => {
                    let (r, action) = f(Some(e.get_mut()));
                    match action {
                        Action::Keep | Action::Insert(_) => {}
                        Action::Set(v) => {
                            e.insert(v);
                        }
                        Action::Remove => {
                            e.remove();
                        }
                    }
                    r
                }
            }
        }

        pub(crate) fn len(&self) -> usize {
            self.inner.len()
        }
    }
}

#[cfg(feature = "loom")]
mod imp {
    use std::collections::HashMap;

    use compact_str::CompactString;

    use super::Action;
    use crate::sync::{lock, Mutex};

    /// One lock around a `HashMap`: loom sees every access.
    pub(crate) struct Map<V> {
        inner: Mutex<HashMap<CompactString, V>>,
    }

    impl<V> Map<V> {
        pub(crate) fn new() -> Self {
            Map {
                inner: Mutex::new(HashMap::new()),
            }
        }

        pub(crate) fn update<R>(
            &self,
            key: &str,
            f: impl FnOnce(Option<&mut V>) -> (R, Action<V>),
        ) -> R {
            let mut map = lock(&self.inner);
            let (r, action) = f(map.get_mut(key));
            match action {
                Action::Keep => {}
                Action::Insert(v) | Action::Set(v) => {
                    map.insert(CompactString::from(key), v);
                }
                Action::Remove => {
                    map.remove(key);
                }
            }
            r
        }

        pub(crate) fn len(&self) -> usize {
            lock(&self.inner).len()
        }
    }
}

pub(crate) use imp::Map;
