//! The framing of binlog and snapshot files: `len: u32 BE | crc32: u32 BE | payload[len]`.
//!
//! The CRC (crc32, IEEE) covers the length and the payload, so a torn length is caught as well as torn data.
//! [`decode`] tells apart the three ways a file can end: cleanly, with an incomplete record (a torn write: more
//! bytes were promised than exist), and with a complete but corrupt record. Recovery cuts the first two off
//! the final record of the final file and refuses the third anywhere else.

/// Bytes before the payload.
pub const HEADER_LEN: usize = 8;

/// Largest payload a record may carry; a larger length is corruption, never an allocation.
pub const MAX_RECORD_LEN: usize = 64 << 20;

/// One framed record.
pub fn encode(payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() <= MAX_RECORD_LEN, "record of {} bytes exceeds the limit", payload.len());
    let len = u32::try_from(payload.len()).expect("checked above").to_be_bytes();
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

fn checksum(len: &[u8; 4], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(payload);
    h.finalize()
}

/// What the bytes at a position hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// A valid record and the number of bytes it took.
    Record { payload: &'a [u8], len: usize },
    /// Nothing left.
    End,
    /// Fewer bytes than the header or the header's length promise: a write cut short.
    Torn { available: usize },
    /// A complete record whose checksum does not match, or an impossible length.
    Corrupt { reason: String },
}

/// Decodes the record at the start of `buf`.
pub fn decode(buf: &[u8]) -> Decoded<'_> {
    if buf.is_empty() {
        return Decoded::End;
    }
    if buf.len() < HEADER_LEN {
        return Decoded::Torn { available: buf.len() };
    }
    let len_bytes: [u8; 4] = buf[0..4].try_into().expect("4 bytes");
    let crc = u32::from_be_bytes(buf[4..8].try_into().expect("4 bytes"));
    let len = u32::from_be_bytes(len_bytes) as usize;
    if len > MAX_RECORD_LEN {
        return Decoded::Corrupt { reason: format!("record length {len} exceeds the limit of {MAX_RECORD_LEN}") };
    }
    if buf.len() < HEADER_LEN + len {
        return Decoded::Torn { available: buf.len() };
    }
    let payload = &buf[HEADER_LEN..HEADER_LEN + len];
    if checksum(&len_bytes, payload) != crc {
        return Decoded::Corrupt { reason: "checksum mismatch".into() };
    }
    Decoded::Record { payload, len: HEADER_LEN + len }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trip_and_the_three_endings() {
        let mut buf = encode(b"hello");
        buf.extend(encode(b""));
        let Decoded::Record { payload, len } = decode(&buf) else { panic!() };
        assert_eq!((payload, len), (&b"hello"[..], 13));
        assert_eq!(decode(&buf[13..]), Decoded::Record { payload: b"", len: 8 });
        assert_eq!(decode(&buf[21..]), Decoded::End);
        assert_eq!(decode(&buf[..5]), Decoded::Torn { available: 5 });
        assert_eq!(decode(&buf[..12]), Decoded::Torn { available: 12 });
        let mut bad = buf.clone();
        bad[9] ^= 1;
        assert!(matches!(decode(&bad), Decoded::Corrupt { .. }));
        assert!(matches!(decode(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]), Decoded::Corrupt { .. }));
    }

    proptest! {
        #[test]
        fn any_payloads_round_trip(payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..20)) {
            let buf: Vec<u8> = payloads.iter().flat_map(|p| encode(p)).collect();
            let mut at = 0;
            for p in &payloads {
                match decode(&buf[at..]) {
                    Decoded::Record { payload, len } => { prop_assert_eq!(payload, &p[..]); at += len; }
                    other => prop_assert!(false, "unexpected {:?}", other),
                }
            }
            prop_assert_eq!(decode(&buf[at..]), Decoded::End);
        }

        #[test]
        fn any_single_bit_flip_is_detected(payload in proptest::collection::vec(any::<u8>(), 1..200), bit in 0usize..10_000) {
            let mut buf = encode(&payload);
            let bit = bit % (buf.len() * 8);
            buf[bit / 8] ^= 1 << (bit % 8);
            let intact = matches!(decode(&buf), Decoded::Record { payload: p, .. } if p == &payload[..]);
            prop_assert!(!intact, "a flipped bit went unnoticed");
        }
    }
}
