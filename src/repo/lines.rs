//! A sealed artifact read line by line while it is decrypted: an index of a million entries is
//! never whole in memory, only the piece being read (about 1 MiB) and one more in flight.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::storage::ChannelWriter;
use super::{Manifest, Repo, RepoError};

/// Decrypted pieces queued between the opening thread and the reader.
const QUEUE: usize = 2;

/// The lines of one artifact, in order. Every chunk is authenticated before its lines are
/// handed out; the artifact's checksums are checked at its end, so [`ArtifactLines::next`]
/// returns the failure of a damaged or truncated artifact instead of its end.
pub struct ArtifactLines {
    rx: mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
    at: usize,
    /// The opening, until its result was read.
    task: Option<JoinHandle<Result<(), RepoError>>>,
}

impl Repo {
    /// Starts reading artifact `name` of backup `m` line by line.
    pub fn artifact_lines(&self, m: &Manifest, name: &str) -> ArtifactLines {
        let (tx, rx) = mpsc::channel(QUEUE);
        let (repo, m, name) = (self.clone(), m.clone(), name.to_string());
        let task = tokio::spawn(async move {
            repo.open_artifact(&m, &name, ChannelWriter::new(tx))
                .await
                .map(drop)
        });
        ArtifactLines {
            rx,
            buf: Vec::new(),
            at: 0,
            task: Some(task),
        }
    }
}

impl ArtifactLines {
    /// The next line without its `\n` (empty lines included), or `None` after the last.
    pub async fn next(&mut self) -> Result<Option<&[u8]>, RepoError> {
        loop {
            if let Some(n) = self.buf[self.at..].iter().position(|b| *b == b'\n') {
                let start = self.at;
                self.at += n + 1;
                return Ok(Some(&self.buf[start..start + n]));
            }
            match self.rx.recv().await {
                Some(piece) => {
                    // Keep the unfinished line, drop what was read.
                    self.buf.drain(..self.at);
                    self.at = 0;
                    self.buf.extend_from_slice(&piece);
                }
                None => {
                    if let Some(task) = self.task.take() {
                        task.await
                            .map_err(|e| RepoError::Internal(e.to_string()))??;
                    }
                    if self.at < self.buf.len() {
                        // A last line without its newline.
                        let start = self.at;
                        self.at = self.buf.len();
                        return Ok(Some(&self.buf[start..]));
                    }
                    return Ok(None);
                }
            }
        }
    }
}
