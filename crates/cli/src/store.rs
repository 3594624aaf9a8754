//! `--store`: where the thumbnail processor's images are. A local directory,
//! or `s3://BUCKET/PREFIX` on an S3-compatible service (settings from the
//! `AWS_*` environment variables, see
//! [`taskq_thumbnail::object_store::S3Store`]).

use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use taskq::{setting, Error};
use taskq_thumbnail::object_store::{ObjectError, ObjectStore, S3Location, S3Store};

/// Where an object store is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreLocation {
    /// A local directory.
    Dir(PathBuf),
    /// A bucket and prefix on an S3-compatible service.
    S3(S3Location),
}

impl FromStr for StoreLocation {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if S3Location::is_s3(s) {
            s.parse().map(StoreLocation::S3)
        } else if s.contains("://") {
            Err(format!(
                "{s:?}: an object store is a directory or s3://BUCKET/PREFIX"
            ))
        } else if s.is_empty() {
            Err("an object store is a directory or s3://BUCKET/PREFIX, not empty".into())
        } else {
            Ok(StoreLocation::Dir(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Dir(d) => write!(f, "{}", d.display()),
            StoreLocation::S3(l) => write!(f, "{l}"),
        }
    }
}

/// As its `--store` value (`demo-store`, `s3://bucket/prefix`).
impl serde::Serialize for StoreLocation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl StoreLocation {
    /// The directory, for a local store.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            StoreLocation::Dir(d) => Some(d),
            StoreLocation::S3(_) => None,
        }
    }

    /// The database a run over this store keeps when `--db` is not given:
    /// `DIR/taskq.db` for a directory.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an S3 store: records stay in a local file, which
    /// must be named.
    pub fn default_db(&self) -> Result<PathBuf, Error> {
        match self {
            StoreLocation::Dir(d) => Ok(d.join("taskq.db")),
            StoreLocation::S3(l) => Err(Error::config(
                setting::OBJECT_STORE,
                format!(
                    "{l} holds images, not the run's records: name a local database with \
                     --db FILE"
                ),
            )),
        }
    }

    /// Opens an S3 store and checks that its bucket answers.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] naming the bucket when it does not exist, refuses the
    /// credentials or the endpoint does not answer.
    pub fn open_s3(location: &S3Location) -> Result<S3Store, Error> {
        S3Store::open(location).map_err(|e| {
            Error::io(
                "cannot open the object store",
                io::Error::other(e.to_string()),
            )
        })
    }
}

/// Copies the object `key` of `store` into a new temporary file, streamed
/// (the task file of an S3 store, read by the run like a local one);
/// `None` when there is no such object.
///
/// # Errors
///
/// [`Error::Io`] naming the object (`name`) when it cannot be read, and the
/// temporary file when it cannot be written.
pub fn download(
    store: &dyn ObjectStore,
    key: &str,
    name: &str,
) -> Result<Option<tempfile::NamedTempFile>, Error> {
    let mut reader = match store.open(key) {
        Ok(reader) => reader,
        Err(ObjectError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(Error::io(format!("cannot read {name}"), object_io(e))),
    };
    let mut file =
        tempfile::NamedTempFile::new().map_err(|e| Error::io("cannot make a temporary file", e))?;
    io::copy(&mut reader, file.as_file_mut())
        .map_err(|e| Error::io(format!("cannot read {name}"), e))?;
    file.as_file_mut()
        .flush()
        .map_err(|e| Error::io("cannot write a temporary file", e))?;
    Ok(Some(file))
}

fn object_io(e: ObjectError) -> io::Error {
    match e {
        ObjectError::Io { cause, .. } => cause,
        other => io::Error::other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_directories_and_buckets() {
        assert_eq!(
            "demo-store".parse::<StoreLocation>().unwrap(),
            StoreLocation::Dir("demo-store".into())
        );
        let s3 = "s3://bucket/p".parse::<StoreLocation>().unwrap();
        assert_eq!(s3.to_string(), "s3://bucket/p");
        assert!(s3.dir().is_none());
        assert!(s3.default_db().is_err());
        assert!("http://x/y".parse::<StoreLocation>().is_err());
        assert!("s3://B".parse::<StoreLocation>().is_err());
        assert!("".parse::<StoreLocation>().is_err());
    }
}
