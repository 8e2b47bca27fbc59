//! Writing resolved artifacts to local files (or one to a writer), every byte read through the integrity
//! module's verified stream, with temporary names renamed into place only when size and digests match and
//! the bytes are on disk (a [`DurableFile`] flushes them while the download goes on).

use std::{
    collections::BTreeMap,
    path::{Path as FsPath, PathBuf},
    sync::Arc,
};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::{ObjectStoreExt, path::Path};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::{
    FetchError,
    durable::DurableFile,
    select::{Location, Resolved, Wanted},
};
use crate::{
    format::layout::{UnsafePath, check_relative_path},
    integrity::{
        Check, IntegrityError, Md5Check, Origin, StreamError, VerifiedStream, stored_size,
    },
    jenkins::JenkinsClient,
    store::Store,
};

/// Whether a file was downloaded or already had the right content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Bytes were transferred.
    Downloaded,
    /// A local file already had the recorded digest; nothing was transferred.
    Present,
}

/// One artifact written.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// Jenkins `relativePath`.
    pub artifact: String,
    /// The local file (`None` for a writer).
    pub path: Option<PathBuf>,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
    /// Downloaded or already present.
    pub status: Status,
}

/// Progress reporting for downloads; the CLI draws bars, the library default draws nothing.
pub trait Progress: Send + Sync {
    /// An artifact download starts; `size` when known.
    fn start(&self, path: &str, size: Option<u64>) -> Box<dyn ItemProgress>;
}

/// Progress of one artifact.
pub trait ItemProgress: Send + Sync {
    /// `n` more bytes arrived.
    fn advance(&self, n: u64);
    /// The download ended (successfully or not).
    fn finish(&self, ok: bool);
}

/// Draws nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&self, _: &str, _: Option<u64>) -> Box<dyn ItemProgress> {
        Box::new(NoProgress)
    }
}

impl ItemProgress for NoProgress {
    fn advance(&self, _: u64) {}
    fn finish(&self, _: bool) {}
}

/// Options of [`Fetcher::fetch_to_dir`].
#[derive(Debug, Clone)]
pub struct DirOptions {
    /// The output directory (created if missing).
    pub dir: PathBuf,
    /// Drop the artifacts' directories; two artifacts with the same file name are then an error.
    pub flatten: bool,
    /// Download even when a local file already has the recorded digest.
    pub force: bool,
    /// Downloads at once.
    pub parallel: usize,
}

/// Downloads resolved artifacts from the store or Jenkins.
#[derive(Clone)]
pub struct Fetcher {
    store: Option<Store>,
    jenkins: Option<JenkinsClient>,
    progress: Arc<dyn Progress>,
    /// How large store objects are read (Jenkins downloads are one stream).
    ranged: Option<RangedReads>,
}

/// Parallel ranged reads of large store objects: the object is read as `part_size` ranges, `parallel` at a
/// time, and reassembled in order (so hashing and writing stay sequential and memory stays bounded at
/// `parallel × part_size`).
#[derive(Debug, Clone, Copy)]
pub struct RangedReads {
    /// Objects at least this large are read in ranges.
    pub min_size: u64,
    /// Range size.
    pub part_size: u64,
    /// Ranges in flight.
    pub parallel: usize,
}

impl RangedReads {
    /// Ranges of the store's part size (`mirror.part_size`, the size jam writes parts in), 4 at a time, for
    /// objects of 64 MiB or more.
    pub fn new(part_size: u64) -> RangedReads {
        RangedReads {
            min_size: 64 * 1024 * 1024,
            part_size,
            parallel: 4,
        }
    }
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("store", &self.store)
            .field("jenkins", &self.jenkins)
            .finish_non_exhaustive()
    }
}

type ByteStream = BoxStream<'static, Result<Bytes, FetchError>>;

impl Fetcher {
    /// A fetcher reading from the store, large objects in ranges of `part_size` (`mirror.part_size`).
    pub fn from_store(store: Store, part_size: u64) -> Fetcher {
        Fetcher {
            store: Some(store),
            jenkins: None,
            progress: Arc::new(NoProgress),
            ranged: Some(RangedReads::new(part_size)),
        }
    }

    /// A fetcher reading from Jenkins.
    pub fn from_jenkins(client: JenkinsClient) -> Fetcher {
        Fetcher {
            store: None,
            jenkins: Some(client),
            progress: Arc::new(NoProgress),
            ranged: None,
        }
    }

    /// Sets when and how large store objects are read in parallel ranges.
    pub fn with_ranged_reads(mut self, r: RangedReads) -> Fetcher {
        self.ranged = Some(r);
        self
    }

    /// Reports progress to `p`.
    pub fn with_progress(mut self, p: Arc<dyn Progress>) -> Fetcher {
        self.progress = p;
        self
    }

    /// Writes the artifacts under `opts.dir`, at most `opts.parallel` at once. Stops at the first error;
    /// files already renamed into place stay (they are verified), others leave nothing behind.
    pub async fn fetch_to_dir(
        &self,
        resolved: &Resolved,
        opts: &DirOptions,
    ) -> Result<Vec<Fetched>, FetchError> {
        let mut targets = Vec::new();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for a in &resolved.artifacts {
            check_relative_path(&a.path)?;
            let rel = if opts.flatten {
                a.path.rsplit('/').next().unwrap_or(&a.path).to_string()
            } else {
                a.path.clone()
            };
            check_relative_path(&rel)?;
            if let Some(other) = seen.insert(rel.clone(), &a.path) {
                return Err(FetchError::Flatten {
                    first: other.to_string(),
                    second: a.path.clone(),
                    file: rel,
                });
            }
            targets.push((a, rel));
        }
        tokio::fs::create_dir_all(&opts.dir)
            .await
            .map_err(io("cannot create directory", &opts.dir))?;
        let root = tokio::fs::canonicalize(&opts.dir)
            .await
            .map_err(io("cannot resolve directory", &opts.dir))?;
        let mut out: Vec<Option<Fetched>> = vec![None; targets.len()];
        let mut tasks = futures::stream::iter(targets.into_iter().enumerate())
            .map(|(i, (a, rel))| {
                let root = root.clone();
                async move { (i, self.fetch_file(a, &root, &rel, opts.force).await) }
            })
            .buffer_unordered(opts.parallel.max(1));
        while let Some((i, r)) = tasks.next().await {
            out[i] = Some(r?);
        }
        Ok(out.into_iter().flatten().collect())
    }

    async fn fetch_file(
        &self,
        a: &Wanted,
        root: &FsPath,
        rel: &str,
        force: bool,
    ) -> Result<Fetched, FetchError> {
        let dest = root.join(rel);
        let parent = dest.parent().unwrap_or(root).to_path_buf();
        tokio::fs::create_dir_all(&parent)
            .await
            .map_err(io("cannot create directory", &parent))?;
        // A symlinked directory inside the output directory must not lead out of it.
        let real_parent = tokio::fs::canonicalize(&parent)
            .await
            .map_err(io("cannot resolve directory", &parent))?;
        if !real_parent.starts_with(root) {
            return Err(FetchError::Unsafe(UnsafePath {
                path: rel.to_string(),
                reason: "it leads out of the output directory through a symbolic link",
            }));
        }
        let file_name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = real_parent.join(&file_name);
        if !force && let Some((size, sha256)) = already_present(a, &dest).await? {
            return Ok(Fetched {
                artifact: a.path.clone(),
                path: Some(dest),
                size,
                sha256,
                status: Status::Present,
            });
        }
        let tmp = real_parent.join(format!(
            ".{file_name}.{:08x}.jam-part",
            rand::random::<u32>()
        ));
        let mut guard = TempFile {
            path: Some(tmp.clone()),
        };
        let file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(io("cannot create", &tmp))?;
        let mut file = FileSink(DurableFile::new(file.into_std().await));
        let (size, sha256) = self.copy(a, &mut file).await?;
        file.0.finish().await.map_err(io("cannot write", &tmp))?;
        tokio::fs::rename(&tmp, &dest)
            .await
            .map_err(io("cannot rename into place", &dest))?;
        guard.path = None;
        Ok(Fetched {
            artifact: a.path.clone(),
            path: Some(dest),
            size,
            sha256,
            status: Status::Downloaded,
        })
    }

    /// Streams one artifact into `w`, verifying it at the end. The bytes are written before they can be
    /// verified, so on an integrity error `w` has received unverified bytes (the caller discards them).
    pub async fn fetch_to_writer<W: AsyncWrite + Unpin>(
        &self,
        a: &Wanted,
        w: &mut W,
    ) -> Result<Fetched, FetchError> {
        let (size, sha256) = self.copy(a, &mut WriterSink(&mut *w)).await?;
        w.flush()
            .await
            .map_err(io("cannot write", FsPath::new("-")))?;
        Ok(Fetched {
            artifact: a.path.clone(),
            path: None,
            size,
            sha256,
            status: Status::Downloaded,
        })
    }

    /// Streams one artifact through a [`VerifiedStream`] into `w`: its length (the manifest's or the
    /// announced one), its SHA-256 (the manifest's) and its MD5 (the Jenkins fingerprints) are checked, and a
    /// failed check ends the copy with an error before the caller can rename anything.
    async fn copy(&self, a: &Wanted, w: &mut impl Sink) -> Result<(u64, String), FetchError> {
        let (len, origin, body) = self.open(a).await?;
        let bar = self.progress.start(&a.path, a.size.or(len));
        let result = async {
            let mut verified = VerifiedStream::new(&a.path, origin, body)
                .expect_size(a.size.or(len))
                .expect_sha256(a.sha256.clone())
                .md5(md5_check(&a.md5))
                .on_bytes(|n| bar.advance(n));
            while let Some(chunk) = verified.next().await {
                let chunk = chunk.map_err(FetchError::from)?;
                w.put(chunk)
                    .await
                    .map_err(io("cannot write", FsPath::new(&a.path)))?;
            }
            let got = verified
                .into_digests()
                .expect("a stream that ended has passed its checks");
            Ok((got.size, got.sha256))
        }
        .await;
        bar.finish(result.is_ok());
        result
    }

    /// Opens the byte stream of an artifact; returns the length the source announced and where the bytes
    /// come from.
    async fn open(&self, a: &Wanted) -> Result<(Option<u64>, Origin, ByteStream), FetchError> {
        match &a.location {
            Location::Store(key) => {
                let store = self.store.as_ref().ok_or(FetchError::NoReader("store"))?;
                let origin = Origin::Store {
                    key: key.to_string(),
                };
                let r = match store.object_store().get(key).await {
                    Ok(r) => r,
                    Err(object_store::Error::NotFound { .. }) => {
                        let missing = IntegrityError::artifact(&a.path, origin, Check::Missing);
                        return Err(FetchError::Integrity(missing));
                    }
                    Err(source) => {
                        return Err(FetchError::StoreRead {
                            key: key.to_string(),
                            source,
                        });
                    }
                };
                let size = r.meta.size;
                if let Some(recorded) = a.size {
                    stored_size(&a.path, key.as_ref(), recorded, size)
                        .map_err(FetchError::Integrity)?;
                }
                if let Some(ranged) = self.ranged
                    && size >= ranged.min_size
                    && ranged.part_size > 0
                {
                    drop(r);
                    let body = ranged_body(ranged, store, key, size);
                    return Ok((Some(size), origin, body));
                }
                let k = key.to_string();
                let body = r
                    .into_stream()
                    .map_err(move |source| FetchError::StoreRead {
                        key: k.clone(),
                        source,
                    })
                    .boxed();
                Ok((Some(size), origin, body))
            }
            Location::Jenkins(url) => {
                let client = self
                    .jenkins
                    .as_ref()
                    .ok_or(FetchError::NoReader("Jenkins"))?;
                let d = client.download(url).await?;
                let origin = Origin::Jenkins { url: d.url };
                Ok((
                    d.content_length,
                    origin,
                    d.body.map_err(FetchError::from).boxed(),
                ))
            }
        }
    }
}

/// The object as consecutive ranges read `parallel` at a time, yielded in order.
fn ranged_body(ranged: RangedReads, store: &Store, key: &Path, size: u64) -> ByteStream {
    let part = ranged.part_size;
    let ranges: Vec<std::ops::Range<u64>> = (0..size.div_ceil(part))
        .map(|i| i * part..((i + 1) * part).min(size))
        .collect();
    let store = store.object_store().clone();
    let key = key.clone();
    futures::stream::iter(ranges)
        .map(move |r| {
            let store = store.clone();
            let key = key.clone();
            async move {
                store
                    .get_range(&key, r)
                    .await
                    .map_err(|source| FetchError::StoreRead {
                        key: key.to_string(),
                        source,
                    })
            }
        })
        .buffered(ranged.parallel.max(1))
        .boxed()
}

impl From<StreamError<FetchError>> for FetchError {
    fn from(e: StreamError<FetchError>) -> FetchError {
        match e {
            StreamError::Source(e) => e,
            StreamError::Integrity(e) => FetchError::Integrity(e),
        }
    }
}

/// Whether `dest` already holds the artifact: read through a [`VerifiedStream`], it has the recorded size
/// and SHA-256 (or, from Jenkins, where no SHA-256 is recorded, its one MD5 fingerprint).
async fn already_present(a: &Wanted, dest: &FsPath) -> Result<Option<(u64, String)>, FetchError> {
    let meta = match tokio::fs::metadata(dest).await {
        Ok(m) if m.is_file() => m,
        _ => return Ok(None),
    };
    if a.sha256.is_none() && a.md5.len() != 1 {
        return Ok(None);
    }
    if a.size.is_some_and(|s| s != meta.len()) {
        return Ok(None);
    }
    let file = tokio::fs::File::open(dest)
        .await
        .map_err(io("cannot read", dest))?;
    let origin = Origin::File {
        path: dest.to_path_buf(),
    };
    let mut verified = VerifiedStream::new(&a.path, origin, read_file(file))
        .expect_size(a.size)
        .expect_sha256(a.sha256.clone())
        .md5(if a.sha256.is_none() {
            md5_check(&a.md5)
        } else {
            Md5Check::Off
        });
    while let Some(chunk) = verified.next().await {
        match chunk {
            Ok(_) => {}
            Err(StreamError::Integrity(_)) => return Ok(None),
            Err(StreamError::Source(e)) => return Err(io("cannot read", dest)(e)),
        }
    }
    Ok(verified.into_digests().map(|d| (d.size, d.sha256)))
}

/// A local file as a byte stream, in 256 KiB chunks.
fn read_file(file: tokio::fs::File) -> BoxStream<'static, std::io::Result<Bytes>> {
    futures::stream::try_unfold(file, |mut file| async move {
        let mut buf = bytes::BytesMut::with_capacity(256 * 1024);
        let n = file.read_buf(&mut buf).await?;
        Ok((n > 0).then(|| (buf.freeze(), file)))
    })
    .boxed()
}

/// The MD5 check for an artifact's fingerprints (none recorded: none computed).
fn md5_check(fingerprints: &[String]) -> Md5Check {
    if fingerprints.is_empty() {
        Md5Check::Off
    } else {
        Md5Check::OneOf(fingerprints.to_vec())
    }
}

/// Where [`Fetcher::copy`] puts the bytes as they pass (before the end of the stream verifies them).
trait Sink {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()>;
}

/// A local file, written and flushed in the background.
struct FileSink(DurableFile);

impl Sink for FileSink {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.0.write(chunk).await
    }
}

/// Any async writer (standard output).
struct WriterSink<'a, W>(&'a mut W);

impl<W: AsyncWrite + Unpin> Sink for WriterSink<'_, W> {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.0.write_all(&chunk).await
    }
}

/// Removes a temporary file when dropped, unless it was renamed into place.
struct TempFile {
    path: Option<PathBuf>,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn io<'a>(what: &'static str, path: &'a FsPath) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |source| FetchError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
