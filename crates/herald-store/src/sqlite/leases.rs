//! In-memory leases of deliveries being attempted. The embedded store has one process, so
//! a lease needs no disk write: a crash ends every lease, which is exactly right, and
//! leasing costs no transaction and no fsync.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

#[derive(Default)]
pub struct Leases(Mutex<Held>);

/// Delivery id -> lease end (ms).
#[derive(Default)]
pub struct Held(HashMap<i64, i64>);

impl Leases {
    pub fn lock(&self) -> MutexGuard<'_, Held> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Held {
    /// Forget leases that ended before `now` (their deliveries may be leased again).
    pub fn expire(&mut self, now: i64) {
        self.0.retain(|_, until| *until >= now);
    }

    pub fn contains(&self, id: i64) -> bool {
        self.0.contains_key(&id)
    }

    pub fn insert(&mut self, id: i64, until: i64) {
        self.0.insert(id, until);
    }

    pub fn release(&mut self, ids: &[i64]) {
        for id in ids {
            self.0.remove(id);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }
}
