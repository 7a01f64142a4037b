//! Making room in the budget: which bodies may be evicted for another, and when a penalized
//! peer's large body is refused before it is read (the module documentation of
//! [`super`] says why).

use std::net::IpAddr;
use std::sync::atomic::Ordering;

use tokio::time::Instant;

use super::{Budget, Class, PENALTY, Refused, State};

impl Budget {
    /// Whether a large body from `peer` declaring `declared` bytes is refused before it is
    /// read: only for a penalized peer, when the large bodies' share (or the peer's cap)
    /// has no room for it without evicting. Reading it only to refuse it halfway would cost
    /// the server the TLS decryption of what a client holding bodies open sends again and
    /// again.
    pub fn refuse_at_once(&self, peer: Option<IpAddr>, declared: Option<usize>) -> Option<Refused> {
        let p = peer?;
        let c = &self.config;
        let n = declared.unwrap_or(c.small_body + 1);
        if n <= c.small_body {
            return None;
        }
        let now = Instant::now();
        let mut st = self.lock();
        st.penalized
            .retain(|_, at| now.saturating_duration_since(*at) < PENALTY);
        // What its own stalled bodies hold: it may take their room.
        let (mut stalled, mut own_stalled, mut own_stalled_large) = (false, 0, 0);
        for r in st.reading.values() {
            if r.peer == peer && r.ticket.stalled(now, c.evict_after) {
                stalled = true;
                own_stalled += r.bytes;
                if r.class == Class::Large {
                    own_stalled_large += r.bytes;
                }
            }
        }
        if !stalled && !st.penalized.contains_key(&p) {
            return None;
        }
        let held = st.peers.get(&p).copied().unwrap_or(0);
        if c.per_peer > 0 && held - own_stalled + n > c.per_peer {
            return Some(Refused::PeerLimit);
        }
        if st.large - own_stalled_large + n > c.limit - c.small_reserve
            || st.used - own_stalled + n > c.limit
        {
            return Some(Refused::Full);
        }
        None
    }

    /// Evicts one body whose eviction helps and is allowed (module documentation): for a
    /// per-peer refusal a stalled one of `peer`'s own; a large one when the large share is
    /// what is full; the penalized peer holding the most first, its largest body first.
    /// False when there is none.
    pub(super) fn evict_one(
        &self,
        st: &mut State,
        me: u64,
        want: (Class, Option<IpAddr>, usize),
        why: Refused,
    ) -> bool {
        let (class, peer, n) = want;
        let now = Instant::now();
        let c = &self.config;
        let large_share_full = class == Class::Large && st.used + n <= c.limit;
        st.penalized
            .retain(|_, at| now.saturating_duration_since(*at) < PENALTY);
        // Peers with a stalled body, found once.
        let stalled_peers: std::collections::HashSet<IpAddr> = st
            .reading
            .values()
            .filter(|r| r.ticket.stalled(now, c.evict_after))
            .filter_map(|r| r.peer)
            .collect();
        let penalized = |p: Option<IpAddr>| {
            p.is_some_and(|p| stalled_peers.contains(&p) || st.penalized.contains_key(&p))
        };
        let good_standing = !penalized(peer);
        let held = |p: &Option<IpAddr>| p.and_then(|p| st.peers.get(&p).copied()).unwrap_or(0);
        let mut best: Option<((bool, usize, usize), u64)> = None;
        for (id, r) in &st.reading {
            let helps = match why {
                Refused::PeerLimit => r.peer == peer,
                _ if large_share_full => r.class == Class::Large,
                _ => true,
            };
            if *id == me || r.bytes == 0 || !helps {
                continue;
            }
            let stalled = r.ticket.stalled(now, c.evict_after);
            let bad = r.peer != peer && penalized(r.peer);
            let allowed = if r.peer == peer {
                stalled
            } else {
                good_standing && (stalled || bad)
            };
            let key = (bad, held(&r.peer), r.bytes);
            if allowed && best.is_none_or(|(k, _)| key > k) {
                best = Some((key, *id));
            }
        }
        let victim = best.map(|(_, id)| id);
        let Some(id) = victim else {
            return false;
        };
        let r = st.reading.remove(&id).expect("the victim is registered");
        Self::release(st, r.class, r.peer, r.bytes);
        st.evictions += 1;
        if let Some(p) = r.peer {
            st.penalized.insert(p, now);
        }
        r.ticket.evicted.store(true, Ordering::Release);
        r.ticket.notify.notify_one();
        true
    }
}
