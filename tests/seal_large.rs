//! A multi-GiB artifact streamed through seal and open (never held in memory): past 2^31 bytes
//! and 2,000 chunk boundaries, the round trip is exact.

use std::io::{Read, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use cfdr::seal::{self, MasterKey};
use sha2::{Digest, Sha256};

/// 2 GiB + 3 bytes: a random 64 KiB block repeated, each copy stamped with its offset so no
/// two chunks are alike, hashed as it is handed out.
struct Generator {
    left: u64,
    offset: u64,
    block: Vec<u8>,
    hash: Sha256,
}

impl Read for Generator {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let at = (self.offset % self.block.len() as u64) as usize;
        let n = (buf.len() as u64)
            .min(self.left)
            .min((self.block.len() - at) as u64) as usize;
        buf[..n].copy_from_slice(&self.block[at..at + n]);
        if at == 0 && n >= 8 {
            buf[..8].copy_from_slice(&self.offset.to_le_bytes());
        }
        self.hash.update(&buf[..n]);
        self.left -= n as u64;
        self.offset += n as u64;
        Ok(n)
    }
}

struct Pipe(SyncSender<Vec<u8>>);

impl Write for Pipe {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .send(b.to_vec())
            .map_err(|_| std::io::Error::other("closed"))?;
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Drain {
    rx: Receiver<Vec<u8>>,
    current: Vec<u8>,
    pos: usize,
}

impl Read for Drain {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(v) => (self.current, self.pos) = (v, 0),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.current.len() - self.pos);
        out[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[test]
fn a_two_gib_artifact_round_trips_exactly_in_constant_memory() {
    let size = (2u64 << 30) + 3;
    let key = MasterKey::from_bytes([5; 32]);
    let (tx, rx) = sync_channel::<Vec<u8>>(8);
    let opener = {
        let key = key.clone();
        std::thread::spawn(move || {
            seal::open(
                Drain {
                    rx,
                    current: Vec::new(),
                    pos: 0,
                },
                std::io::sink(),
                &key,
            )
        })
    };
    let block: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut generator = Generator {
        left: size,
        offset: 0,
        block,
        hash: Sha256::new(),
    };
    let sealed = seal::seal(&mut generator, Pipe(tx), &key, seal::DEFAULT_CHUNK).expect("seal");
    let opened = opener.join().expect("open thread").expect("open");
    assert_eq!(sealed.plaintext_len, size);
    assert_eq!(
        sealed.plaintext_sha256,
        hex::encode(generator.hash.finalize())
    );
    assert_eq!(opened, sealed, "open measured exactly what seal wrote");
    assert_eq!(sealed.chunks, size.div_ceil(u64::from(seal::DEFAULT_CHUNK)));
}
