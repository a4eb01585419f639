//! FNV-1a, 64 bits: a tiny, fast, non-cryptographic hash, for spreading keys
//! over stripes (the API's L1 and its single flight) and telling files apart
//! by a few of their bytes (the collector's fingerprints). Not for anything
//! an attacker picks to collide.

const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
const PRIME: u64 = 0x0100_0000_01b3;

pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(OFFSET_BASIS, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Which of `stripes` stripes (locks, counters) `key` belongs to.
pub fn stripe_of(key: &str, stripes: usize) -> usize {
    let stripes = u64::try_from(stripes).unwrap_or(u64::MAX);
    // Below `stripes`, which came from a usize.
    usize::try_from(fnv1a(key.as_bytes()) % stripes).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_reference_vectors() {
        // From the FNV reference: the empty string and "a".
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn a_key_falls_in_the_stripe_its_hash_picks() {
        assert_eq!(stripe_of("a", 1024), 0xaf63_dc4c_8601_ec8c % 1024);
        assert_eq!(stripe_of("foobar", 64), 0x8594_4171_f739_67e8 % 64);
        assert_eq!(stripe_of("anything", 1), 0);
    }
}
