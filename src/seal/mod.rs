//! Sealed artifacts: AES-256-GCM in the STREAM construction (big-endian 32-bit chunk counter and a
//! last-chunk flag in the nonce), a per-artifact key derived with HKDF-SHA256 from the master key
//! and a random salt, and SHA-256 of the plaintext and of the stored bytes computed in the same
//! streaming pass. Memory stays at about two chunks whatever the artifact's size.
//!
//! Stored layout (all integers big-endian):
//!
//! | bytes | field |
//! | --- | --- |
//! | 8 | magic `CFDRSEAL` |
//! | 1 | format version, 1 |
//! | 1 | algorithm, 1 = AES-256-GCM STREAM-BE32 |
//! | 2 | reserved, zero |
//! | 4 | chunk size N (plaintext bytes per chunk) |
//! | 32 | salt |
//! | 7 | nonce prefix |
//! | 4 | key id |
//!
//! then chunks of N + 16 bytes (ciphertext and tag), the last one shorter or equal, possibly just a
//! tag. Chunk i's nonce is `prefix ‖ u32(i) ‖ last` (last = 1 for the final chunk, else 0) and its
//! associated data is the 59-byte header. The artifact key is HKDF-SHA256(ikm = master key,
//! salt = salt, info = `cfdr artifact key v1`), 32 bytes; the key id is the first 4 bytes of
//! HKDF-SHA256(ikm = master key, no salt, info = `cfdr key id v1`).

use std::io::{Read, Write};

use aead_stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::Aes256Gcm;
use aes_gcm::aead::KeyInit;
use sha2::{Digest, Sha256};

pub const MAGIC: &[u8; 8] = b"CFDRSEAL";
pub const VERSION: u8 = 1;
pub const ALGORITHM: u8 = 1;
pub const HEADER_LEN: usize = 59;
pub const TAG_LEN: usize = 16;
pub const DEFAULT_CHUNK: u32 = 1 << 20;
const MAX_CHUNK: u32 = 64 << 20;

/// The repository's master key. Never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses 64 hexadecimal characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, SealError> {
        let bytes = hex::decode(text.trim()).map_err(|_| SealError::BadKey)?;
        Ok(Self(bytes.try_into().map_err(|_| SealError::BadKey)?))
    }

    fn derive(&self, salt: Option<&[u8]>, info: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(salt, &self.0)
            .expand(info, &mut out)
            .expect("32 bytes is a valid HKDF-SHA256 length");
        out
    }

    fn id_bytes(&self) -> [u8; 4] {
        let d = self.derive(None, b"cfdr key id v1");
        [d[0], d[1], d[2], d[3]]
    }

    /// HMAC-SHA256 of `data` under a key derived for `purpose` (manifests, the repository's key
    /// check), as hex.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> String {
        use hmac::{KeyInit as _, Mac as _};
        let key = self.derive(None, format!("cfdr mac v1 {purpose}").as_bytes());
        let mut m = hmac::Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length");
        m.update(data);
        hex::encode(m.finalize().into_bytes())
    }

    /// The key id (8 hex characters) recorded in every artifact sealed with this key.
    pub fn id(&self) -> String {
        hex::encode(self.id_bytes())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("the key is not 64 hexadecimal characters (32 bytes)")]
    BadKey,
    #[error("not a sealed artifact (no CFDRSEAL header)")]
    BadMagic,
    #[error(
        "the header says format version {0}, which this cfdr does not read (the header is damaged, or cfdr needs an upgrade)"
    )]
    UnsupportedVersion(u8),
    #[error(
        "the header says algorithm {0}, which this cfdr does not know (the header is damaged, or cfdr needs an upgrade)"
    )]
    UnsupportedAlgorithm(u8),
    #[error("the header is damaged (chunk size {0})")]
    BadHeader(u32),
    #[error("the header says it was sealed with key `{sealed}`, the key given is `{given}`")]
    KeyMismatch { sealed: String, given: String },
    #[error("chunk {index} is corrupt, truncated, reordered or from another artifact")]
    Chunk { index: u64 },
    #[error("the artifact ends inside its header")]
    TruncatedHeader,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What a seal or open pass measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub plaintext_len: u64,
    pub plaintext_sha256: String,
    pub stored_len: u64,
    pub stored_sha256: String,
    pub chunks: u64,
}

struct Header {
    bytes: [u8; HEADER_LEN],
    chunk: u32,
    salt: [u8; 32],
    prefix: [u8; 7],
    key_id: [u8; 4],
}

impl Header {
    fn new(chunk: u32, salt: [u8; 32], prefix: [u8; 7], key_id: [u8; 4]) -> Self {
        let mut b = [0u8; HEADER_LEN];
        b[..8].copy_from_slice(MAGIC);
        b[8] = VERSION;
        b[9] = ALGORITHM;
        b[12..16].copy_from_slice(&chunk.to_be_bytes());
        b[16..48].copy_from_slice(&salt);
        b[48..55].copy_from_slice(&prefix);
        b[55..59].copy_from_slice(&key_id);
        Self {
            bytes: b,
            chunk,
            salt,
            prefix,
            key_id,
        }
    }

    fn parse(b: [u8; HEADER_LEN]) -> Result<Self, SealError> {
        if &b[..8] != MAGIC {
            return Err(SealError::BadMagic);
        }
        if b[8] != VERSION {
            return Err(SealError::UnsupportedVersion(b[8]));
        }
        if b[9] != ALGORITHM {
            return Err(SealError::UnsupportedAlgorithm(b[9]));
        }
        let chunk = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
        if chunk == 0 || chunk > MAX_CHUNK || b[10] != 0 || b[11] != 0 {
            return Err(SealError::BadHeader(chunk));
        }
        let mut h = Self::new(chunk, [0; 32], [0; 7], [0; 4]);
        h.salt.copy_from_slice(&b[16..48]);
        h.prefix.copy_from_slice(&b[48..55]);
        h.key_id.copy_from_slice(&b[55..59]);
        h.bytes = b;
        Ok(h)
    }

    fn cipher(&self, key: &MasterKey) -> Aes256Gcm {
        let k = key.derive(Some(&self.salt), b"cfdr artifact key v1");
        Aes256Gcm::new(&k.into())
    }
}

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The output side, on a second thread: hashes and writes each buffer, then hands it back for
/// reuse. The two SHA-256 passes of a seal or an open thus run in parallel, and memory stays at a
/// few chunks.
struct Output {
    tx: Option<std::sync::mpsc::SyncSender<Vec<u8>>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
}

impl Output {
    fn start<'s, W: Write + Send + 's>(
        scope: &'s std::thread::Scope<'s, '_>,
        mut out: W,
    ) -> (
        Self,
        std::thread::ScopedJoinHandle<'s, std::io::Result<(Sha256, u64)>>,
    ) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(2);
        let (back, spare) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let handle = scope.spawn(move || {
            let (mut hash, mut len) = (Sha256::new(), 0u64);
            for buf in rx {
                hash.update(&buf);
                len += buf.len() as u64;
                out.write_all(&buf)?;
                let _ = back.try_send(buf);
            }
            out.flush()?;
            Ok((hash, len))
        });
        (
            Self {
                tx: Some(tx),
                spare,
            },
            handle,
        )
    }

    fn send(&self, buf: Vec<u8>) -> std::io::Result<()> {
        match &self.tx {
            Some(tx) => tx
                .send(buf)
                .map_err(|_| std::io::Error::other("the output stopped")),
            None => Ok(()),
        }
    }

    /// Up to `len` bytes of `input` (fewer only at its end), in a buffer reused when one has
    /// come back. A new buffer grows only as far as the input goes: a small artifact never
    /// allocates, zeroes or touches a whole chunk.
    fn read(&self, input: &mut impl Read, len: usize, capacity: usize) -> std::io::Result<Vec<u8>> {
        let mut b = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(capacity.min(64 << 10)));
        b.clear();
        input.take(len as u64).read_to_end(&mut b)?;
        Ok(b)
    }

    fn finish(mut self) {
        self.tx.take();
    }
}

/// Joins the output thread; its own error wins over the "output stopped" it caused upstream.
fn join_output<T>(
    handle: std::thread::ScopedJoinHandle<'_, std::io::Result<(Sha256, u64)>>,
    result: Result<T, SealError>,
) -> Result<(T, Sha256, u64), SealError> {
    let joined = handle
        .join()
        .map_err(|_| SealError::Io(std::io::Error::other("the output thread panicked")))?;
    match (result, joined) {
        (Ok(t), Ok((hash, len))) => Ok((t, hash, len)),
        (Err(SealError::Io(_)), Err(e)) => Err(SealError::Io(e)),
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(SealError::Io(e)),
    }
}

/// Seals everything `input` yields into `output`.
pub fn seal(
    mut input: impl Read,
    output: impl Write + Send,
    key: &MasterKey,
    chunk: u32,
) -> Result<Summary, SealError> {
    if chunk == 0 || chunk > MAX_CHUNK {
        return Err(SealError::BadHeader(chunk));
    }
    let header = Header::new(chunk, rand::random(), rand::random(), key.id_bytes());
    let size = chunk as usize;
    std::thread::scope(|scope| {
        let (out, handle) = Output::start(scope, output);
        let result = (|| {
            out.send(header.bytes.to_vec())?;
            let mut enc = EncryptorBE32::from_aead(header.cipher(key), (&header.prefix).into());
            let (mut plain_hash, mut plain_len, mut chunks) = (Sha256::new(), 0u64, 0u64);
            let mut current = out.read(&mut input, size, size + TAG_LEN)?;
            loop {
                let next = if current.len() == size {
                    out.read(&mut input, size, size + TAG_LEN)?
                } else {
                    Vec::new()
                };
                let m = next.len();
                plain_hash.update(&current);
                plain_len += current.len() as u64;
                chunks += 1;
                if m == 0 {
                    enc.encrypt_last_in_place(&header.bytes, &mut current)
                        .map_err(|_| SealError::Chunk { index: chunks - 1 })?;
                    out.send(current)?;
                    break;
                }
                enc.encrypt_next_in_place(&header.bytes, &mut current)
                    .map_err(|_| SealError::Chunk { index: chunks - 1 })?;
                out.send(current)?;
                current = next;
            }
            Ok((plain_hash, plain_len, chunks))
        })();
        out.finish();
        let ((plain_hash, plain_len, chunks), stored_hash, stored_len) =
            join_output(handle, result)?;
        Ok(Summary {
            plaintext_len: plain_len,
            plaintext_sha256: hex::encode(plain_hash.finalize()),
            stored_len,
            stored_sha256: hex::encode(stored_hash.finalize()),
            chunks,
        })
    })
}

/// Reads the key id of a sealed artifact without touching its data.
pub fn key_id(mut input: impl Read) -> Result<String, SealError> {
    let mut b = [0u8; HEADER_LEN];
    if fill(&mut input, &mut b)? < HEADER_LEN {
        return Err(SealError::TruncatedHeader);
    }
    Ok(hex::encode(Header::parse(b)?.key_id))
}

/// Opens a sealed artifact, writing each chunk's plaintext once its tag has been checked. A
/// failure can come after earlier chunks were written (STREAM detects truncation at the end):
/// callers that must write nothing on failure write to a temporary file first.
pub fn open(
    mut input: impl Read,
    output: impl Write + Send,
    key: &MasterKey,
) -> Result<Summary, SealError> {
    let mut b = [0u8; HEADER_LEN];
    if fill(&mut input, &mut b)? < HEADER_LEN {
        return Err(SealError::TruncatedHeader);
    }
    let header = Header::parse(b)?;
    if header.key_id != key.id_bytes() {
        return Err(SealError::KeyMismatch {
            sealed: hex::encode(header.key_id),
            given: key.id(),
        });
    }
    let size = header.chunk as usize + TAG_LEN;
    std::thread::scope(|scope| {
        let (out, handle) = Output::start(scope, output);
        let result = (|| {
            let mut stored_hash = Sha256::new();
            stored_hash.update(header.bytes);
            let mut stored_len = HEADER_LEN as u64;
            let mut dec = DecryptorBE32::from_aead(header.cipher(key), (&header.prefix).into());
            let mut current = out.read(&mut input, size, size)?;
            let mut index = 0u64;
            loop {
                let next = if current.len() == size {
                    out.read(&mut input, size, size)?
                } else {
                    Vec::new()
                };
                let m = next.len();
                stored_hash.update(&current);
                stored_len += current.len() as u64;
                if current.len() < TAG_LEN {
                    return Err(SealError::Chunk { index });
                }
                if m == 0 {
                    dec.decrypt_last_in_place(&header.bytes, &mut current)
                        .map_err(|_| SealError::Chunk { index })?;
                    out.send(current)?;
                    break;
                }
                dec.decrypt_next_in_place(&header.bytes, &mut current)
                    .map_err(|_| SealError::Chunk { index })?;
                out.send(current)?;
                current = next;
                index += 1;
            }
            Ok((stored_hash, stored_len, index + 1))
        })();
        out.finish();
        let ((stored_hash, stored_len, chunks), plain_hash, plain_len) =
            join_output(handle, result)?;
        Ok(Summary {
            plaintext_len: plain_len,
            plaintext_sha256: hex::encode(plain_hash.finalize()),
            stored_len,
            stored_sha256: hex::encode(stored_hash.finalize()),
            chunks,
        })
    })
}

#[cfg(test)]
mod tests;
