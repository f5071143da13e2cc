//! In-memory, size-bounded maps with expiry: the sign-in flows in progress and the signed-in
//! results. The demo keeps nothing on disk.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use openidconnect::CsrfToken;

/// Entries keyed by a random id (the value of a cookie), each living for `ttl`.
pub(crate) struct ExpiringMap<V> {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V> ExpiringMap<V> {
    /// A map whose entries expire `ttl` after insertion and which never holds more than
    /// `capacity` live entries (so a flood of `/login` requests cannot grow it without bound).
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, V)>> {
        // A panic while holding the lock cannot leave a HashMap half-updated in a way that
        // matters here, so keep going with the data.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `value` under a fresh random id and returns the id, or `None` when the map is full
    /// of live entries.
    pub(crate) fn insert(&self, value: V, now: Instant) -> Option<String> {
        let mut entries = self.lock();
        if entries.len() >= self.capacity {
            entries.retain(|_, (expires, _)| *expires > now);
            if entries.len() >= self.capacity {
                return None;
            }
        }
        // 32 random bytes from the OS RNG, base64url (openidconnect's `state` generator).
        let id = CsrfToken::new_random_len(32).into_secret();
        entries.insert(id.clone(), (now + self.ttl, value));
        Some(id)
    }

    /// Removes and returns the entry (single use); `None` if unknown or expired.
    pub(crate) fn take(&self, id: &str, now: Instant) -> Option<V> {
        let (expires, value) = self.lock().remove(id)?;
        (expires > now).then_some(value)
    }
}

impl<V: Clone> ExpiringMap<V> {
    /// Returns a copy of the entry, leaving it in place; `None` if unknown or expired.
    pub(crate) fn get(&self, id: &str, now: Instant) -> Option<V> {
        let mut entries = self.lock();
        match entries.get(id) {
            Some((expires, value)) if *expires > now => Some(value.clone()),
            Some(_) => {
                entries.remove(id);
                None
            }
            None => None,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn take_is_single_use() {
        let map = ExpiringMap::new(TTL, 10);
        let now = Instant::now();
        let id = map.insert(7, now).unwrap();
        assert_eq!(map.take(&id, now), Some(7));
        assert_eq!(map.take(&id, now), None);
    }

    #[test]
    fn entries_expire_after_ttl() {
        let map = ExpiringMap::new(TTL, 10);
        let now = Instant::now();
        let id = map.insert("flow", now).unwrap();
        assert_eq!(
            map.get(&id, now + TTL - Duration::from_secs(1)),
            Some("flow")
        );
        assert_eq!(map.take(&id, now + TTL), None);
    }

    #[test]
    fn ids_are_random_and_long() {
        let map = ExpiringMap::new(TTL, 10);
        let now = Instant::now();
        let a = map.insert((), now).unwrap();
        let b = map.insert((), now).unwrap();
        assert_ne!(a, b);
        assert!(a.len() >= 43, "{a}");
    }

    #[test]
    fn full_map_refuses_until_entries_expire() {
        let map = ExpiringMap::new(TTL, 2);
        let now = Instant::now();
        map.insert(1, now).unwrap();
        map.insert(2, now).unwrap();
        assert_eq!(map.insert(3, now), None);
        assert!(map.insert(3, now + TTL).is_some());
    }
}
