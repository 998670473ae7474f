//! The node's deadline wheel: one sweeper task per node wakes the connections whose
//! deadline has come (login timeout, heartbeat timeout, a token's will-expire push or
//! expiry), so that an idle connection holds no tokio timer of its own — two timers
//! per connection were ~250 B of every idle connection's memory (docs/benchmarks.md).
//!
//! A connection registers its earliest deadline with [`Wheel::arm`]; deadlines are
//! rounded up to a slot of [`GRAIN`]. When the slot comes the sweeper rings the
//! connection's outbound ([`Outbound::ring`]), and the connection looks at the clock
//! itself: a ring is never early, at most one slot late, and a stale entry (a deadline
//! that moved) only wakes a connection that finds nothing due. Traffic moves the
//! heartbeat deadline later without touching the wheel: the connection re-registers
//! when it is rung. When the node shuts down the sweeper rings every registered
//! connection, and a connection registering afterwards is rung at once.

use super::clock::Clock;
use super::outbound::Outbound;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{Notify, watch};

/// Width of one slot: how late a deadline may be noticed at most.
pub(crate) const GRAIN: Duration = Duration::from_millis(100);

/// Longest the sweeper sleeps while connections are registered: how late a wall-clock
/// jump may be noticed at most (plus one [`GRAIN`]).
pub(crate) const JUMP_CHECK: Duration = Duration::from_millis(500);

/// A move of the wall clock against the monotonic clock larger than this, between two
/// looks, is a jump.
const JUMP: Duration = Duration::from_millis(250);

/// The node's deadline wheel (see the module's documentation).
pub(crate) struct Wheel {
    shared: Arc<Shared>,
    /// The node's shutdown flag, handed to the sweeper when it starts.
    shutdown: watch::Receiver<bool>,
}

struct Shared {
    slots: Mutex<Slots>,
    /// Wakes the sweeper: a slot earlier than the one it sleeps until was added.
    wake: Notify,
    /// Slot 0 begins here.
    epoch: Instant,
    /// The wall clock whose jumps ring every connection.
    clock: Clock,
}

struct Slots {
    /// Connections to ring, by slot number.
    due: BTreeMap<u64, Vec<Weak<Outbound>>>,
    /// The slot the sweeper sleeps until (`u64::MAX`: none).
    next: u64,
    /// Whether the sweeper task runs (it starts with the first registration).
    running: bool,
    /// The node is shutting down: every connection is rung, new ones at once.
    down: bool,
}

impl Wheel {
    /// An empty wheel for a node whose shutdown flag `shutdown` watches and whose
    /// token deadlines `clock` tells.
    pub fn new(shutdown: watch::Receiver<bool>, clock: Clock) -> Self {
        Wheel {
            shared: Arc::new(Shared {
                slots: Mutex::new(Slots {
                    due: BTreeMap::new(),
                    next: u64::MAX,
                    running: false,
                    down: false,
                }),
                wake: Notify::new(),
                epoch: Instant::now(),
                clock,
            }),
            shutdown,
        }
    }

    /// Rings `out` once `at` has passed (at most one [`GRAIN`] later), or at once if
    /// the node is shutting down. Call from inside the runtime.
    pub fn arm(&self, at: Instant, out: &Arc<Outbound>) {
        let shared = &self.shared;
        let slot = shared.slot_at(at);
        let mut s = shared.lock();
        if s.down {
            drop(s);
            out.ring();
            return;
        }
        s.due.entry(slot).or_default().push(Arc::downgrade(out));
        if !s.running {
            s.running = true;
            s.next = slot;
            tokio::spawn(sweep(shared.clone(), self.shutdown.clone()));
        } else if slot < s.next {
            s.next = slot;
            shared.wake.notify_one();
        }
    }

    /// The slot a deadline at `at` rings in: a deadline moved earlier within its slot
    /// needs no new registration.
    pub fn slot(&self, at: Instant) -> u64 {
        self.shared.slot_at(at)
    }

    /// Connections registered (entries, stale ones included): for tests and metrics.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.shared.lock().due.values().map(Vec::len).sum()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slots> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The first slot that begins at or after `at`.
    fn slot_at(&self, at: Instant) -> u64 {
        // In nanoseconds: rounded up from whole milliseconds, a deadline 500.4 ms in
        // would ring in the slot that begins at 500 ms, before it has passed, and the
        // connection (seeing its deadline still ahead and its entry gone) would never
        // be rung for it again.
        let ns = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(ns.div_ceil(GRAIN.as_nanos())).unwrap_or(u64::MAX - 1)
    }

    /// The wall clock's offset from the monotonic clock at `now`, in milliseconds.
    fn offset_ms(&self, now: Instant) -> i128 {
        let mono = now.saturating_duration_since(self.epoch).as_millis();
        i128::from(self.clock.now_ms()) - i128::try_from(mono).unwrap_or(i128::MAX)
    }

    /// The slot that has begun last, at `now`.
    fn slot_now(&self, now: Instant) -> u64 {
        let ms = now.saturating_duration_since(self.epoch).as_millis();
        u64::try_from(ms / GRAIN.as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// When slot `slot` begins.
    fn start_of(&self, slot: u64) -> Instant {
        let ms = slot.saturating_mul(GRAIN.as_millis() as u64);
        self.epoch + Duration::from_millis(ms)
    }
}

/// The sweeper: rings the connections of every slot that has begun, sleeps until the
/// next one (or until an earlier one is added), and rings everyone at shutdown. Ends
/// with the node (its shutdown flag's sender is dropped).
async fn sweep(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut down = *shutdown.borrow_and_update();
    let mut offset = shared.offset_ms(Instant::now());
    loop {
        let (rung, next) = {
            let mut s = shared.lock();
            s.down |= down;
            let instant = Instant::now();
            let now = shared.slot_now(instant);
            let mut rung = Vec::new();
            let all = s.down;
            while let Some(first) = s.due.first_entry() {
                if *first.key() > now && !all {
                    break;
                }
                rung.push(first.remove());
            }
            // A wall-clock jump: everyone still registered looks again (and keeps its
            // entry, for the deadline it registered).
            let seen = shared.offset_ms(instant);
            if (seen - offset).unsigned_abs() > JUMP.as_millis() {
                rung.push(s.due.values().flatten().cloned().collect());
            }
            offset = seen;
            s.next = s.due.first_key_value().map_or(u64::MAX, |(k, _)| *k);
            (rung, s.next)
        };
        for out in rung.into_iter().flatten() {
            if let Some(out) = out.upgrade() {
                out.ring();
            }
        }
        let sleep = async {
            if next == u64::MAX {
                std::future::pending::<()>().await;
            }
            let at = shared.start_of(next).min(Instant::now() + JUMP_CHECK);
            tokio::time::sleep_until(at.into()).await;
        };
        tokio::select! {
            _ = sleep => {}
            _ = shared.wake.notified() => {}
            changed = shutdown.changed() => match changed {
                Ok(()) => down |= *shutdown.borrow_and_update(),
                // The node is gone.
                Err(_) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::outbound::Limits;

    /// An outbound on one end of an in-memory pipe (the other end is kept open).
    fn outbound() -> (Arc<Outbound>, tokio::io::DuplexStream) {
        let (a, b) = tokio::io::duplex(1024);
        let limits = Limits::new(16, 4096, 4096, Duration::from_secs(1));
        (Outbound::new(Box::new(a), limits), b)
    }

    /// Waits for `out`'s next ring, failing after `within`.
    async fn rung(out: &Outbound, within: Duration) {
        tokio::time::timeout(within, out.signaled())
            .await
            .expect("not rung in time");
    }

    #[tokio::test]
    async fn a_deadline_rings_after_it_has_passed_and_not_before() {
        let (_tx, rx) = watch::channel(false);
        let w = Wheel::new(rx, Clock::system());
        let (out, _peer) = outbound();
        let at = Instant::now() + Duration::from_millis(250);
        w.arm(at, &out);
        rung(&out, Duration::from_secs(5)).await;
        let now = Instant::now();
        assert!(now >= at, "rung {:?} early", at - now);
        // At most one slot late, with room for a busy machine.
        assert!(now < at + GRAIN + Duration::from_secs(2));
        // The entry has left the wheel.
        assert_eq!(w.len(), 0);
    }

    #[tokio::test]
    async fn an_earlier_deadline_rings_first_and_a_later_one_still_rings() {
        let (_tx, rx) = watch::channel(false);
        let w = Wheel::new(rx, Clock::system());
        let (late, _p1) = outbound();
        let (early, _p2) = outbound();
        let start = Instant::now();
        // The sweeper sleeps until the later slot; the earlier one must wake it.
        w.arm(start + Duration::from_millis(900), &late);
        w.arm(start + Duration::from_millis(200), &early);
        rung(&early, Duration::from_secs(5)).await;
        assert!(Instant::now() >= start + Duration::from_millis(200));
        rung(&late, Duration::from_secs(5)).await;
        assert!(Instant::now() >= start + Duration::from_millis(900));
    }

    #[tokio::test]
    async fn shutdown_rings_every_connection_and_any_that_registers_later_at_once() {
        let (tx, rx) = watch::channel(false);
        let w = Wheel::new(rx, Clock::system());
        let (a, _p1) = outbound();
        let (b, _p2) = outbound();
        let far = Instant::now() + Duration::from_secs(3600);
        w.arm(far, &a);
        w.arm(far, &b);
        tx.send_replace(true);
        rung(&a, Duration::from_secs(5)).await;
        rung(&b, Duration::from_secs(5)).await;
        // Once the sweeper has seen the shutdown, a new registration rings at once.
        let (c, _p3) = outbound();
        let begin = Instant::now();
        loop {
            w.arm(far, &c);
            if tokio::time::timeout(Duration::from_millis(50), c.signaled())
                .await
                .is_ok()
            {
                break;
            }
            assert!(
                begin.elapsed() < Duration::from_secs(5),
                "never rung at once"
            );
        }
    }

    #[tokio::test]
    async fn a_closed_connection_is_skipped() {
        let (_tx, rx) = watch::channel(false);
        let w = Wheel::new(rx, Clock::system());
        let (gone, _p1) = outbound();
        let (kept, _p2) = outbound();
        let at = Instant::now() + Duration::from_millis(150);
        w.arm(at, &gone);
        w.arm(at, &kept);
        drop(gone);
        rung(&kept, Duration::from_secs(5)).await;
        assert_eq!(w.len(), 0);
    }

    #[tokio::test]
    async fn a_wall_clock_jump_rings_every_connection_and_keeps_its_entry() {
        let (_tx, rx) = watch::channel(false);
        let clock = Clock::shifted();
        let w = Wheel::new(rx, clock.clone());
        let (out, _peer) = outbound();
        w.arm(Instant::now() + Duration::from_secs(3600), &out);
        // Let the sweeper take its first look at the clock.
        assert!(
            tokio::time::timeout(JUMP_CHECK * 2, out.signaled())
                .await
                .is_err(),
            "rung without a jump"
        );
        clock.shift(-600_000);
        rung(&out, Duration::from_secs(5)).await;
        assert_eq!(w.len(), 1, "the entry stays for its own deadline");
        clock.shift(1_200_000);
        rung(&out, Duration::from_secs(5)).await;
    }

    #[test]
    fn slots_round_deadlines_up_and_the_present_down() {
        let (_tx, rx) = watch::channel(false);
        let w = Wheel::new(rx, Clock::system());
        let s = &w.shared;
        let e = s.epoch;
        assert_eq!(s.slot_at(e), 0);
        assert_eq!(s.slot_at(e + Duration::from_millis(1)), 1);
        assert_eq!(s.slot_at(e + Duration::from_millis(100)), 1);
        assert_eq!(s.slot_at(e + Duration::from_millis(101)), 2);
        assert_eq!(s.slot_now(e + Duration::from_millis(99)), 0);
        assert_eq!(s.slot_now(e + Duration::from_millis(100)), 1);
        // A deadline's slot has begun only once the deadline has passed, also with a
        // part of a millisecond past a slot's start.
        assert_eq!(s.slot_at(e + Duration::from_micros(500_400)), 6);
        for us in [
            0, 1, 999, 1_000, 50_000, 99_999, 100_000, 100_001, 100_500, 250_000,
        ] {
            let at = e + Duration::from_micros(us);
            assert!(s.start_of(s.slot_at(at)) >= at, "{us} µs");
        }
        for ms in [0, 1, 50, 99, 100, 101, 250, 1_000_003] {
            let at = e + Duration::from_millis(ms);
            assert!(s.start_of(s.slot_at(at)) >= at, "{ms} ms");
        }
        assert_eq!(w.len(), 0);
    }
}
