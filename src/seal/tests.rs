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

/// Hands out at most 7,001 bytes a read, as a network body arrives in pieces.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.0.len()).min(7_001);
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

#[test]
fn round_trips_are_exact_when_chunks_outgrow_their_first_reservation() {
    let chunk = 4 * FIRST as u32;
    let c = chunk as usize;
    for len in [
        FIRST - 1,
        FIRST,
        FIRST + 1,
        c - 1,
        c,
        c + 1,
        2 * c + FIRST + 3,
    ] {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let mut stored = Vec::new();
        let s = seal(Trickle(&data), &mut stored, &key(7), chunk).unwrap();
        assert_eq!(s.stored_len as usize, stored.len(), "size {len}");
        assert_eq!(s.plaintext_sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(s.stored_sha256, hex::encode(Sha256::digest(&stored)));
        let mut back = Vec::new();
        open(Trickle(&stored), &mut back, &key(7)).unwrap();
        assert_eq!(back, data, "size {len}");
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

/// Reads or writes `inner`, pausing on every call: a slow side makes the other one take the
/// cipher's work, so both paths of the pipeline are exercised.
struct Slow<T>(T);

impl<R: Read> Read for Slow<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::thread::sleep(std::time::Duration::from_micros(300));
        let n = buf.len().min(50);
        self.0.read(&mut buf[..n])
    }
}

impl<W: Write> Write for Slow<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        std::thread::sleep(std::time::Duration::from_micros(300));
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Opens `stored` the plain way: aead-stream's sequential decryptor, chunk after chunk.
fn open_sequentially(stored: &[u8], key: &MasterKey) -> Vec<u8> {
    let header = Header::parse(stored[..HEADER_LEN].try_into().unwrap()).unwrap();
    let mut dec =
        aead_stream::DecryptorBE32::from_aead(header.cipher(key), (&header.prefix).into());
    let chunks: Vec<&[u8]> = stored[HEADER_LEN..]
        .chunks(header.chunk as usize + TAG_LEN)
        .collect();
    let mut out = Vec::new();
    for (i, c) in chunks.iter().enumerate() {
        let mut buf = c.to_vec();
        if i + 1 == chunks.len() {
            dec.decrypt_last_in_place(&header.bytes, &mut buf).unwrap();
            out.extend_from_slice(&buf);
            break;
        }
        dec.decrypt_next_in_place(&header.bytes, &mut buf).unwrap();
        out.extend_from_slice(&buf);
    }
    out
}

#[test]
fn chunks_sealed_or_opened_by_either_side_are_the_plain_stream() {
    let data: Vec<u8> = (0..64 * 40 + 7).map(|i| (i * 7 % 253) as u8).collect();
    let whole = Sha256::digest(&data);
    // Slow writer: the reader does the cipher's work; slow reader: the writer does.
    let mut slow_out = Vec::new();
    seal(data.as_slice(), Slow(&mut slow_out), &key(7), CHUNK).unwrap();
    let mut fast_out = Vec::new();
    let s = seal(Slow(data.as_slice()), &mut fast_out, &key(7), CHUNK).unwrap();
    assert_eq!(s.chunks, 41);
    for stored in [&slow_out, &fast_out] {
        assert_eq!(open_sequentially(stored, &key(7)), data);
        for slow_side in [false, true] {
            let mut back = Vec::new();
            let o = if slow_side {
                open(Slow(stored.as_slice()), &mut back, &key(7)).unwrap()
            } else {
                open(stored.as_slice(), Slow(&mut back), &key(7)).unwrap()
            };
            assert_eq!((back.as_slice(), o.chunks), (data.as_slice(), 41));
            assert_eq!(o.plaintext_sha256, hex::encode(whole));
        }
    }
    // What aead-stream's sequential encryptor writes, this opens.
    let header = Header::new(CHUNK, [3; 32], [4; 7], key(7).id_bytes());
    let mut enc =
        aead_stream::EncryptorBE32::from_aead(header.cipher(&key(7)), (&header.prefix).into());
    let mut stored = header.bytes.to_vec();
    let parts: Vec<&[u8]> = data.chunks(CHUNK as usize).collect();
    let (last, rest) = parts.split_last().unwrap();
    for p in rest {
        let mut buf = p.to_vec();
        enc.encrypt_next_in_place(&header.bytes, &mut buf).unwrap();
        stored.extend_from_slice(&buf);
    }
    let mut buf = last.to_vec();
    enc.encrypt_last_in_place(&header.bytes, &mut buf).unwrap();
    stored.extend_from_slice(&buf);
    let mut back = Vec::new();
    open(stored.as_slice(), Slow(&mut back), &key(7)).unwrap();
    assert_eq!(back, data);
}

#[test]
fn a_blob_seals_as_an_artifact_does_without_hashing_the_stored_bytes() {
    let chunk = 4 * FIRST as u32;
    for len in [0usize, 10, FIRST + 1, 2 * chunk as usize + 5] {
        let data: Vec<u8> = (0..len).map(|i| (i * 17 % 253) as u8).collect();
        let mut stored = Vec::new();
        let s = seal_blob(Trickle(&data), &mut stored, &key(7), chunk).unwrap();
        assert_eq!(s.plaintext_len as usize, len);
        assert_eq!(s.plaintext_sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(s.stored_len as usize, stored.len());
        let mut back = Vec::new();
        let o = open(stored.as_slice(), &mut back, &key(7)).unwrap();
        assert_eq!((back, o.plaintext_sha256), (data, s.plaintext_sha256));
    }
}
