//! Sorted range tables with binary search: the O(log n) core of every IP lookup.
//!
//! Addresses are plain integers (`u32` for IPv4, `u128` for IPv6); a range is inclusive at both
//! ends. Sets merge overlapping and adjacent ranges; maps refuse overlaps (two rows claiming the
//! same address would make the answer depend on file order).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// An integer key an address maps to.
pub trait Key: Copy + Ord + std::fmt::Debug {
    /// `self + 1` without overflow (`None` at the top of the space).
    fn next(self) -> Option<Self>;
}

impl Key for u32 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

impl Key for u128 {
    fn next(self) -> Option<Self> {
        self.checked_add(1)
    }
}

/// A set of inclusive ranges, merged, with O(log n) membership.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet<K> {
    starts: Vec<K>,
    ends: Vec<K>,
}

impl<K: Key> Default for RangeSet<K> {
    fn default() -> Self {
        Self {
            starts: Vec::new(),
            ends: Vec::new(),
        }
    }
}

impl<K: Key> RangeSet<K> {
    /// Builds the set from ranges in any order; overlapping and adjacent ranges are merged.
    /// Ranges with `start > end` are ignored (callers validate before).
    pub fn from_ranges(mut ranges: Vec<(K, K)>) -> Self {
        ranges.retain(|(s, e)| s <= e);
        ranges.sort_unstable();
        let mut starts: Vec<K> = Vec::with_capacity(ranges.len());
        let mut ends: Vec<K> = Vec::with_capacity(ranges.len());
        for (s, e) in ranges {
            if let Some(last_end) = ends.last_mut() {
                // Merge when the new range starts inside or right after the last one.
                let touches = match last_end.next() {
                    Some(n) => s <= n,
                    None => true,
                };
                if touches {
                    if e > *last_end {
                        *last_end = e;
                    }
                    continue;
                }
            }
            starts.push(s);
            ends.push(e);
        }
        starts.shrink_to_fit();
        ends.shrink_to_fit();
        Self { starts, ends }
    }

    /// Whether `k` is in one of the ranges (binary search).
    pub fn contains(&self, k: K) -> bool {
        let i = self.starts.partition_point(|s| *s <= k);
        i > 0 && self.ends.get(i - 1).is_some_and(|e| k <= *e)
    }

    /// Number of merged ranges.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// The merged ranges, in order.
    pub fn ranges(&self) -> impl Iterator<Item = (K, K)> + '_ {
        self.starts.iter().copied().zip(self.ends.iter().copied())
    }
}

/// Two entries of a [`RangeMap`] that claim the same addresses (indices into the input).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlap {
    pub first: usize,
    pub second: usize,
}

/// Non-overlapping inclusive ranges, each with a value, with O(log n) lookup.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeMap<K, V> {
    starts: Vec<K>,
    ends: Vec<K>,
    values: Vec<V>,
}

impl<K: Key, V> Default for RangeMap<K, V> {
    fn default() -> Self {
        Self {
            starts: Vec::new(),
            ends: Vec::new(),
            values: Vec::new(),
        }
    }
}

impl<K: Key, V> RangeMap<K, V> {
    /// Builds the map from `(start, end, value)` in any order. Overlapping entries are refused,
    /// naming both by their index in `entries`.
    pub fn from_entries(entries: Vec<(K, K, V)>) -> Result<Self, Overlap> {
        let mut indexed: Vec<(usize, (K, K, V))> = entries.into_iter().enumerate().collect();
        indexed.sort_unstable_by_key(|a| (a.1.0, a.1.1));
        let mut starts = Vec::with_capacity(indexed.len());
        let mut ends: Vec<K> = Vec::with_capacity(indexed.len());
        let mut values = Vec::with_capacity(indexed.len());
        let mut last_index = 0usize;
        for (idx, (s, e, v)) in indexed {
            if let Some(last_end) = ends.last()
                && s <= *last_end
            {
                let (first, second) = if last_index < idx {
                    (last_index, idx)
                } else {
                    (idx, last_index)
                };
                return Err(Overlap { first, second });
            }
            starts.push(s);
            ends.push(e);
            values.push(v);
            last_index = idx;
        }
        Ok(Self {
            starts,
            ends,
            values,
        })
    }

    /// The value of the range containing `k` (binary search).
    pub fn get(&self, k: K) -> Option<&V> {
        let i = self.starts.partition_point(|s| *s <= k);
        if i == 0 {
            return None;
        }
        match self.ends.get(i - 1) {
            Some(e) if k <= *e => self.values.get(i - 1),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.starts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }
}

/// An address as its integer, IPv4-mapped IPv6 (`::ffff:a.b.c.d`) folded to IPv4 so a proxy
/// that hands us mapped addresses still hits the IPv4 tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpKey {
    V4(u32),
    V6(u128),
}

impl From<IpAddr> for IpKey {
    fn from(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => IpKey::V6(u128::from(v6)),
        }
    }
}

/// An inclusive IP range of one family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRange {
    V4(u32, u32),
    V6(u128, u128),
}

impl IpRange {
    /// The range `start..=end`; `None` when the families differ or `start > end`.
    pub fn new(start: IpAddr, end: IpAddr) -> Option<IpRange> {
        match (start, end) {
            (IpAddr::V4(s), IpAddr::V4(e)) => {
                let (s, e) = (u32::from(s), u32::from(e));
                (s <= e).then_some(IpRange::V4(s, e))
            }
            (IpAddr::V6(s), IpAddr::V6(e)) => {
                let (s, e) = (u128::from(s), u128::from(e));
                (s <= e).then_some(IpRange::V6(s, e))
            }
            _ => None,
        }
    }

    /// The addresses of a CIDR network (`192.0.2.0/24` → `192.0.2.0..=192.0.2.255`).
    pub fn from_net(net: IpNet) -> IpRange {
        match net {
            IpNet::V4(n) => IpRange::V4(u32::from(n.network()), u32::from(n.broadcast())),
            IpNet::V6(n) => IpRange::V6(u128::from(n.network()), u128::from(n.broadcast())),
        }
    }

    /// A single address.
    pub fn single(ip: IpAddr) -> IpRange {
        match IpKey::from(ip) {
            IpKey::V4(k) => IpRange::V4(k, k),
            IpKey::V6(k) => IpRange::V6(k, k),
        }
    }
}

/// A set of IPv4 and IPv6 ranges (a CIDR list), O(log n) membership for both families.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpRangeSet {
    v4: RangeSet<u32>,
    v6: RangeSet<u128>,
}

impl IpRangeSet {
    pub fn from_ranges(ranges: impl IntoIterator<Item = IpRange>) -> Self {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for r in ranges {
            match r {
                IpRange::V4(s, e) => v4.push((s, e)),
                IpRange::V6(s, e) => v6.push((s, e)),
            }
        }
        Self {
            v4: RangeSet::from_ranges(v4),
            v6: RangeSet::from_ranges(v6),
        }
    }

    pub fn from_nets(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self::from_ranges(nets.into_iter().map(IpRange::from_net))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match IpKey::from(ip) {
            IpKey::V4(k) => self.v4.contains(k),
            IpKey::V6(k) => self.v6.contains(k),
        }
    }

    /// Number of merged ranges (both families).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// A map from IPv4 and IPv6 ranges to values, O(log n) lookup for both families.
#[derive(Debug, Clone, PartialEq)]
pub struct IpRangeMap<V> {
    v4: RangeMap<u32, V>,
    v6: RangeMap<u128, V>,
}

impl<V> Default for IpRangeMap<V> {
    fn default() -> Self {
        Self {
            v4: RangeMap::default(),
            v6: RangeMap::default(),
        }
    }
}

impl<V> IpRangeMap<V> {
    /// Builds the map; overlapping entries are refused with their indices in `entries`.
    pub fn from_entries(entries: Vec<(IpRange, V)>) -> Result<Self, Overlap> {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        let mut v4_idx = Vec::new();
        let mut v6_idx = Vec::new();
        for (i, (r, v)) in entries.into_iter().enumerate() {
            match r {
                IpRange::V4(s, e) => {
                    v4.push((s, e, v));
                    v4_idx.push(i);
                }
                IpRange::V6(s, e) => {
                    v6.push((s, e, v));
                    v6_idx.push(i);
                }
            }
        }
        let remap = |o: Overlap, idx: &[usize]| Overlap {
            first: idx.get(o.first).copied().unwrap_or(o.first),
            second: idx.get(o.second).copied().unwrap_or(o.second),
        };
        Ok(Self {
            v4: RangeMap::from_entries(v4).map_err(|o| remap(o, &v4_idx))?,
            v6: RangeMap::from_entries(v6).map_err(|o| remap(o, &v6_idx))?,
        })
    }

    pub fn get(&self, ip: IpAddr) -> Option<&V> {
        match IpKey::from(ip) {
            IpKey::V4(k) => self.v4.get(k),
            IpKey::V6(k) => self.v6.get(k),
        }
    }

    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// `Ipv4Addr`/`Ipv6Addr` back from keys (for messages and tests).
pub fn v4(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(k)
}

pub fn v6(k: u128) -> Ipv6Addr {
    Ipv6Addr::from(k)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn set_merges_overlapping_and_adjacent() {
        let s = RangeSet::from_ranges(vec![(10u32, 20), (21, 25), (5, 12), (40, 50), (45, 46)]);
        assert_eq!(s.ranges().collect::<Vec<_>>(), vec![(5, 25), (40, 50)]);
        for (k, want) in [
            (4, false),
            (5, true),
            (25, true),
            (26, false),
            (39, false),
            (40, true),
            (50, true),
            (51, false),
        ] {
            assert_eq!(s.contains(k), want, "{k}");
        }
    }

    #[test]
    fn set_handles_top_of_space() {
        let s = RangeSet::from_ranges(vec![(u32::MAX - 1, u32::MAX), (0, 0)]);
        assert!(s.contains(u32::MAX));
        assert!(s.contains(0));
        assert!(!s.contains(1));
    }

    #[test]
    fn map_refuses_overlap_naming_inputs() {
        let err = RangeMap::from_entries(vec![(10u32, 20, 'a'), (30, 40, 'b'), (15, 16, 'c')]);
        assert_eq!(
            err.err(),
            Some(Overlap {
                first: 0,
                second: 2
            })
        );
        let ok = RangeMap::from_entries(vec![(30u32, 40, 'b'), (10, 20, 'a')]).unwrap();
        assert_eq!(ok.get(10), Some(&'a'));
        assert_eq!(ok.get(20), Some(&'a'));
        assert_eq!(ok.get(25), None);
        assert_eq!(ok.get(40), Some(&'b'));
        assert_eq!(ok.get(41), None);
        assert_eq!(ok.get(9), None);
    }

    #[test]
    fn ip_set_both_families_and_mapped_v4() {
        let set = IpRangeSet::from_nets([
            "192.0.2.0/24".parse::<IpNet>().unwrap(),
            "2001:db8::/32".parse().unwrap(),
        ]);
        assert!(set.contains("192.0.2.77".parse().unwrap()));
        assert!(set.contains("::ffff:192.0.2.77".parse().unwrap()));
        assert!(!set.contains("192.0.3.1".parse().unwrap()));
        assert!(set.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!set.contains("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn ip_map_overlap_indices_are_global() {
        let r = |s: &str, e: &str| IpRange::new(s.parse().unwrap(), e.parse().unwrap()).unwrap();
        let err = IpRangeMap::from_entries(vec![
            (r("2001:db8::", "2001:db8::ff"), 0),
            (r("192.0.2.0", "192.0.2.10"), 1),
            (r("192.0.2.5", "192.0.2.6"), 2),
        ]);
        assert_eq!(
            err.err(),
            Some(Overlap {
                first: 1,
                second: 2
            })
        );
        assert!(IpRange::new("192.0.2.9".parse().unwrap(), "192.0.2.1".parse().unwrap()).is_none());
        assert!(
            IpRange::new("192.0.2.1".parse().unwrap(), "2001:db8::".parse().unwrap()).is_none()
        );
    }

    proptest! {
        #[test]
        fn set_lookup_agrees_with_linear_scan(
            ranges in prop::collection::vec((0u32..5000, 0u32..200), 0..60),
            probes in prop::collection::vec(0u32..5300, 1..100),
        ) {
            let ranges: Vec<(u32, u32)> = ranges.into_iter().map(|(s, l)| (s, s + l)).collect();
            let set = RangeSet::from_ranges(ranges.clone());
            for p in probes {
                let linear = ranges.iter().any(|(s, e)| *s <= p && p <= *e);
                prop_assert_eq!(set.contains(p), linear, "probe {}", p);
            }
        }

        #[test]
        fn ip_set_from_cidrs_agrees_with_ipnet_contains(
            nets4 in prop::collection::vec((any::<u32>(), 8u8..=32), 0..40),
            nets6 in prop::collection::vec((any::<u128>(), 16u8..=128), 0..40),
            probes4 in prop::collection::vec(any::<u32>(), 1..60),
            probes6 in prop::collection::vec(any::<u128>(), 1..60),
        ) {
            let nets: Vec<IpNet> = nets4
                .iter()
                .map(|(a, l)| IpNet::V4(ipnet::Ipv4Net::new(v4(*a), *l).unwrap().trunc()))
                .chain(nets6.iter().map(|(a, l)| IpNet::V6(ipnet::Ipv6Net::new(v6(*a), *l).unwrap().trunc())))
                .collect();
            let set = IpRangeSet::from_nets(nets.clone());
            // Probe inside some of the networks too, not only at random.
            let inside = nets.iter().map(|n| n.network());
            let probes = probes4
                .iter()
                .map(|p| IpAddr::V4(v4(*p)))
                .chain(probes6.iter().map(|p| IpAddr::V6(v6(*p))))
                .chain(inside);
            for ip in probes {
                let linear = nets.iter().any(|n| n.contains(&ip));
                prop_assert_eq!(set.contains(ip), linear, "{}", ip);
            }
        }

        #[test]
        fn map_lookup_agrees_with_linear_scan(
            cuts in prop::collection::btree_set(0u128..1_000_000, 0..80),
            probes in prop::collection::vec(0u128..1_000_100, 1..100),
        ) {
            // Disjoint ranges from sorted cut points: [c0, c1-1], [c2, c3-1], ...
            let cuts: Vec<u128> = cuts.into_iter().collect();
            let entries: Vec<(u128, u128, usize)> = cuts
                .chunks_exact(2)
                .enumerate()
                .map(|(i, c)| (c[0], c[1] - 1, i))
                .collect();
            let map = RangeMap::from_entries(entries.clone()).unwrap();
            for p in probes {
                let linear = entries.iter().find(|(s, e, _)| *s <= p && p <= *e).map(|x| &x.2);
                prop_assert_eq!(map.get(p), linear);
            }
        }
    }
}
