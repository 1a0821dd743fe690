//! The queues between blocking threads (sealing, opening) and the async tasks that upload and
//! download.

use std::io::{Read, Write};

use bytes::Bytes;

use crate::cloudflare::r2::BodySink;

/// Writes, from a blocking thread, into a bounded channel an async task reads: pieces of about
/// 1 MiB, sent as they fill (and the rest on `flush`).
pub(crate) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChannelWriter {
    pub(crate) fn new(tx: tokio::sync::mpsc::Sender<Vec<u8>>) -> Self {
        Self {
            tx,
            buf: Vec::new(),
        }
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 1 << 20 {
            self.flush()?;
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let part = std::mem::take(&mut self.buf);
            self.tx
                .blocking_send(part)
                .map_err(|_| std::io::Error::other("the upload stopped"))?;
        }
        Ok(())
    }
}

/// Reads, on a blocking thread, what an async task sends through a bounded channel. Each piece
/// is dropped once read, with whatever it holds (a memory budget's permit).
pub(crate) struct ChannelReader<T = Bytes> {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<T>>,
    current: Option<T>,
    at: usize,
}

impl<T: AsRef<[u8]>> ChannelReader<T> {
    pub(crate) fn new(rx: tokio::sync::mpsc::Receiver<std::io::Result<T>>) -> Self {
        Self {
            rx,
            current: None,
            at: 0,
        }
    }
}

impl<T: AsRef<[u8]>> Read for ChannelReader<T> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let piece = loop {
            match &self.current {
                Some(c) if self.at < c.as_ref().len() => break c.as_ref(),
                _ => {}
            }
            self.current = None;
            match self.rx.blocking_recv() {
                Some(Ok(b)) => (self.current, self.at) = (Some(b), 0),
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        };
        let n = out.len().min(piece.len() - self.at);
        out[..n].copy_from_slice(&piece[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// A GET's body handed to the opening thread through a bounded queue.
pub(super) struct Feed(pub(super) tokio::sync::mpsc::Sender<std::io::Result<Bytes>>);

impl BodySink for Feed {
    async fn put(&mut self, bytes: Bytes) -> Result<(), String> {
        self.0
            .send(Ok(bytes))
            .await
            .map_err(|_| "the artifact's check stopped reading".to_string())
    }
}
