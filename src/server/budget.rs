//! The body memory budget: bytes of request bodies being read or judged and of answers not
//! yet taken by their clients, across all connections, shared so that no client can starve
//! the apiserver's reviews (README, "Operations": the body budget).
//!
//! - **Reserved share for small bodies.** A body is *small* when its `Content-Length` is at
//!   most [`BudgetConfig::small_body`] (256 KiB: an ordinary Pod review is 3–10 KiB). Large
//!   bodies (and bodies without a `Content-Length`) together never hold more than
//!   `limit - small_reserve`, so small ones always find [`BudgetConfig::small_reserve`].
//! - **A cap per peer.** The bodies one peer (source IP address) has in progress or being
//!   judged hold at most [`BudgetConfig::per_peer`]. The apiserver is one peer per instance.
//! - **Reserved as it arrives.** A body reserves what has been received (its buffer's
//!   capacity), not what it declares: declaring 8 MiB and sending 1 byte holds 16 KiB.
//! - **Stalled bodies make room.** When a body does not fit, bodies that are *stalled* are
//!   evicted until it fits: their request gets 503 and its memory is freed at once. A body
//!   is stalled once it has been arriving for [`BudgetConfig::evict_after`] (1 s) and has
//!   received nothing for [`STALL`] (500 ms) or less than [`MIN_RATE`] (256 KiB/s) on
//!   average. The apiserver writes a 6 MiB review in well under a second and never pauses
//!   in it, so a stalled body is the shape of an attack (unfinished or trickling).
//! - **Peers that hold bodies open lose their standing.** A peer is *penalized* while one
//!   of its bodies is stalled, and for [`PENALTY`] (10 s) after one of its bodies was
//!   evicted, or refused for memory while it had another large body being read. A body
//!   from a peer in good standing may evict any stalled body, and any body of a penalized
//!   peer (stalled or not); a body from a penalized peer only its own peer's stalled ones.
//!   The apiserver, whose bodies never stall and which sends one review per request, keeps
//!   its standing and can always take room from the bodies of peers that hold bodies open,
//!   while those peers cannot take room from anyone else (they cannot churn the budget
//!   among themselves). The penalized peer holding the most goes first, its largest body
//!   first. A large body from a penalized peer that would not fit (beside its own stalled
//!   bodies) is refused before it is read ([`Budget::refuse_at_once`]).
//!
//! Every refusal is counted by reason in `volguard_shed_requests_total`: `body_memory` (no
//! room even after evicting), `peer_limit`, `body_evicted`, `body_timeout` (the body did not
//! arrive within `--body-timeout` or the request's `?timeout=`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

mod evict;

/// How the budget is shared.
#[derive(Debug, Clone, Copy)]
pub struct BudgetConfig {
    /// Bytes held across all connections.
    pub limit: usize,
    /// Bytes only small bodies (and answers) may use.
    pub small_reserve: usize,
    /// A body declaring at most this many bytes is small.
    pub small_body: usize,
    /// Bytes the bodies of one peer may hold (0: no cap).
    pub per_peer: usize,
    /// A body still being read this long may be evicted to make room for another.
    pub evict_after: Duration,
}

/// Bodies up to this size are "small" (see the module documentation).
pub const SMALL_BODY: usize = 256 * 1024;
/// A body still arriving after this long may be evicted when memory is needed (if stalled).
pub const EVICT_AFTER: Duration = Duration::from_secs(1);
/// A body that has received nothing for this long is stalled.
pub const STALL: Duration = Duration::from_millis(500);
/// A body that has received less than this on average (bytes per second) is stalled.
pub const MIN_RATE: u64 = 256 * 1024;
/// A peer whose body was evicted (or refused while it had other large bodies in progress)
/// is penalized this long.
pub const PENALTY: Duration = Duration::from_secs(10);

impl BudgetConfig {
    /// The shares made consistent: the reserve and the per-peer cap never exceed the limit.
    pub fn new(limit: usize, small_reserve: usize, per_peer: usize) -> Self {
        BudgetConfig {
            limit,
            small_reserve: small_reserve.min(limit),
            small_body: SMALL_BODY,
            per_peer: per_peer.min(limit),
            evict_after: EVICT_AFTER,
        }
    }
}

/// Why bytes were refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The budget (or the large bodies' share) is full, even after evicting stalled bodies.
    Full,
    /// The peer's bodies already hold `--body-memory-per-peer-bytes`.
    PeerLimit,
    /// This body was evicted to make room for another.
    Evicted,
}

impl Refused {
    /// The `reason` label of `volguard_shed_requests_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Refused::Full => "body_memory",
            Refused::PeerLimit => "peer_limit",
            Refused::Evicted => "body_evicted",
        }
    }
}

/// What a reservation stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A request body with a `Content-Length` up to `small_body`.
    Small,
    /// Any other request body.
    Large,
    /// An encoded answer (forced: its memory is already allocated).
    Answer,
}

/// A body being read: what eviction needs to know, and how the reader learns of it.
struct Reading {
    class: Class,
    peer: Option<IpAddr>,
    bytes: usize,
    ticket: Arc<Ticket>,
}

/// Shared between a reservation and the budget: the body's progress (updated by its reader
/// without the budget's lock) and whether it has been evicted.
pub struct Ticket {
    evicted: AtomicBool,
    notify: Notify,
    started: Instant,
    received: AtomicU64,
    /// Milliseconds after `started` of the last bytes received.
    last_ms: AtomicU64,
}

impl Ticket {
    fn new() -> Self {
        Ticket {
            evicted: AtomicBool::new(false),
            notify: Notify::new(),
            started: Instant::now(),
            received: AtomicU64::new(0),
            last_ms: AtomicU64::new(0),
        }
    }

    /// `n` more bytes of the body have arrived.
    pub fn received(&self, n: usize) {
        self.received.fetch_add(n as u64, Ordering::Relaxed);
        let ms = self.started.elapsed().as_millis() as u64;
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// Arriving for at least `evict_after`, and nothing for [`STALL`] or less than
    /// [`MIN_RATE`] on average.
    fn stalled(&self, now: Instant, evict_after: Duration) -> bool {
        let age = now.saturating_duration_since(self.started);
        if age < evict_after {
            return false;
        }
        let last = self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        let received = self.received.load(Ordering::Relaxed);
        now.saturating_duration_since(last) >= STALL
            || (received as f64) < MIN_RATE as f64 * age.as_secs_f64()
    }

    pub fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Resolves once the body has been evicted.
    pub async fn evicted(&self) {
        loop {
            let notified = self.notify.notified();
            if self.is_evicted() {
                return;
            }
            notified.await;
        }
    }
}

#[derive(Default)]
struct State {
    used: usize,
    large: usize,
    peers: HashMap<IpAddr, usize>,
    reading: HashMap<u64, Reading>,
    /// Penalized peers, and since when (kept for [`PENALTY`]).
    penalized: HashMap<IpAddr, Instant>,
    next_id: u64,
    evictions: u64,
}

/// Bytes of request and response bodies held across all connections.
pub struct Budget {
    config: BudgetConfig,
    state: Mutex<State>,
}

impl Budget {
    pub fn new(config: BudgetConfig) -> Arc<Self> {
        Arc::new(Budget {
            config,
            state: Mutex::new(State::default()),
        })
    }

    /// A budget with one shared pool: no reserve, no per-peer cap, no eviction.
    pub fn plain(limit: usize) -> Arc<Self> {
        Budget::new(BudgetConfig {
            limit,
            small_reserve: 0,
            small_body: SMALL_BODY,
            per_peer: 0,
            evict_after: Duration::MAX,
        })
    }

    pub fn config(&self) -> &BudgetConfig {
        &self.config
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn used(&self) -> usize {
        self.lock().used
    }

    /// Bodies evicted so far.
    pub fn evictions(&self) -> u64 {
        self.lock().evictions
    }

    /// An empty reservation for an answer, to be [`Reservation::force`]d.
    pub fn empty(self: &Arc<Self>) -> Reservation {
        Reservation {
            budget: self.clone(),
            bytes: 0,
            class: Class::Answer,
            peer: None,
            reading: None,
        }
    }

    /// An empty reservation for a request body from `peer` declaring `declared` bytes,
    /// registered as being read (evictable once old enough) until [`Reservation::finished`].
    pub fn body(self: &Arc<Self>, peer: Option<IpAddr>, declared: Option<usize>) -> Reservation {
        let class = match declared {
            Some(n) if n <= self.config.small_body => Class::Small,
            _ => Class::Large,
        };
        let ticket = Arc::new(Ticket::new());
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id += 1;
        st.reading.insert(
            id,
            Reading {
                class,
                peer,
                bytes: 0,
                ticket: ticket.clone(),
            },
        );
        drop(st);
        Reservation {
            budget: self.clone(),
            bytes: 0,
            class,
            peer,
            reading: Some((id, ticket)),
        }
    }

    /// Whether `n` more bytes of `class` from `peer` fit; if not, which limit is in the way.
    fn fits(
        &self,
        st: &State,
        class: Class,
        peer: Option<IpAddr>,
        n: usize,
    ) -> Result<(), Refused> {
        let c = &self.config;
        if c.per_peer > 0
            && let Some(p) = peer
            && st.peers.get(&p).copied().unwrap_or(0) + n > c.per_peer
        {
            return Err(Refused::PeerLimit);
        }
        if st.used + n > c.limit {
            return Err(Refused::Full);
        }
        if class == Class::Large && st.large + n > c.limit - c.small_reserve {
            return Err(Refused::Full);
        }
        Ok(())
    }

    fn release(st: &mut State, class: Class, peer: Option<IpAddr>, n: usize) {
        st.used -= n;
        if class == Class::Large {
            st.large -= n;
        }
        if let Some(p) = peer
            && class != Class::Answer
            && let Some(v) = st.peers.get_mut(&p)
        {
            *v -= n;
            if *v == 0 {
                st.peers.remove(&p);
            }
        }
    }
}

/// Bytes taken from the [`Budget`]; given back when dropped.
pub struct Reservation {
    budget: Arc<Budget>,
    bytes: usize,
    class: Class,
    peer: Option<IpAddr>,
    /// While the body is read: its id in the budget's registry and its eviction ticket.
    reading: Option<(u64, Arc<Ticket>)>,
}

impl Reservation {
    /// Takes `n` more bytes if they fit (evicting stalled bodies if that makes them fit).
    pub fn grow(&mut self, n: usize) -> Result<(), Refused> {
        let budget = self.budget.clone();
        let mut st = budget.lock();
        let me = match &self.reading {
            Some((id, ticket)) => {
                if ticket.is_evicted() {
                    return Err(Refused::Evicted);
                }
                *id
            }
            None => u64::MAX,
        };
        loop {
            match budget.fits(&st, self.class, self.peer, n) {
                Ok(()) => break,
                Err(why) => {
                    if !budget.evict_one(&mut st, me, (self.class, self.peer, n), why) {
                        // Refused while it has other large bodies in progress: it holds
                        // bodies open (the apiserver sends one review per request).
                        if let Some(p) = self.peer
                            && self.class == Class::Large
                            && st.reading.iter().any(|(id, r)| {
                                *id != me && r.peer == self.peer && r.class == Class::Large
                            })
                        {
                            st.penalized.insert(p, Instant::now());
                        }
                        return Err(why);
                    }
                }
            }
        }
        st.used += n;
        if self.class == Class::Large {
            st.large += n;
        }
        if let Some(p) = self.peer {
            *st.peers.entry(p).or_insert(0) += n;
        }
        if let Some(r) = st.reading.get_mut(&me) {
            r.bytes += n;
        }
        self.bytes += n;
        Ok(())
    }

    /// Takes `n` more bytes even beyond the budget (memory already allocated, such as a
    /// computed answer), so that new requests are refused until it is released.
    pub fn force(&mut self, n: usize) {
        let mut st = self.budget.lock();
        st.used += n;
        if self.class == Class::Large {
            st.large += n;
        }
        if let Some(p) = self.peer {
            *st.peers.entry(p).or_insert(0) += n;
        }
        self.bytes += n;
    }

    /// The body has arrived whole: it can no longer be evicted (it is being judged).
    pub fn finished(&mut self) {
        if let Some((id, _)) = self.reading.take() {
            self.budget.lock().reading.remove(&id);
        }
    }

    /// The eviction ticket while the body is being read.
    pub fn ticket(&self) -> Option<Arc<Ticket>> {
        self.reading.as_ref().map(|(_, t)| t.clone())
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut st = self.budget.lock();
        if let Some((id, ticket)) = self.reading.take() {
            // An evicted body's bytes were given back when it was evicted.
            if ticket.is_evicted() {
                return;
            }
            st.reading.remove(&id);
        }
        Budget::release(&mut st, self.class, self.peer, self.bytes);
    }
}

/// A response body that holds its bytes' reservation until the connection drops it.
pub struct BudgetedBody {
    data: Option<axum::body::Bytes>,
    _reservation: Reservation,
}

impl BudgetedBody {
    pub fn new(data: axum::body::Bytes, reservation: Reservation) -> Self {
        BudgetedBody {
            data: Some(data),
            _reservation: reservation,
        }
    }
}

impl http_body::Body for BudgetedBody {
    type Data = axum::body::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Poll::Ready(self.data.take().map(|d| Ok(http_body::Frame::data(d))))
    }

    fn is_end_stream(&self) -> bool {
        self.data.is_none()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.data.as_ref().map_or(0, |d| d.len() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bodies become evictable after this long in these tests.
    const EVICT: Duration = Duration::from_millis(200);

    fn ip(n: u8) -> Option<IpAddr> {
        Some(IpAddr::from([10, 0, 0, n]))
    }

    fn cfg(limit: usize, reserve: usize, per_peer: usize) -> BudgetConfig {
        BudgetConfig {
            limit,
            small_reserve: reserve,
            small_body: 10,
            per_peer,
            evict_after: Duration::from_secs(3600),
        }
    }

    #[test]
    fn answers_reserve_and_release() {
        let b = Budget::plain(100);
        let mut r = b.empty();
        assert!(r.grow(60).is_ok());
        let mut r2 = b.empty();
        assert_eq!(r2.grow(41), Err(Refused::Full));
        assert!(r2.grow(40).is_ok());
        assert_eq!(b.used(), 100);
        drop(r);
        assert_eq!(b.used(), 40);
        r2.force(200);
        assert_eq!(b.used(), 240);
        assert!(b.empty().grow(1).is_err());
        drop(r2);
        assert_eq!(b.used(), 0);
    }

    #[test]
    fn large_bodies_cannot_take_the_small_reserve() {
        let b = Budget::new(cfg(100, 30, 0));
        let mut large = b.body(ip(1), Some(1000));
        assert_eq!(large.grow(71), Err(Refused::Full));
        assert!(large.grow(70).is_ok());
        // Another large body from another peer: the large share is full.
        assert_eq!(b.body(ip(2), None).grow(1), Err(Refused::Full));
        // A small body still gets the reserve.
        let mut small = b.body(ip(2), Some(10));
        assert!(small.grow(10).is_ok());
        assert_eq!(b.used(), 80);
        drop(large);
        drop(small);
        assert_eq!(b.used(), 0);
        assert!(b.lock().peers.is_empty() && b.lock().reading.is_empty());
    }

    #[test]
    fn one_peer_holds_at_most_its_cap() {
        let b = Budget::new(cfg(100, 0, 40));
        let mut a = b.body(ip(1), None);
        assert!(a.grow(40).is_ok());
        assert_eq!(b.body(ip(1), Some(5)).grow(1), Err(Refused::PeerLimit));
        // Another peer is not affected.
        let mut other = b.body(ip(2), None);
        assert!(other.grow(40).is_ok());
        // A peer-less body (no socket address) has no cap.
        let mut anon = b.body(None, None);
        assert!(anon.grow(20).is_ok());
        drop(a);
        let mut again = b.body(ip(1), None);
        assert!(again.grow(20).is_ok());
    }

    #[test]
    fn stalled_bodies_are_evicted_for_new_ones_largest_first() {
        let mut c = cfg(100, 0, 0);
        c.evict_after = EVICT;
        let b = Budget::new(c);
        let mut old_small = b.body(ip(1), None);
        assert!(old_small.grow(20).is_ok());
        let mut old_big = b.body(ip(2), None);
        assert!(old_big.grow(70).is_ok());
        // Young bodies are not evicted.
        assert_eq!(b.body(ip(3), None).grow(30), Err(Refused::Full));
        std::thread::sleep(EVICT + EVICT / 2);
        let mut young = b.body(ip(3), None);
        let big_ticket = old_big.ticket().unwrap();
        assert!(young.grow(30).is_ok());
        assert!(
            big_ticket.is_evicted(),
            "the largest stalled body made room"
        );
        assert!(!old_small.ticket().unwrap().is_evicted());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(100), big_ticket.evicted()).await
        })
        .expect("the evicted reader is woken");
        assert_eq!(b.used(), 50);
        assert_eq!(old_big.grow(1), Err(Refused::Evicted));
        drop(old_big);
        assert_eq!(
            b.used(),
            50,
            "an evicted body's bytes are not given back twice"
        );
        // A body that has arrived whole is no longer evictable.
        young.finished();
        std::thread::sleep(EVICT + EVICT / 2);
        // Peer 4 (in good standing) may take the room of peer 1's stalled body.
        let mut next = b.body(ip(4), None);
        assert!(next.grow(70).is_ok(), "the old small one made room");
        assert!(old_small.ticket().unwrap().is_evicted());
        assert!(!young.ticket().is_some_and(|t| t.is_evicted()));
        assert_eq!(b.body(ip(5), None).grow(1), Err(Refused::Full));
        assert_eq!(b.evictions(), 2);
    }

    #[test]
    fn a_peer_holding_stalled_bodies_or_lately_evicted_cannot_evict_others() {
        let mut c = cfg(100, 0, 0);
        c.evict_after = EVICT;
        let b = Budget::new(c);
        let mut a1 = b.body(ip(1), None);
        assert!(a1.grow(40).is_ok());
        let mut a2 = b.body(ip(2), None);
        assert!(a2.grow(40).is_ok());
        std::thread::sleep(EVICT + EVICT / 2);
        // Peer 2 holds a stalled body: it takes the room of its own, not of peer 1's (which
        // holds as much).
        let mut own = b.body(ip(2), None);
        assert!(own.grow(30).is_ok(), "its own stalled body made room");
        assert!(a2.ticket().unwrap().is_evicted());
        assert!(!a1.ticket().unwrap().is_evicted());
        drop(own);
        // Peer 2 had a body evicted: for PENALTY it may not evict others either.
        assert_eq!(b.body(ip(2), None).grow(70), Err(Refused::Full));
        assert!(!a1.ticket().unwrap().is_evicted());
        // Peer 3, in good standing, may.
        let mut c3 = b.body(ip(3), None);
        assert!(c3.grow(70).is_ok());
        assert!(a1.ticket().unwrap().is_evicted());
    }

    #[test]
    fn a_peer_in_good_standing_evicts_even_young_bodies_of_a_penalized_peer() {
        let mut c = cfg(100, 0, 0);
        c.evict_after = EVICT;
        let b = Budget::new(c);
        let mut held = b.body(ip(1), None);
        assert!(held.grow(40).is_ok());
        let mut young = b.body(ip(1), None);
        assert!(young.grow(40).is_ok());
        // Peer 1 asks for more while its two bodies are in progress: refused, penalized.
        assert_eq!(b.body(ip(1), None).grow(30), Err(Refused::Full));
        // Peer 2 takes the room of one of peer 1's young bodies (one is enough).
        let mut mine = b.body(ip(2), None);
        assert!(mine.grow(50).is_ok());
        let evicted = [&held, &young]
            .iter()
            .filter(|r| r.ticket().unwrap().is_evicted())
            .count();
        assert_eq!(evicted, 1);
        // A peer in good standing that is refused alone stays in good standing.
        let mut other = b.body(ip(3), None);
        assert_eq!(other.grow(60), Err(Refused::Full));
        assert!(!b.lock().penalized.contains_key(&ip(3).unwrap()));
    }

    #[test]
    fn a_penalized_peer_is_refused_before_its_body_is_read_when_it_would_not_fit() {
        let b = Budget::new(cfg(100, 20, 0));
        let mut held = b.body(ip(1), Some(1000));
        assert!(held.grow(40).is_ok());
        let mut other = b.body(ip(1), Some(1000));
        assert!(other.grow(30).is_ok());
        // In good standing: read (and refused or not as it arrives).
        assert_eq!(b.refuse_at_once(ip(1), Some(50)), None);
        assert_eq!(b.body(ip(1), Some(1000)).grow(20), Err(Refused::Full));
        // Now penalized: a large body that cannot fit is refused at once (without a length,
        // it counts as just over small); a small one is read; another peer is not affected.
        assert_eq!(b.refuse_at_once(ip(1), Some(50)), Some(Refused::Full));
        assert_eq!(b.refuse_at_once(ip(1), None), Some(Refused::Full));
        assert_eq!(b.refuse_at_once(ip(1), Some(10)), None);
        assert_eq!(b.refuse_at_once(ip(2), Some(50)), None);
    }

    #[test]
    fn a_body_that_keeps_arriving_fast_is_not_stalled() {
        let t = Ticket::new();
        let later = |d: Duration| t.started + d;
        // Young: never stalled.
        assert!(!t.stalled(later(Duration::from_millis(900)), Duration::from_secs(1)));
        // 1 MiB, the last bytes at 900 ms: not stalled at 1.1 s, stalled from 1.4 s.
        t.received(1024 * 1024);
        t.last_ms.store(900, Ordering::Relaxed);
        let evict_after = Duration::from_secs(1);
        assert!(!t.stalled(later(Duration::from_millis(1100)), evict_after));
        assert!(t.stalled(later(Duration::from_millis(1400)), evict_after));
        // Arriving all along, but slower than MIN_RATE: stalled.
        let slow = Ticket::new();
        slow.received(100 * 1024);
        slow.last_ms.store(1900, Ordering::Relaxed);
        assert!(slow.stalled(
            slow.started + Duration::from_secs(2),
            Duration::from_secs(1)
        ));
        // Arriving all along at 1 MiB/s: not stalled.
        let fast = Ticket::new();
        fast.received(2 * 1024 * 1024);
        fast.last_ms.store(1950, Ordering::Relaxed);
        assert!(!fast.stalled(
            fast.started + Duration::from_secs(2),
            Duration::from_secs(1)
        ));
    }

    #[test]
    fn a_peer_over_its_cap_evicts_its_own_stalled_bodies_only() {
        let mut c = cfg(100, 0, 50);
        c.evict_after = EVICT;
        let b = Budget::new(c);
        let mut other = b.body(ip(2), None);
        assert!(other.grow(40).is_ok());
        let mut mine = b.body(ip(1), None);
        assert!(mine.grow(50).is_ok());
        std::thread::sleep(EVICT + EVICT / 2);
        let mut fresh = b.body(ip(1), None);
        assert!(fresh.grow(10).is_ok());
        assert!(mine.ticket().unwrap().is_evicted());
        assert!(!other.ticket().unwrap().is_evicted());
    }

    #[test]
    fn small_bodies_evict_large_ones_when_the_reserve_is_used_up() {
        let mut c = cfg(100, 20, 0);
        c.evict_after = EVICT;
        let b = Budget::new(c);
        let mut large = b.body(ip(1), None);
        assert!(large.grow(80).is_ok());
        let mut small1 = b.body(ip(2), Some(10));
        assert!(small1.grow(10).is_ok());
        let mut small2 = b.body(ip(2), Some(10));
        assert!(small2.grow(10).is_ok());
        std::thread::sleep(EVICT + EVICT / 2);
        let mut small3 = b.body(ip(3), Some(10));
        assert!(small3.grow(10).is_ok());
        assert!(large.ticket().unwrap().is_evicted());
    }
}
