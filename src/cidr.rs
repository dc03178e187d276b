//! CIDR blocks (`10.0.0.0/8`, `fd00::/8`, or one address) for
//! `server.trusted_proxies`.

use std::fmt;
use std::net::IpAddr;

/// An address block: the addresses whose first `prefix` bits equal `net`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `"10.0.0.0/8"`, `"fd00::/8"`, or a bare address (a block of one).
    /// Bits set past the prefix are an error: `10.1.0.0/8` is a typo more
    /// often than not.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("\"{addr}\" is not an IP address"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("\"/{p}\" is not a prefix length from 0 to {max}"))?,
            None => max,
        };
        let cidr = Cidr { net, prefix };
        if !cidr.contains(net) || bits(net) & !mask(max, prefix) != 0 {
            return Err(format!(
                "\"{s}\" has bits set past its /{prefix} prefix; write the block's first address"
            ));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in the block. An IPv4-mapped IPv6 address (how a
    /// dual-stack listener sees an IPv4 peer) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        if ip.is_ipv4() != self.net.is_ipv4() {
            return false;
        }
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let mask = mask(max, self.prefix);
        bits(ip) & mask == bits(self.net) & mask
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// The address as a number, right-aligned in 128 bits.
fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The first `prefix` of `max` bits set, right-aligned in 128 bits.
fn mask(max: u8, prefix: u8) -> u128 {
    let all: u128 = if max == 128 {
        u128::MAX
    } else {
        (1u128 << max) - 1
    };
    if prefix == 0 {
        0
    } else {
        all & !((1u128 << (max - prefix)) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn blocks_contain_their_addresses() {
        let ten = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(ten.contains(ip("10.1.2.3")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")));
        assert!(!ten.contains(ip("11.0.0.1")));
        assert!(!ten.contains(ip("::1")));
        let one = Cidr::parse("192.168.1.7").unwrap();
        assert!(one.contains(ip("192.168.1.7")));
        assert!(!one.contains(ip("192.168.1.8")));
        let all = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let v6 = Cidr::parse("fd00::/8").unwrap();
        assert!(v6.contains(ip("fd12::1")));
        assert!(!v6.contains(ip("fe80::1")));
        assert!(Cidr::parse("::/0").unwrap().contains(ip("2001:db8::1")));
        assert_eq!(ten.to_string(), "10.0.0.0/8");
    }

    #[test]
    fn bad_blocks_say_why() {
        for bad in [
            "10.0.0.0/33",
            "10.1.0.0/8",
            "ten/8",
            "10.0.0.0/",
            "::/129",
            "",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
