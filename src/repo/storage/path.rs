//! Where an object sits in a repository, the same on a local disk and on S3.

/// An object's place in a repository: `/`-separated segments, none empty, relative to its root.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Path(String);

impl Path {
    /// The last segment.
    pub fn filename(&self) -> Option<&str> {
        self.0.rsplit('/').next().filter(|s| !s.is_empty())
    }
}

impl From<&str> for Path {
    fn from(s: &str) -> Self {
        Self(
            s.split('/')
                .filter(|seg| !seg.is_empty())
                .collect::<Vec<_>>()
                .join("/"),
        )
    }
}

impl From<String> for Path {
    fn from(s: String) -> Self {
        Self::from(s.as_str())
    }
}

impl AsRef<str> for Path {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
