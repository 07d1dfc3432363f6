//! Which IP addresses an outbound fetch may connect to: none of the special-use blocks of
//! RFC 6890 and the IANA special-purpose registries (loopback only when the fetcher allows
//! it), looking through the IPv6 forms that embed an IPv4 address (mapped, NAT64 RFC 6052,
//! 6to4 RFC 3056), and, for IPv6, nothing outside global unicast (2000::/3).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not fetched from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpecialUse {
    /// 127.0.0.0/8, ::1 (allowed only with `allow_loopback`).
    Loopback,
    /// Any other special-use block; the text names it.
    Other(&'static str),
}

impl SpecialUse {
    pub fn describe(self) -> &'static str {
        match self {
            SpecialUse::Loopback => "loopback",
            SpecialUse::Other(name) => name,
        }
    }
}

/// The reason `ip` may not be connected to, if any. Loopback passes when `allow_loopback`.
pub fn refusal(ip: IpAddr, allow_loopback: bool) -> Option<SpecialUse> {
    match special_use(ip) {
        Some(SpecialUse::Loopback) if allow_loopback => None,
        other => other,
    }
}

/// The special-use block `ip` falls in, or `None` for an ordinary public address.
pub fn special_use(ip: IpAddr) -> Option<SpecialUse> {
    match ip {
        IpAddr::V4(v4) => special_use_v4(v4),
        IpAddr::V6(v6) => special_use_v6(v6),
    }
}

/// `(network, prefix length, name)` of the IPv4 blocks refused (RFC 6890 §2.2.2 and the
/// IANA IPv4 Special-Purpose Address Registry), loopback aside.
const V4_BLOCKS: [(u32, u32, &str); 15] = [
    (0x0000_0000, 8, "\"this network\" (0.0.0.0/8)"),
    (0x0A00_0000, 8, "private-use (10.0.0.0/8)"),
    (
        0x6440_0000,
        10,
        "shared address space, carrier-grade NAT (100.64.0.0/10)",
    ),
    (0xA9FE_0000, 16, "link-local (169.254.0.0/16)"),
    (0xAC10_0000, 12, "private-use (172.16.0.0/12)"),
    (0xC000_0000, 24, "IETF protocol assignments (192.0.0.0/24)"),
    (0xC000_0200, 24, "documentation (192.0.2.0/24)"),
    (0xC058_6300, 24, "6to4 relay anycast (192.88.99.0/24)"),
    (0xC0A8_0000, 16, "private-use (192.168.0.0/16)"),
    (0xC612_0000, 15, "benchmarking (198.18.0.0/15)"),
    (0xC633_6400, 24, "documentation (198.51.100.0/24)"),
    (0xCB00_7100, 24, "documentation (203.0.113.0/24)"),
    (0xE000_0000, 4, "multicast (224.0.0.0/4)"),
    (0xFFFF_FFFF, 32, "limited broadcast (255.255.255.255)"),
    (0xF000_0000, 4, "reserved (240.0.0.0/4)"),
];

fn special_use_v4(ip: Ipv4Addr) -> Option<SpecialUse> {
    let bits = u32::from(ip);
    if bits >> 24 == 127 {
        return Some(SpecialUse::Loopback);
    }
    V4_BLOCKS
        .iter()
        .find(|(network, length, _)| bits >> (32 - length) == network >> (32 - length))
        .map(|(_, _, name)| SpecialUse::Other(name))
}

fn special_use_v6(ip: Ipv6Addr) -> Option<SpecialUse> {
    let bits = u128::from(ip);
    let within = |network: u128, length: u32| bits >> (128 - length) == network >> (128 - length);
    let embedded_v4 = || Ipv4Addr::from((bits & 0xFFFF_FFFF) as u32);
    if ip == Ipv6Addr::LOCALHOST {
        return Some(SpecialUse::Loopback);
    }
    if ip == Ipv6Addr::UNSPECIFIED {
        return Some(SpecialUse::Other("unspecified (::)"));
    }
    // ::ffff:a.b.c.d reaches a.b.c.d: it is what the IPv4 address is.
    if within(0xFFFF_0000_0000, 96) {
        return special_use_v4(embedded_v4());
    }
    // NAT64 (RFC 6052 well-known prefix): a translator forwards to the embedded address.
    if within(0x0064_FF9B << 96, 96) {
        return match special_use_v4(embedded_v4()) {
            Some(SpecialUse::Loopback) => {
                Some(SpecialUse::Other("NAT64 (64:ff9b::/96) of loopback"))
            }
            other => other,
        };
    }
    // 6to4 (RFC 3056): 2002:AABB:CCDD::/48 routes to AA.BB.CC.DD.
    if within(0x2002 << 112, 16) {
        let embedded = Ipv4Addr::from(((bits >> 80) & 0xFFFF_FFFF) as u32);
        return match special_use_v4(embedded) {
            Some(SpecialUse::Loopback) => Some(SpecialUse::Other("6to4 (2002::/16) of loopback")),
            other => other,
        };
    }
    const V6_BLOCKS: [(u128, u32, &str); 9] = [
        (0, 96, "IPv4-compatible, deprecated (::/96)"),
        (
            0x0064_FF9B_0001 << 80,
            48,
            "local-use NAT64 (64:ff9b:1::/48)",
        ),
        (0x0100 << 112, 64, "discard-only (100::/64)"),
        (
            0x2001 << 112,
            23,
            "IETF protocol assignments, Teredo included (2001::/23)",
        ),
        (0x2001_0DB8 << 96, 32, "documentation (2001:db8::/32)"),
        (0x3FFF << 112, 20, "documentation (3fff::/20)"),
        (0xFC00 << 112, 7, "unique local (fc00::/7)"),
        (0xFE80 << 112, 10, "link-local (fe80::/10)"),
        (0xFF00 << 112, 8, "multicast (ff00::/8)"),
    ];
    if let Some((_, _, name)) = V6_BLOCKS
        .iter()
        .find(|(network, length, _)| within(*network, *length))
    {
        return Some(SpecialUse::Other(name));
    }
    // Everything outside global unicast (site-local fec0::/10 and the unassigned rest).
    if !within(0x2000 << 112, 3) {
        return Some(SpecialUse::Other("not global unicast (outside 2000::/3)"));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(text: &str) -> bool {
        let ip: IpAddr = text.parse().expect("address");
        special_use(ip).is_some()
    }

    #[test]
    fn special_use_ipv4_blocks_are_refused() {
        for text in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused(text), "{text} should be refused");
        }
        for text in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.167.255.255",
            "198.17.255.255",
            "198.20.0.0",
            "93.184.216.34",
            "223.255.255.255",
        ] {
            assert!(!refused(text), "{text} is public");
        }
    }

    #[test]
    fn special_use_ipv6_blocks_and_embedded_ipv4_are_refused() {
        for text in [
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "::8.8.8.8",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "64:ff9b:1::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "2002:7f00:0001::1",
            "2002:a9fe:a9fe::1",
            "2002:c0a8:0101::1",
            "3fff::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "4000::1",
        ] {
            assert!(refused(text), "{text} should be refused");
        }
        for text in [
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::1",
        ] {
            assert!(!refused(text), "{text} is public");
        }
    }

    #[test]
    fn loopback_passes_only_when_allowed() {
        for text in ["127.0.0.1", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = text.parse().expect("address");
            assert_eq!(refusal(ip, false), Some(SpecialUse::Loopback), "{text}");
            assert_eq!(refusal(ip, true), None, "{text}");
        }
        let private: IpAddr = "10.0.0.1".parse().expect("address");
        assert!(refusal(private, true).is_some());
        let nat64_loopback: IpAddr = "64:ff9b::7f00:1".parse().expect("address");
        assert!(
            refusal(nat64_loopback, true).is_some(),
            "loopback through a translator is not this host's loopback"
        );
    }
}
