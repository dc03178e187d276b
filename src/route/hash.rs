//! The sticky hash: which bucket a sticky key falls in.
//!
//! The formula is part of the product contract (SPEC §3.2): every replica and every
//! release must put a key in the same bucket, so it is seed-free and pinned by test
//! vectors. Never change it.

/// Number of buckets; weights are in basis points, so a bucket is 0.01 %.
pub const BUCKETS: u16 = 10_000;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// The stable 64-bit hash of `cohort` and a sticky key.
///
/// ```text
/// sticky_hash(cohort, key) = fmix64(fnv1a64(utf8(cohort) ++ [0x00] ++ key))
///
/// fnv1a64(bytes):             standard 64-bit FNV-1a
///     h = 0xcbf29ce484222325
///     for b in bytes: h = (h XOR b) * 0x100000001b3   (wrapping, mod 2^64)
///
/// fmix64(k):                  MurmurHash3's 64-bit finaliser
///     k ^= k >> 33; k *= 0xff51afd7ed558ccd   (wrapping)
///     k ^= k >> 33; k *= 0xc4ceb93e97ab4125   (wrapping)
///     k ^= k >> 33
/// ```
///
/// The `0x00` separator keeps `("a", "bc")` and `("ab", "c")` apart (a cohort is
/// UTF-8 text, which never contains NUL in a config file). The finaliser spreads
/// FNV's weak low bits, which matters because the bucket is the hash mod 10000.
pub fn sticky_hash(cohort: &str, key: &[u8]) -> u64 {
    let h = fnv1a64(FNV_OFFSET, cohort.as_bytes());
    let h = fnv1a64(h, &[0x00]);
    fmix64(fnv1a64(h, key))
}

/// `sticky_hash(cohort, key) % 10000`: the key's bucket in `0..10000`.
pub fn sticky_bucket(cohort: &str, key: &[u8]) -> u16 {
    // The remainder is below 10000, so it fits in a u16.
    (sticky_hash(cohort, key) % u64::from(BUCKETS)) as u16
}

/// FNV-1a over `bytes`, continuing from state `h` (start with [`FNV_OFFSET`]).
fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

/// MurmurHash3's 64-bit finaliser (`fmix64`).
fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b93e_97ab_4125);
    k ^= k >> 33;
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    /// NEVER CHANGE THESE. They were computed once by an independent Python
    /// implementation of the formula documented on [`sticky_hash`]. If this test
    /// fails, the change would move users between legacy and new on deploy and make
    /// replicas of different releases disagree: fix the code, not the vectors.
    #[test]
    fn pinned_vectors_never_change() {
        let vectors: &[(&str, &[u8], u64, u16)] = &[
            ("", b"", 0xd628_32f5_0d50_2044, 5812),
            ("auth", b"", 0x1f1d_4591_2688_4fb3, 7011),
            ("auth", b"user-1", 0x102b_ee5c_e374_cb8d, 9421),
            ("auth", b"user-2", 0x7358_e956_dbfd_015d, 893),
            ("checkout", b"user-1", 0xecf9_ac2f_d4a4_a5f0, 6800),
            ("auth", b"192.0.2.7", 0xb6eb_8e27_6750_10a6, 7638),
            ("auth", b"2001:db8::1", 0xd645_4041_7c53_382d, 4125),
            (
                "caf\u{e9}",
                "\u{fc}ser-\u{65e5}\u{672c}".as_bytes(),
                0xd664_8bd9_7933_0bf5,
                6533,
            ),
            ("auth", b"\x00\xff", 0xdb40_c133_d1b2_0238, 6952),
            ("a", b"bc", 0x5847_a202_3e82_77b8, 6968),
            ("ab", b"c", 0x3257_9071_3a68_5cfa, 6138),
        ];
        for &(cohort, key, hash, bucket) in vectors {
            assert_eq!(
                sticky_hash(cohort, key),
                hash,
                "hash of ({cohort:?}, {key:?})"
            );
            assert_eq!(
                sticky_bucket(cohort, key),
                bucket,
                "bucket of ({cohort:?}, {key:?})"
            );
        }
    }

    #[test]
    fn fnv1a64_is_the_standard_one() {
        assert_eq!(fnv1a64(FNV_OFFSET, b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(FNV_OFFSET, b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn separator_keeps_cohort_and_key_apart() {
        assert_ne!(sticky_hash("a", b"bc"), sticky_hash("ab", b"c"));
    }

    #[test]
    fn sequential_keys_spread_uniformly_over_deciles() {
        let mut deciles = [0u32; 10];
        for i in 0..100_000u32 {
            let b = sticky_bucket("auth", i.to_string().as_bytes());
            deciles[usize::from(b / 1000)] += 1;
        }
        for (d, &n) in deciles.iter().enumerate() {
            assert!(
                (9_500..=10_500).contains(&n),
                "decile {d} has {n} of 100000 keys"
            );
        }
    }
}
