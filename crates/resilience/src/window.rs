//! The arithmetic of a rolling time window: a ring of buckets, each holding
//! the counts of one slice of time.
//!
//! Time is cut into epochs of one bucket's width, counted from an origin.
//! Epoch `e` lives in slot `e % n`; a slot that still holds an older epoch is
//! emptied when the new one arrives, and reads only count slots whose epoch
//! lies within the last `n`. Counts therefore leave the window when their
//! bucket does, and nothing accumulates forever. No timer is involved: the
//! ring moves on when it is touched.

use std::time::Duration;

use tokio::time::Instant;

/// Marks a slot that has never held an epoch.
const EMPTY: u64 = u64::MAX;

/// Maps instants to epochs of one bucket's width.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EpochClock {
    origin: Instant,
    width_nanos: u64,
}

impl EpochClock {
    /// Epochs of `window / buckets`, at least one nanosecond.
    pub(crate) fn new(origin: Instant, window: Duration, buckets: u32) -> Self {
        let width = window.as_nanos() / u128::from(buckets.max(1));
        let width_nanos = u64::try_from(width).unwrap_or(u64::MAX).max(1);

        Self {
            origin,
            width_nanos,
        }
    }

    /// The epoch `now` falls in.
    pub(crate) fn epoch(&self, now: Instant) -> u64 {
        self.nanos(now) / self.width_nanos
    }

    /// The width of one epoch.
    pub(crate) fn width_nanos(&self) -> u64 {
        self.width_nanos
    }

    /// Nanoseconds from the origin to `now`, saturating.
    pub(crate) fn nanos(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.origin).as_nanos();

        u64::try_from(since).unwrap_or(u64::MAX)
    }
}

#[derive(Clone, Debug)]
struct Slot<B> {
    epoch: u64,
    data: B,
}

/// A ring of `n` buckets over the last `n` epochs.
#[derive(Clone, Debug)]
pub(crate) struct Ring<B> {
    slots: Box<[Slot<B>]>,
}

impl<B: Default + Clone> Ring<B> {
    /// A ring of `buckets` empty buckets (at least one).
    pub(crate) fn new(buckets: u32) -> Self {
        let empty = Slot {
            epoch: EMPTY,
            data: B::default(),
        };

        Self {
            slots: vec![empty; buckets.max(1) as usize].into_boxed_slice(),
        }
    }

    /// The bucket of `epoch`, emptied first if its slot held an older
    /// epoch; `None` when the slot already holds a newer one, which means
    /// `epoch` left the window before this write arrived.
    pub(crate) fn bucket(&mut self, epoch: u64) -> Option<&mut B> {
        let index = (epoch % self.len()) as usize;

        self.bucket_at(index, epoch)
    }

    /// [`Ring::bucket`] for a caller that already knows `epoch % n`.
    pub(crate) fn bucket_at(&mut self, index: usize, epoch: u64) -> Option<&mut B> {
        debug_assert_eq!(index as u64, epoch % self.len());
        let slot = &mut self.slots[index];

        if slot.epoch != EMPTY && slot.epoch > epoch {
            return None;
        }
        if slot.epoch != epoch {
            slot.epoch = epoch;
            slot.data = B::default();
        }

        Some(&mut slot.data)
    }

    /// The buckets of the `n` epochs up to and including `epoch`.
    pub(crate) fn live(&self, epoch: u64) -> impl Iterator<Item = &B> {
        let n = self.len();

        self.slots
            .iter()
            .filter(move |s| s.epoch != EMPTY && s.epoch <= epoch && epoch - s.epoch < n)
            .map(|s| &s.data)
    }

    /// Empties every bucket.
    pub(crate) fn clear(&mut self) {
        for slot in self.slots.iter_mut() {
            slot.epoch = EMPTY;
            slot.data = B::default();
        }
    }

    /// Bytes the ring holds on the heap.
    pub(crate) fn heap_size(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    fn len(&self) -> u64 {
        self.slots.len() as u64
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn total(ring: &Ring<u64>, epoch: u64) -> u64 {
        ring.live(epoch).sum()
    }

    #[test]
    fn counts_leave_with_their_bucket() {
        let mut ring = Ring::<u64>::new(10);

        *ring.bucket(3).unwrap() += 4;
        *ring.bucket(5).unwrap() += 1;

        assert_eq!(total(&ring, 12), 5);
        assert_eq!(total(&ring, 13), 1);
        assert_eq!(total(&ring, 15), 0);
    }

    #[test]
    fn a_reused_slot_starts_empty() {
        let mut ring = Ring::<u64>::new(4);

        *ring.bucket(1).unwrap() += 7;
        *ring.bucket(5).unwrap() += 1;

        assert_eq!(total(&ring, 5), 1);
    }

    #[test]
    fn a_write_older_than_its_slot_is_dropped() {
        let mut ring = Ring::<u64>::new(4);

        *ring.bucket(9).unwrap() += 1;

        assert!(ring.bucket(5).is_none());
        assert_eq!(total(&ring, 9), 1);
    }

    #[test]
    fn epochs_are_bucket_widths_from_the_origin() {
        let origin = Instant::now();
        let clock = EpochClock::new(origin, Duration::from_secs(10), 10);

        let at = |ms| clock.epoch(origin + Duration::from_millis(ms));

        assert_eq!([at(0), at(999), at(1000), at(25_500)], [0, 0, 1, 25]);
    }

    proptest! {
        /// The ring agrees with a plain list of every write, filtered by
        /// the same rule: an event counts while its epoch is one of the
        /// last `n`.
        #[test]
        fn ring_matches_a_naive_window(
            n in 1u32..16,
            steps in proptest::collection::vec((0u64..5, 1u64..10), 1..200),
        ) {
            let mut ring = Ring::<u64>::new(n);
            let mut events = Vec::new();
            let mut epoch = 0;

            for (gap, count) in steps {
                epoch += gap;
                *ring.bucket(epoch).unwrap() += count;
                events.push((epoch, count));

                let naive: u64 = events
                    .iter()
                    .filter(|(e, _)| epoch - e < u64::from(n))
                    .map(|(_, c)| c)
                    .sum();
                prop_assert_eq!(total(&ring, epoch), naive);
            }
        }

        /// Reading later than the last write also forgets old epochs.
        #[test]
        fn reads_expire_without_writes(
            n in 1u32..16,
            writes in proptest::collection::vec(0u64..50, 1..50),
            later in 0u64..100,
        ) {
            let mut writes = writes;
            writes.sort_unstable();
            let mut ring = Ring::<u64>::new(n);
            for e in &writes {
                *ring.bucket(*e).unwrap() += 1;
            }

            let now = writes[writes.len() - 1] + later;
            let naive = writes
                .iter()
                .filter(|e| now - **e < u64::from(n))
                .count() as u64;

            prop_assert_eq!(total(&ring, now), naive);
        }
    }
}
