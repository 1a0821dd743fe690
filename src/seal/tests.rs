use super::*;

const CHUNK: u32 = 64;

fn key(b: u8) -> MasterKey {
    MasterKey::from_bytes([b; 32])
}

fn sealed(data: &[u8], chunk: u32) -> (Vec<u8>, Summary) {
    let mut out = Vec::new();
    let s = seal(data, &mut out, &key(7), chunk).unwrap();
    (out, s)
}

#[test]
fn round_trips_are_exact_at_every_size_around_a_chunk() {
    for len in [0usize, 1, 63, 64, 65, 128, 129, 1000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let (stored, s) = sealed(&data, CHUNK);
        assert_eq!(s.stored_len as usize, stored.len());
        assert_eq!(s.plaintext_sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(s.stored_sha256, hex::encode(Sha256::digest(&stored)));
        let mut back = Vec::new();
        let o = open(stored.as_slice(), &mut back, &key(7)).unwrap();
        assert_eq!(back, data, "size {len}");
        assert_eq!(
            (o.plaintext_sha256, o.stored_sha256, o.chunks),
            (s.plaintext_sha256, s.stored_sha256, s.chunks)
        );
    }
}

#[test]
fn a_wrong_key_is_a_key_id_mismatch_before_any_data() {
    let (stored, _) = sealed(b"secret rows", CHUNK);
    let err = open(&stored[..HEADER_LEN], Vec::new(), &key(8)).unwrap_err();
    match err {
        SealError::KeyMismatch { sealed, given } => {
            assert_eq!(sealed, key(7).id());
            assert_eq!(given, key(8).id());
        }
        other => panic!("{other}"),
    }
    assert_eq!(key_id(stored.as_slice()).unwrap(), key(7).id());
}

#[test]
fn every_single_bit_flip_is_detected() {
    let data = vec![0x5au8; 200];
    let (stored, _) = sealed(&data, CHUNK);
    for byte in 0..stored.len() {
        for bit in 0..8 {
            let mut bad = stored.clone();
            bad[byte] ^= 1 << bit;
            assert!(
                open(bad.as_slice(), Vec::new(), &key(7)).is_err(),
                "flip at byte {byte} bit {bit} went unnoticed"
            );
        }
    }
}

#[test]
fn truncation_reordering_and_swaps_are_detected_and_named() {
    let data = vec![1u8; 64 * 3 + 10];
    let (stored, _) = sealed(&data, CHUNK);
    let c = CHUNK as usize + TAG_LEN;
    for cut in [
        HEADER_LEN,
        HEADER_LEN + c,
        HEADER_LEN + c - 1,
        HEADER_LEN + 2 * c,
        stored.len() - 1,
    ] {
        assert!(
            open(&stored[..cut], Vec::new(), &key(7)).is_err(),
            "truncated at {cut}"
        );
    }
    let mut swapped = stored.clone();
    let (a, b) = (HEADER_LEN, HEADER_LEN + c);
    let first: Vec<u8> = stored[a..b].to_vec();
    swapped.copy_within(b..b + c, a);
    swapped[b..b + c].copy_from_slice(&first);
    assert!(matches!(
        open(swapped.as_slice(), Vec::new(), &key(7)),
        Err(SealError::Chunk { index: 0 })
    ));
    let (other, _) = sealed(&data, CHUNK);
    let mut mixed = stored.clone();
    mixed[HEADER_LEN + c..HEADER_LEN + 2 * c]
        .copy_from_slice(&other[HEADER_LEN + c..HEADER_LEN + 2 * c]);
    assert!(matches!(
        open(mixed.as_slice(), Vec::new(), &key(7)),
        Err(SealError::Chunk { index: 1 })
    ));
}

#[test]
fn keys_parse_from_hex_and_never_print() {
    let k = MasterKey::from_hex(&"ab".repeat(32)).unwrap();
    assert!(!format!("{k:?}").contains("abab"));
    assert!(MasterKey::from_hex("abc").is_err());
}
