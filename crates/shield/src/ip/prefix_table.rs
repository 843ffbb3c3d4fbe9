//! Longest-prefix match over IPv4 and IPv6 networks.
//!
//! One hash map per prefix length, and a bit set of the lengths in use: a lookup masks the
//! address to each length in use, longest first, and probes that length's map. Real lists use
//! a handful of lengths (/32, /24, /16 and a few more), so a lookup is a few hash probes
//! whatever the number of entries; 100,000 or 1,000,000 networks cost the same per lookup.
//! The crates of the field (prefix-trie, ip_network_table) walk a tree whose depth grows with
//! the prefix length; this layout does less work for the common case and keeps insertion and
//! removal O(1), which the admin API and feed refreshes need.

use std::net::IpAddr;

use ipnet::IpNet;
use rustc_hash::FxHashMap;

/// A map from networks to values with longest-prefix lookup.
#[derive(Debug, Clone)]
pub struct PrefixTable<V> {
    v4: Vec<FxHashMap<u32, V>>,
    v6: Vec<FxHashMap<u128, V>>,
    /// Bit `n` set: `v4[n]` is not empty.
    v4_lengths: u64,
    /// Bit `n` of the 129 possible lengths.
    v6_lengths: [u64; 3],
    len: usize,
}

impl<V> Default for PrefixTable<V> {
    fn default() -> Self {
        PrefixTable {
            v4: (0..=32).map(|_| FxHashMap::default()).collect(),
            v6: (0..=128).map(|_| FxHashMap::default()).collect(),
            v4_lengths: 0,
            v6_lengths: [0; 3],
            len: 0,
        }
    }
}

fn mask4(addr: u32, len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        addr & (u32::MAX << (32 - u32::from(len)))
    }
}

fn mask6(addr: u128, len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        addr & (u128::MAX << (128 - u32::from(len)))
    }
}

impl<V> PrefixTable<V> {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of networks held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts or replaces the value for `net` (host bits are ignored). Returns the old value.
    pub fn insert(&mut self, net: IpNet, value: V) -> Option<V> {
        let old = match net.trunc() {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                self.v4_lengths |= 1 << len;
                self.v4[usize::from(len)].insert(u32::from(n.network()), value)
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                self.v6_lengths[usize::from(len / 64)] |= 1 << (len % 64);
                self.v6[usize::from(len)].insert(u128::from(n.network()), value)
            }
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes exactly `net` (not the networks inside it). Returns its value.
    pub fn remove(&mut self, net: &IpNet) -> Option<V> {
        let old = match net.trunc() {
            IpNet::V4(n) => {
                let len = n.prefix_len();
                let map = &mut self.v4[usize::from(len)];
                let old = map.remove(&u32::from(n.network()));
                if map.is_empty() {
                    self.v4_lengths &= !(1 << len);
                }
                old
            }
            IpNet::V6(n) => {
                let len = n.prefix_len();
                let map = &mut self.v6[usize::from(len)];
                let old = map.remove(&u128::from(n.network()));
                if map.is_empty() {
                    self.v6_lengths[usize::from(len / 64)] &= !(1 << (len % 64));
                }
                old
            }
        };
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value stored for exactly `net`.
    pub fn get_exact(&self, net: &IpNet) -> Option<&V> {
        match net.trunc() {
            IpNet::V4(n) => self.v4[usize::from(n.prefix_len())].get(&u32::from(n.network())),
            IpNet::V6(n) => self.v6[usize::from(n.prefix_len())].get(&u128::from(n.network())),
        }
    }

    /// The most specific network holding `ip` for which `accept` is true, with its value.
    /// `accept` lets a caller skip entries (expired ones) and fall back to a shorter prefix.
    pub fn longest_match_where(
        &self,
        ip: IpAddr,
        mut accept: impl FnMut(&V) -> bool,
    ) -> Option<(IpNet, &V)> {
        // An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a dual-stack socket reports for
        // an IPv4 peer) is the IPv4 address it carries.
        match ip.to_canonical() {
            IpAddr::V4(addr) => {
                let bits = u32::from(addr);
                let mut lengths = self.v4_lengths;
                while lengths != 0 {
                    let len = 63 - lengths.leading_zeros() as u8;
                    lengths &= !(1u64 << len);
                    let key = mask4(bits, len);
                    if let Some(value) = self.v4[usize::from(len)].get(&key) {
                        if accept(value) {
                            let net = ipnet::Ipv4Net::new(key.into(), len).ok()?;
                            return Some((IpNet::V4(net), value));
                        }
                    }
                }
                None
            }
            IpAddr::V6(addr) => {
                let bits = u128::from(addr);
                for word in (0..3).rev() {
                    let mut lengths = self.v6_lengths[word];
                    while lengths != 0 {
                        let within = 63 - lengths.leading_zeros() as u8;
                        lengths &= !(1u64 << within);
                        let len = word as u8 * 64 + within;
                        let key = mask6(bits, len);
                        if let Some(value) = self.v6[usize::from(len)].get(&key) {
                            if accept(value) {
                                let net = ipnet::Ipv6Net::new(key.into(), len).ok()?;
                                return Some((IpNet::V6(net), value));
                            }
                        }
                    }
                }
                None
            }
        }
    }

    /// The most specific network holding `ip`.
    pub fn longest_match(&self, ip: IpAddr) -> Option<(IpNet, &V)> {
        self.longest_match_where(ip, |_| true)
    }

    /// Keeps only the entries for which `keep` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&IpNet, &mut V) -> bool) {
        let mut removed = 0;
        for (len, map) in self.v4.iter_mut().enumerate() {
            let before = map.len();
            map.retain(|k, v| match ipnet::Ipv4Net::new((*k).into(), len as u8) {
                Ok(net) => keep(&IpNet::V4(net), v),
                Err(_) => false,
            });
            removed += before - map.len();
            if map.is_empty() {
                self.v4_lengths &= !(1 << len);
            }
        }
        for (len, map) in self.v6.iter_mut().enumerate() {
            let before = map.len();
            map.retain(|k, v| match ipnet::Ipv6Net::new((*k).into(), len as u8) {
                Ok(net) => keep(&IpNet::V6(net), v),
                Err(_) => false,
            });
            removed += before - map.len();
            if map.is_empty() {
                self.v6_lengths[len / 64] &= !(1 << (len % 64));
            }
        }
        self.len -= removed;
    }

    /// Every network and its value, IPv4 first, shortest prefixes first.
    pub fn iter(&self) -> impl Iterator<Item = (IpNet, &V)> {
        let v4 = self.v4.iter().enumerate().flat_map(|(len, map)| {
            map.iter().filter_map(move |(k, v)| {
                ipnet::Ipv4Net::new((*k).into(), len as u8)
                    .ok()
                    .map(|n| (IpNet::V4(n), v))
            })
        });
        let v6 = self.v6.iter().enumerate().flat_map(|(len, map)| {
            map.iter().filter_map(move |(k, v)| {
                ipnet::Ipv6Net::new((*k).into(), len as u8)
                    .ok()
                    .map(|n| (IpNet::V6(n), v))
            })
        });
        v4.chain(v6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().expect("network")
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn longest_prefix_wins() {
        let mut t = PrefixTable::new();
        t.insert(net("10.0.0.0/8"), "eight");
        t.insert(net("10.1.0.0/16"), "sixteen");
        t.insert(net("10.1.2.3/32"), "host");
        assert_eq!(
            t.longest_match(ip("10.1.2.3")).map(|(_, v)| *v),
            Some("host")
        );
        assert_eq!(
            t.longest_match(ip("10.1.9.9")).map(|(_, v)| *v),
            Some("sixteen")
        );
        let (n, v) = t.longest_match(ip("10.200.0.1")).expect("match");
        assert_eq!((n, *v), (net("10.0.0.0/8"), "eight"));
        assert!(t.longest_match(ip("11.0.0.1")).is_none());
    }

    #[test]
    fn ipv6_and_mapped_ipv4() {
        let mut t = PrefixTable::new();
        t.insert(net("2001:db8::/32"), 1);
        t.insert(net("2001:db8:1::/48"), 2);
        t.insert(net("::/0"), 0);
        t.insert(net("192.0.2.0/24"), 4);
        assert_eq!(
            t.longest_match(ip("2001:db8:1::5")).map(|(_, v)| *v),
            Some(2)
        );
        assert_eq!(
            t.longest_match(ip("2001:db8:2::5")).map(|(_, v)| *v),
            Some(1)
        );
        assert_eq!(
            t.longest_match(ip("2001:dead::1")).map(|(_, v)| *v),
            Some(0)
        );
        assert_eq!(
            t.longest_match(ip("::ffff:192.0.2.7")).map(|(_, v)| *v),
            Some(4)
        );
    }

    #[test]
    fn host_bits_are_ignored_and_remove_is_exact() {
        let mut t = PrefixTable::new();
        t.insert(net("10.1.2.3/8"), ());
        assert_eq!(t.len(), 1);
        assert!(t.get_exact(&net("10.0.0.0/8")).is_some());
        assert!(t.remove(&net("10.0.0.0/16")).is_none());
        assert!(t.remove(&net("10.0.0.0/8")).is_some());
        assert!(t.is_empty());
        assert!(t.longest_match(ip("10.0.0.1")).is_none());
    }

    #[test]
    fn rejected_entries_fall_back_to_shorter_prefixes() {
        let mut t = PrefixTable::new();
        t.insert(net("10.0.0.0/8"), true);
        t.insert(net("10.0.0.0/24"), false);
        let (n, _) = t
            .longest_match_where(ip("10.0.0.1"), |v| *v)
            .expect("match");
        assert_eq!(n, net("10.0.0.0/8"));
    }

    #[test]
    fn retain_keeps_the_counts_right() {
        let mut t = PrefixTable::new();
        for i in 0..100u32 {
            t.insert(
                IpNet::V4(ipnet::Ipv4Net::new((i << 8).into(), 24).expect("net")),
                i,
            );
        }
        t.insert(net("2001:db8::/64"), 1000);
        t.retain(|_, v| *v % 2 == 0);
        assert_eq!(t.len(), 51);
        assert_eq!(t.iter().count(), 51);
    }

    /// SplitMix64: a seeded generator, so the comparison below is the same on every run.
    fn splitmix(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn agrees_with_a_linear_scan_on_random_networks() {
        let mut state = 7;
        let mut table = PrefixTable::new();
        let mut all: Vec<(IpNet, usize)> = Vec::new();
        // Addresses share a few leading bits so that networks nest and overlap.
        for i in 0..3000 {
            let r = splitmix(&mut state);
            let net = if i % 3 == 0 {
                let addr = (0x2001_0db8_u128 << 96) | u128::from(splitmix(&mut state) >> 48) << 64;
                let len = (r % 129) as u8;
                IpNet::V6(ipnet::Ipv6Net::new(addr.into(), len).expect("len").trunc())
            } else {
                let addr = 0x0a00_0000 | (splitmix(&mut state) as u32 & 0x00ff_ffff);
                let len = (r % 33) as u8;
                IpNet::V4(ipnet::Ipv4Net::new(addr.into(), len).expect("len").trunc())
            };
            table.insert(net, i);
            all.retain(|(n, _)| *n != net);
            all.push((net, i));
            if i % 7 == 0 {
                // Remove one at random, as an operator or a feed refresh would.
                let victim = all[(splitmix(&mut state) % all.len() as u64) as usize].0;
                assert!(table.remove(&victim).is_some());
                all.retain(|(n, _)| *n != victim);
            }
        }
        assert_eq!(table.len(), all.len());
        for _ in 0..20_000 {
            let r = splitmix(&mut state);
            let ip: IpAddr = if r % 3 == 0 {
                let addr = (0x2001_0db8_u128 << 96) | u128::from(splitmix(&mut state)) << 16;
                IpAddr::V6(addr.into())
            } else {
                IpAddr::V4((0x0a00_0000 | (splitmix(&mut state) as u32 & 0x00ff_ffff)).into())
            };
            let expected = all
                .iter()
                .filter(|(n, _)| n.contains(&ip))
                .max_by_key(|(n, _)| n.prefix_len())
                .map(|(n, v)| (*n, *v));
            let got = table.longest_match(ip).map(|(n, v)| (n, *v));
            assert_eq!(got, expected, "lookup of {ip}");
        }
    }
}
