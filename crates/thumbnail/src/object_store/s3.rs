//! [`S3Store`]: objects in a bucket of an S3-compatible service (AWS S3,
//! MinIO, …) under a key prefix, through the `object_store` client.
//!
//! # Settings
//!
//! The conventions every S3 tool shares, read from the environment:
//! `AWS_ENDPOINT_URL` (MinIO or any S3-compatible server; AWS when unset),
//! `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
//! `AWS_REGION` (default `us-east-1`), and `AWS_ALLOW_HTTP=true` for a
//! plain-http endpoint. A custom endpoint is addressed path-style
//! (`ENDPOINT/BUCKET/KEY`), as MinIO expects.
//!
//! # How the store keeps the [promises](super)
//!
//! 1. **Keys.** A key is checked with [`check_key`] and stored as
//!    `PREFIX/KEY`, byte for byte; nothing reaches outside the prefix.
//! 2. **Streaming.** A reader starts one `GET` and a task on the store's
//!    runtime pulls the body into a channel of [`READ_AHEAD_CHUNKS`] chunks,
//!    so the network transfer runs ahead of the decoder, with bounded memory.
//!    A seek outside the chunk in hand starts a ranged `GET`. A writer keeps
//!    at most [`PART_BYTES`]: an object that stays below it is one `PUT` at
//!    commit; a larger one becomes a multipart upload whose parts upload in
//!    the background while the next part fills (at most
//!    [`PARTS_IN_FLIGHT`] at a time).
//! 3. **Atomic writes.** S3 makes an object visible only when its `PUT` or
//!    its multipart upload's completion succeeds; a writer dropped
//!    uncommitted aborts its multipart upload, so no part is kept.
//!
//! # Errors
//!
//! Throttling (`503 SlowDown`), other 5xx and 429 answers, timeouts and
//! dropped connections are transient ([`ObjectError::Io`]): the engine
//! retries the task with its own backoff (the client itself does not retry,
//! so every retry shows in the run's report). A missing object is
//! [`ObjectError::NotFound`]; access denied, bad credentials and other
//! refusals are [`ObjectError::Refused`]. Every message names the object as
//! `s3://BUCKET/PREFIX/KEY`.
//!
//! # Threads
//!
//! The client is asynchronous. The store owns one small runtime (two
//! threads, `taskq-s3`) that every request of every worker runs on; a worker
//! waits for its request's answer without a runtime of its own.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::object_store::aws::{AmazonS3, AmazonS3Builder, AmazonS3ConfigKey};
use ::object_store::path::Path;
use ::object_store::{
    Attribute, Attributes, ClientConfigKey, GetOptions, GetRange, MultipartUpload,
    ObjectStore as _, PutMultipartOptions, PutOptions, PutPayload, RetryConfig,
};
use bytes::Bytes;
use futures::StreamExt;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{check_key, IoStats, ObjectError, ObjectReader, ObjectStore, ObjectWriter};

/// Objects written in one `PUT` up to this size; larger ones are uploaded in
/// parts of this size (8 MiB; S3 needs at least 5 MiB for every part but the
/// last).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

/// Parts of one object uploading at once; a writer holds at most this many
/// parts plus the one filling.
pub const PARTS_IN_FLIGHT: usize = 2;

/// Body chunks a reader's background fetch may hold ahead of the reader.
pub const READ_AHEAD_CHUNKS: usize = 8;

/// A forward seek up to this far reads on in the current response instead
/// of starting a new ranged `GET`.
const SKIP_FORWARD_BYTES: u64 = 256 * 1024;

/// How long a request may wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one request may take, body included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// `s3://BUCKET/PREFIX`: a bucket and a key prefix inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket's name.
    pub bucket: String,
    /// The prefix every key is stored under (no leading or trailing `/`;
    /// empty for the bucket's root).
    pub prefix: String,
}

impl S3Location {
    /// True when `s` is meant as an S3 location (starts with `s3://`).
    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3://")
    }

    /// The object name of `key`: `PREFIX/KEY`, or `KEY` at the bucket's root.
    fn object_name(&self, key: &str) -> String {
        if self.prefix.is_empty() {
            key.to_string()
        } else {
            format!("{}/{key}", self.prefix)
        }
    }

    /// `s3://BUCKET/PREFIX/KEY`, as error messages name an object.
    pub fn url_of(&self, key: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.object_name(key))
    }
}

impl fmt::Display for S3Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.prefix.is_empty() {
            write!(f, "s3://{}", self.bucket)
        } else {
            write!(f, "s3://{}/{}", self.bucket, self.prefix)
        }
    }
}

impl std::str::FromStr for S3Location {
    type Err = String;

    /// Parses `s3://BUCKET` or `s3://BUCKET/PREFIX`. The bucket follows S3's
    /// naming rules (3–63 lowercase letters, digits, `.` and `-`, starting
    /// and ending with a letter or digit); the prefix follows the key rules.
    fn from_str(s: &str) -> Result<Self, String> {
        let rest = s
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{s:?}: an S3 location starts with s3://"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let prefix = prefix.trim_end_matches('/');
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.as_bytes()[0].is_ascii_alphanumeric()
            && bucket.as_bytes()[bucket.len() - 1].is_ascii_alphanumeric();
        if !bucket_ok {
            return Err(format!(
                "{s:?}: the bucket name {bucket:?} must be 3 to 63 lowercase letters, digits, \
                 '.' or '-', starting and ending with a letter or digit"
            ));
        }
        if !prefix.is_empty() {
            check_key(prefix).map_err(|e| format!("{s:?}: the prefix {e}"))?;
        }
        Ok(S3Location {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }
}

/// Why an [`S3Store`] could not be opened: the run stops before any work.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {detail}")]
pub struct S3OpenError {
    /// The location asked for.
    pub location: String,
    /// What is wrong (missing bucket, bad credentials, endpoint unreachable,
    /// bad settings).
    pub detail: String,
}

struct Inner {
    client: AmazonS3,
    location: S3Location,
    runtime: Runtime,
}

impl Inner {
    fn path(&self, key: &str) -> Result<Path, ObjectError> {
        check_key(key)?;
        Path::parse(self.location.object_name(key)).map_err(|e| ObjectError::InvalidKey {
            key: key.into(),
            reason: e.to_string(),
        })
    }

    fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }
}

/// Objects in an S3 bucket under a prefix: see the [module docs](self).
/// Cheap to clone; clones share the client and the runtime.
#[derive(Clone)]
pub struct S3Store {
    inner: Arc<Inner>,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store")
            .field("location", &self.inner.location)
            .finish_non_exhaustive()
    }
}

impl S3Store {
    /// Connects to `location` with the settings in the environment (see the
    /// [module docs](self)) and checks that the bucket exists and answers
    /// with these credentials (one `LIST` of at most one key).
    ///
    /// # Errors
    ///
    /// [`S3OpenError`] naming the bucket when the settings are invalid, the
    /// endpoint does not answer, the credentials are refused or the bucket
    /// does not exist.
    pub fn open(location: &S3Location) -> Result<Self, S3OpenError> {
        Self::open_with(location, &[])
    }

    /// As [`open`](S3Store::open), with `settings` (named as the
    /// environment variables are: `AWS_ENDPOINT_URL`, …) applied over the
    /// environment's.
    ///
    /// # Errors
    ///
    /// As [`open`](S3Store::open), and for a setting name the client does
    /// not know.
    pub fn open_with(
        location: &S3Location,
        settings: &[(&str, &str)],
    ) -> Result<Self, S3OpenError> {
        let store = Self::connect_with(location, settings)?;
        store.check()?;
        Ok(store)
    }

    /// As [`open`](S3Store::open), without the check: nothing is sent until
    /// the first request.
    ///
    /// # Errors
    ///
    /// [`S3OpenError`] for invalid settings.
    pub fn connect(location: &S3Location) -> Result<Self, S3OpenError> {
        Self::connect_with(location, &[])
    }

    fn connect_with(location: &S3Location, settings: &[(&str, &str)]) -> Result<Self, S3OpenError> {
        let fail = |detail: String| S3OpenError {
            location: location.to_string(),
            detail,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("taskq-s3")
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start the client's threads: {e}")))?;
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&location.bucket);
        if std::env::var_os("AWS_REGION").is_none()
            && std::env::var_os("AWS_DEFAULT_REGION").is_none()
        {
            builder = builder.with_region("us-east-1");
        }
        for (name, value) in settings {
            let key: AmazonS3ConfigKey = name
                .to_ascii_lowercase()
                .parse()
                .map_err(|e| fail(format!("unknown S3 setting {name}: {e}")))?;
            builder = builder.with_config(key, *value);
        }
        // Timeouts unless the environment sets them (AWS_TIMEOUT,
        // AWS_CONNECT_TIMEOUT); `with_client_options` would replace the
        // client settings read from it (AWS_ALLOW_HTTP among them).
        for (key, value) in [
            (ClientConfigKey::ConnectTimeout, CONNECT_TIMEOUT),
            (ClientConfigKey::Timeout, REQUEST_TIMEOUT),
        ] {
            let key = AmazonS3ConfigKey::Client(key);
            if builder.get_config_value(&key).is_none() {
                builder = builder.with_config(key, format!("{}s", value.as_secs()));
            }
        }
        let client = builder
            // The engine retries a failed task with its own backoff; the
            // client does not retry underneath it.
            .with_retry(RetryConfig {
                max_retries: 0,
                ..RetryConfig::default()
            })
            .build()
            .map_err(|e| fail(format!("bad S3 settings: {e}")))?;
        Ok(S3Store {
            inner: Arc::new(Inner {
                client,
                location: location.clone(),
                runtime,
            }),
        })
    }

    /// Where the store keeps its objects.
    pub fn location(&self) -> &S3Location {
        &self.inner.location
    }

    /// Lists at most one key under the prefix: fails when the bucket is
    /// missing, the credentials are refused or the endpoint is unreachable
    /// (after three tries, for an endpoint that answers 5xx or not at all).
    fn check(&self) -> Result<(), S3OpenError> {
        let inner = &self.inner;
        let prefix = (!inner.location.prefix.is_empty())
            .then(|| Path::parse(&inner.location.prefix))
            .transpose()
            .map_err(|e| S3OpenError {
                location: inner.location.to_string(),
                detail: e.to_string(),
            })?;
        // A transient failure (throttling, a 5xx) is asked again, twice,
        // before the run gives up.
        let mut result = Ok(None);
        for wait_ms in [100, 400, 0] {
            result = inner.block_on(async {
                let mut list = inner.client.list(prefix.as_ref());
                list.next().await.transpose()
            });
            match &result {
                Err(e) if classify(e) == Class::Transient && wait_ms > 0 => {
                    std::thread::sleep(Duration::from_millis(wait_ms));
                }
                _ => break,
            }
        }
        match result {
            Ok(_) => Ok(()),
            Err(e) => {
                let bucket = &inner.location.bucket;
                let detail = match classify(&e) {
                    Class::NotFound => format!("the bucket {bucket:?} does not exist"),
                    Class::Denied => format!(
                        "access to the bucket {bucket:?} was refused (check AWS_ACCESS_KEY_ID, \
                         AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN): {}",
                        chain(&e)
                    ),
                    Class::Transient => format!(
                        "the S3 endpoint did not answer (check AWS_ENDPOINT_URL, and \
                         AWS_ALLOW_HTTP=true for http://): {}",
                        chain(&e)
                    ),
                    Class::Refused => format!("the S3 service refused: {}", chain(&e)),
                };
                Err(S3OpenError {
                    location: inner.location.to_string(),
                    detail,
                })
            }
        }
    }
}

impl ObjectStore for S3Store {
    fn open(&self, key: &str) -> Result<Box<dyn ObjectReader>, ObjectError> {
        let path = self.inner.path(key)?;
        let mut reader = S3Reader {
            inner: self.inner.clone(),
            url: self.inner.location.url_of(key),
            path,
            size: 0,
            chunk: Bytes::new(),
            chunk_start: 0,
            offset: 0,
            next_byte: 0,
            body: None,
            stats: IoStats::default(),
        };
        let started = Instant::now();
        let result = reader.request(0, true);
        reader.stats.io_ns += ns(started);
        result?;
        Ok(Box::new(reader))
    }

    fn create(&self, key: &str) -> Result<Box<dyn ObjectWriter>, ObjectError> {
        let path = self.inner.path(key)?;
        Ok(Box::new(S3Writer {
            inner: self.inner.clone(),
            url: self.inner.location.url_of(key),
            key_is_json: key.ends_with(".json"),
            path,
            buf: Vec::new(),
            upload: None,
            parts: VecDeque::new(),
            content_type: None,
            stats: IoStats::default(),
        }))
    }
}

/// One response body, pulled by a task on the runtime into a bounded
/// channel.
struct Body {
    rx: mpsc::Receiver<Result<Bytes, ::object_store::Error>>,
    pump: JoinHandle<()>,
}

impl Drop for Body {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

struct S3Reader {
    inner: Arc<Inner>,
    url: String,
    path: Path,
    size: u64,
    /// The chunk in hand, which starts at byte `chunk_start` of the object.
    chunk: Bytes,
    chunk_start: u64,
    /// Read position inside `chunk`.
    offset: usize,
    /// The object's byte that `body` delivers next.
    next_byte: u64,
    body: Option<Body>,
    stats: IoStats,
}

impl S3Reader {
    /// Starts a `GET` from byte `from` (the whole object when `first`).
    fn request(&mut self, from: u64, first: bool) -> Result<(), ObjectError> {
        self.body = None;
        let options = GetOptions {
            range: (!first).then_some(GetRange::Offset(from)),
            ..GetOptions::default()
        };
        let inner = self.inner.clone();
        let result = inner
            .block_on(inner.client.get_opts(&self.path, options))
            .map_err(|e| remote_error(&self.url, "read", e))?;
        if first {
            self.size = result.meta.size;
        }
        let mut stream = result.into_stream();
        let (tx, rx) = mpsc::channel(READ_AHEAD_CHUNKS);
        let pump = inner.runtime.spawn(async move {
            while let Some(chunk) = stream.next().await {
                let failed = chunk.is_err();
                if tx.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        self.body = Some(Body { rx, pump });
        self.next_byte = from;
        Ok(())
    }

    fn position(&self) -> u64 {
        self.chunk_start + self.offset as u64
    }

    /// Takes the next chunk of the current body: false at its end.
    fn next_chunk(&mut self) -> io::Result<bool> {
        let Some(body) = &mut self.body else {
            return Ok(false);
        };
        let started = Instant::now();
        let received = body.rx.blocking_recv();
        self.stats.io_ns += ns(started);
        match received {
            Some(Ok(chunk)) => {
                self.chunk_start = self.next_byte;
                self.next_byte += chunk.len() as u64;
                self.stats.bytes += chunk.len() as u64;
                self.chunk = chunk;
                self.offset = 0;
                Ok(true)
            }
            Some(Err(e)) => {
                self.body = None;
                Err(io::Error::other(remote_error(&self.url, "read", e)))
            }
            None => {
                self.body = None;
                if self.next_byte < self.size {
                    return Err(io::Error::other(format!(
                        "{}: the response ended after {} of {} bytes",
                        self.url, self.next_byte, self.size
                    )));
                }
                Ok(false)
            }
        }
    }
}

impl Read for S3Reader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for S3Reader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        while self.offset >= self.chunk.len() {
            if self.position() >= self.size || !self.next_chunk()? {
                return Ok(&[]);
            }
        }
        Ok(&self.chunk[self.offset..])
    }

    fn consume(&mut self, n: usize) {
        self.offset = (self.offset + n).min(self.chunk.len());
    }
}

impl Seek for S3Reader {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position().checked_add_signed(d),
        }
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        let chunk_end = self.chunk_start + self.chunk.len() as u64;
        if (self.chunk_start..=chunk_end).contains(&target) {
            self.offset = (target - self.chunk_start) as usize;
            return Ok(target);
        }
        if target > chunk_end && target - chunk_end <= SKIP_FORWARD_BYTES && self.body.is_some() {
            // Read on to it in the current response.
            while self.position() < target {
                let left = target - self.position();
                let available = self.fill_buf()?.len() as u64;
                if available == 0 {
                    break;
                }
                self.consume(available.min(left) as usize);
            }
            if self.position() == target {
                return Ok(target);
            }
        }
        // Anywhere else: a new ranged request (none past the end).
        self.chunk = Bytes::new();
        self.chunk_start = target;
        self.offset = 0;
        self.body = None;
        if target < self.size {
            let started = Instant::now();
            let result = self.request(target, false);
            self.stats.io_ns += ns(started);
            result.map_err(io::Error::other)?;
        }
        Ok(target)
    }
}

impl ObjectReader for S3Reader {
    fn stats(&self) -> IoStats {
        self.stats
    }
}

struct S3Writer {
    inner: Arc<Inner>,
    url: String,
    path: Path,
    key_is_json: bool,
    /// The part filling (the whole object while it stays below
    /// [`PART_BYTES`]).
    buf: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    parts: VecDeque<JoinHandle<Result<(), ::object_store::Error>>>,
    content_type: Option<&'static str>,
    stats: IoStats,
}

impl S3Writer {
    fn attributes(&mut self) -> Attributes {
        let kind = *self
            .content_type
            .get_or_insert_with(|| content_type(&self.buf, self.key_is_json));
        let mut attributes = Attributes::new();
        attributes.insert(Attribute::ContentType, kind.into());
        attributes
    }

    /// Sends the filled part on its way, waiting for the oldest when
    /// [`PARTS_IN_FLIGHT`] are uploading.
    fn send_part(&mut self) -> Result<(), ObjectError> {
        let inner = self.inner.clone();
        if self.upload.is_none() {
            let options = PutMultipartOptions {
                attributes: self.attributes(),
                ..PutMultipartOptions::default()
            };
            let upload = inner
                .block_on(inner.client.put_multipart_opts(&self.path, options))
                .map_err(|e| remote_error(&self.url, "start the upload of", e))?;
            self.upload = Some(upload);
        }
        while self.parts.len() >= PARTS_IN_FLIGHT {
            self.wait_oldest()?;
        }
        let data = std::mem::replace(&mut self.buf, Vec::with_capacity(PART_BYTES));
        self.stats.bytes += data.len() as u64;
        let upload = self.upload.as_mut().expect("started above");
        let part = upload.put_part(PutPayload::from(data));
        self.parts.push_back(inner.runtime.spawn(part));
        Ok(())
    }

    fn wait_oldest(&mut self) -> Result<(), ObjectError> {
        let Some(part) = self.parts.pop_front() else {
            return Ok(());
        };
        match self.inner.block_on(part) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(remote_error(&self.url, "upload a part of", e)),
            Err(e) => Err(ObjectError::io(
                &self.url,
                "upload a part of",
                io::Error::other(e),
            )),
        }
    }

    fn finish(&mut self) -> Result<(), ObjectError> {
        let inner = self.inner.clone();
        if self.upload.is_none() {
            let options = PutOptions {
                attributes: self.attributes(),
                ..PutOptions::default()
            };
            let data = std::mem::take(&mut self.buf);
            let len = data.len() as u64;
            inner
                .block_on(
                    inner
                        .client
                        .put_opts(&self.path, PutPayload::from(data), options),
                )
                .map_err(|e| remote_error(&self.url, "write", e))?;
            self.stats.bytes += len;
            return Ok(());
        }
        if !self.buf.is_empty() {
            self.send_part()?;
        }
        while !self.parts.is_empty() {
            self.wait_oldest()?;
        }
        let upload = self.upload.as_mut().expect("checked above");
        inner
            .block_on(upload.complete())
            .map_err(|e| remote_error(&self.url, "complete the upload of", e))?;
        self.upload = None;
        Ok(())
    }
}

impl Write for S3Writer {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= PART_BYTES {
            let started = Instant::now();
            let sent = self.send_part();
            self.stats.io_ns += ns(started);
            sent.map_err(io::Error::other)?;
        }
        let n = data.len().min(PART_BYTES - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ObjectWriter for S3Writer {
    fn commit(mut self: Box<Self>) -> Result<IoStats, ObjectError> {
        let started = Instant::now();
        let result = self.finish();
        self.stats.io_ns += ns(started);
        result.map(|()| self.stats)
    }

    fn stats(&self) -> IoStats {
        self.stats
    }
}

impl Drop for S3Writer {
    /// An upload not completed is aborted, so that none of its parts is
    /// kept (S3 never shows an incomplete upload under the key).
    fn drop(&mut self) {
        for part in self.parts.drain(..) {
            part.abort();
        }
        if let Some(mut upload) = self.upload.take() {
            let _ = self.inner.block_on(upload.abort());
        }
    }
}

/// The content type of an object starting with `head`: JPEG and PNG told by
/// their signatures, JSON by the key's extension, bytes otherwise.
fn content_type(head: &[u8], json: bool) -> &'static str {
    if head.starts_with(&[0xFF, 0xD8, 0xFF]) {
        "image/jpeg"
    } else if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if json {
        "application/json"
    } else {
        "application/octet-stream"
    }
}

/// How a failed request is treated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// 404.
    NotFound,
    /// 401, 403.
    Denied,
    /// Another 4xx: the same request will fail again.
    Refused,
    /// 5xx, 429, timeouts, connection errors, bodies cut short.
    Transient,
}

/// The HTTP status in a client error, if the service answered with one.
fn status_of(e: &::object_store::Error) -> Option<u16> {
    let text = chain(e);
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

fn classify(e: &::object_store::Error) -> Class {
    use ::object_store::Error as E;
    match e {
        E::NotFound { .. } => Class::NotFound,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Class::Denied,
        _ => match status_of(e) {
            Some(404) => Class::NotFound,
            Some(401 | 403) => Class::Denied,
            Some(408 | 429) => Class::Transient,
            Some(s) if (400..500).contains(&s) => Class::Refused,
            _ => Class::Transient,
        },
    }
}

/// The error and its causes, as one line.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// An [`ObjectError`] for a failed request on the object at `url`.
fn remote_error(url: &str, op: &'static str, e: ::object_store::Error) -> ObjectError {
    match classify(&e) {
        Class::NotFound => ObjectError::NotFound { key: url.into() },
        Class::Denied => ObjectError::Refused {
            key: url.into(),
            detail: format!("cannot {op}: access denied: {}", chain(&e)),
        },
        Class::Refused => ObjectError::Refused {
            key: url.into(),
            detail: format!("cannot {op}: {}", chain(&e)),
        },
        Class::Transient => ObjectError::io(url, op, io::Error::other(chain(&e))),
    }
}

fn ns(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse() {
        let l: S3Location = "s3://my-bucket/some/prefix/".parse().unwrap();
        assert_eq!(l.bucket, "my-bucket");
        assert_eq!(l.prefix, "some/prefix");
        assert_eq!(l.to_string(), "s3://my-bucket/some/prefix");
        assert_eq!(
            l.url_of("img/a.jpg"),
            "s3://my-bucket/some/prefix/img/a.jpg"
        );
        let root: S3Location = "s3://bucket".parse().unwrap();
        assert_eq!(root.prefix, "");
        assert_eq!(root.url_of("tasks.json"), "s3://bucket/tasks.json");
        for bad in [
            "s3://",
            "s3://ab",
            "s3://Upper",
            "s3://-dash",
            "s3://bucket/../x",
            "s3://bucket/a//b",
            "http://bucket/x",
            "s3://bucket_name",
        ] {
            assert!(bad.parse::<S3Location>().is_err(), "{bad}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(&[0xFF, 0xD8, 0xFF, 0xE0], false), "image/jpeg");
        assert_eq!(content_type(b"\x89PNG\r\n\x1a\n....", false), "image/png");
        assert_eq!(content_type(b"[{\"a\"", true), "application/json");
        assert_eq!(content_type(b"hello", false), "application/octet-stream");
    }
}
