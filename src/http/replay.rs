//! Requests already taken once (the MAC of a Slack or Twilio signature, a Twilio
//! MessageSid), so a replayed copy is not acted on twice. Bounded: the oldest are
//! forgotten first.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

/// What was seen, for lookups, and in the order it was seen, to forget the oldest.
type Seen = (HashSet<Vec<u8>>, VecDeque<Vec<u8>>);

pub struct Recent {
    capacity: usize,
    inner: Mutex<Seen>,
}

impl Recent {
    pub fn new(capacity: usize) -> Recent {
        Recent {
            capacity,
            inner: Mutex::default(),
        }
    }

    /// Remembers `id`; false if it was already remembered.
    pub fn first_time(&self, id: &[u8]) -> bool {
        let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let (set, order) = &mut *guard;
        if set.contains(id) {
            return false;
        }
        if order.len() >= self.capacity
            && let Some(oldest) = order.pop_front()
        {
            set.remove(&oldest);
        }
        set.insert(id.to_vec());
        order.push_back(id.to_vec());
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_up_to_capacity() {
        let r = Recent::new(2);
        assert!(r.first_time(b"a"));
        assert!(!r.first_time(b"a"));
        assert!(r.first_time(b"b"));
        assert!(r.first_time(b"c"), "a is forgotten to make room");
        assert!(r.first_time(b"a"));
        assert!(!r.first_time(b"c"));
    }
}
