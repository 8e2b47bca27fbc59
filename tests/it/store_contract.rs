//! The storage contract: everything jam needs from a store, checked through the same `Store` API the mirror
//! uses, on every backend jam supports: process memory, a local directory, SeaweedFS and moto.
//!
//! One function, [`contract`], holds every check; each backend has one test that calls it. The S3 servers
//! come from `tests/run.sh` (see `support`); each S3 test works under a fresh prefix of the shared bucket.

use std::collections::BTreeSet;

use bytes::Bytes;
use futures::{StreamExt, stream};
use jam::{
    format::layout::{self, JobPath, Layout, Permalink},
    integrity::{Check, Digests, Md5Check, Origin, StreamError, VerifiedStream},
    jenkins::JenkinsError,
    store::journal::{AloneOnTheStore, ListedUploads, UploadJournal},
    store::write::{ByteBudget, StreamWrite, TransferError, TransferLimits},
    store::{Backend, Created, Store},
};
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion, path::Path};
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::support::{self, S3Kind, S3Target};

const MIB: u64 = 1024 * 1024;
/// Size of the multipart artifact: 64 MiB and a ragged tail, so the last part is short.
const BIG: u64 = 64 * MIB + 12_345;
/// Multipart part size for the transfers here.
const PART: usize = 8 * MIB as usize;
/// Size of the chunks the synthetic "Jenkins" stream yields.
const CHUNK: usize = 256 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_memory() {
    let store = support::memory_store();
    contract(&store, "memory", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_local() {
    let (_dir, store) = support::local_store();
    contract(&store, "local", None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_seaweedfs() {
    let Some(target) = support::s3_target(S3Kind::Seaweed) else {
        return;
    };
    contract(&target.store, S3Kind::Seaweed.name(), Some(&target)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_moto() {
    let Some(target) = support::s3_target(S3Kind::Moto) else {
        return;
    };
    contract(&target.store, S3Kind::Moto.name(), Some(&target)).await;
}

/// The orphan check has teeth: an upload left pending (dropped without abort, as a crash would leave it) is
/// seen by `support::pending_multipart_uploads`, and is gone once aborted.
async fn pending_uploads_are_seen(kind: S3Kind) {
    let Some(t) = support::s3_target(kind) else {
        return;
    };
    let k = key("pending/left-behind.bin");
    let mut upload = t.store.object_store().put_multipart(&k).await.unwrap();
    upload
        .put_part(PutPayload::from(vec![7u8; 5 * MIB as usize]))
        .await
        .unwrap();
    let full = format!("{}/{k}", t.prefix);
    let pending = support::pending_multipart_uploads(&t.env, &format!("{}/pending/", t.prefix));
    if let Some(pending) = pending {
        assert_eq!(
            pending,
            vec![full.clone()],
            "{}: the pending upload is listed",
            kind.name()
        );
    }
    upload.abort().await.unwrap();
    if let Some(pending) = support::pending_multipart_uploads(&t.env, &full) {
        assert!(
            pending.is_empty(),
            "{}: aborted, yet listed: {pending:?}",
            kind.name()
        );
    }
    println!("pending multipart uploads are visible: {}", kind.name());
}

#[tokio::test]
async fn pending_uploads_are_seen_seaweedfs() {
    pending_uploads_are_seen(S3Kind::Seaweed).await;
}

#[tokio::test]
async fn pending_uploads_are_seen_moto() {
    pending_uploads_are_seen(S3Kind::Moto).await;
}

/// Every check a store must pass. `s3` is the target behind `store` when it is on an S3 server: then the
/// checks also look at the bucket with the independent aws CLI (pending multipart uploads, raw keys).
async fn contract(store: &Store, name: &str, s3: Option<&S3Target>) {
    let started = std::time::Instant::now();
    put_get_head(store, name).await;
    range_get(store, name).await;
    list_by_prefix(store, name).await;
    list_one_level(store, name).await;
    small_transfer(store, name).await;
    multipart_transfer(store, name).await;
    aborted_multipart(store, name, s3).await;
    journal_aborts_leftovers(store, name, s3).await;
    conditional_create(store, name).await;
    conditional_update(store, name).await;
    stale_etag(store, name).await;
    delete(store, name).await;
    awkward_keys(store, name, s3).await;
    everything_can_be_deleted(store, name).await;
    println!(
        "contract passed: {name} ({}) in {:.1?}",
        store.describe(),
        started.elapsed()
    );
}

fn key(k: &str) -> Path {
    Store::path(k).unwrap_or_else(|e| panic!("{e}"))
}

async fn put_get_head(store: &Store, name: &str) {
    let k = key("basic/hello.txt");
    let body = Bytes::from_static(b"hello, jam\n");
    store.put(&k, body.clone()).await.expect("put");
    let (got, meta) = store.get(&k).await.expect("get").expect("object exists");
    assert_eq!(got, body, "{name}: get returns what put wrote");
    assert_eq!(meta.size, body.len() as u64, "{name}: get's size");
    assert_eq!(meta.location, k, "{name}: get's location");
    let head = store.head(&k).await.expect("head").expect("head finds it");
    assert_eq!(head.size, body.len() as u64, "{name}: head's size");
    assert_eq!(head.location, k, "{name}: head's location");

    // Overwrite.
    store
        .put(&k, Bytes::from_static(b"second"))
        .await
        .expect("put");
    let (got, _) = store.get(&k).await.unwrap().unwrap();
    assert_eq!(&got[..], b"second", "{name}: put replaces");

    // Missing objects are None, not errors.
    let missing = key("basic/missing.txt");
    assert!(store.get(&missing).await.expect("get missing").is_none());
    assert!(store.head(&missing).await.expect("head missing").is_none());
    let err = store
        .object_store()
        .get(&missing)
        .await
        .expect_err("raw get of a missing key fails");
    assert!(
        matches!(err, object_store::Error::NotFound { .. }),
        "{name}: missing is NotFound, got {err:?}"
    );
}

async fn range_get(store: &Store, name: &str) {
    let k = key("range/digits");
    store
        .put(&k, Bytes::from_static(b"0123456789abcdef"))
        .await
        .unwrap();
    let os = store.object_store();
    assert_eq!(
        &os.get_range(&k, 3..9).await.unwrap()[..],
        b"345678",
        "{name}"
    );
    assert_eq!(&os.get_range(&k, 0..1).await.unwrap()[..], b"0", "{name}");
    assert_eq!(
        &os.get_range(&k, 10..16).await.unwrap()[..],
        b"abcdef",
        "{name}: a range up to the end"
    );
}

async fn put_all(store: &Store, keys: &[&str]) {
    for k in keys {
        store
            .put(&key(k), Bytes::copy_from_slice(k.as_bytes()))
            .await
            .unwrap_or_else(|e| panic!("put {k}: {e}"));
    }
}

fn locations(metas: &[object_store::ObjectMeta]) -> BTreeSet<String> {
    metas.iter().map(|m| m.location.to_string()).collect()
}

fn set(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| k.to_string()).collect()
}

async fn list_by_prefix(store: &Store, name: &str) {
    put_all(
        store,
        &[
            "list/a/b/1",
            "list/a/b/deep/2",
            "list/a/bc/3",
            "list/a/b.txt",
            "list/ab/4",
        ],
    )
    .await;
    let got = locations(&store.list_all(&key("list/a/b")).await.unwrap());
    assert_eq!(
        got,
        set(&["list/a/b/1", "list/a/b/deep/2"]),
        "{name}: a prefix matches whole segments: list/a/b must not match list/a/bc/… or list/a/b.txt"
    );
    let got = locations(&store.list_all(&key("list/a")).await.unwrap());
    assert_eq!(
        got,
        set(&[
            "list/a/b/1",
            "list/a/b/deep/2",
            "list/a/bc/3",
            "list/a/b.txt"
        ]),
        "{name}: recursive list"
    );
    let got = locations(&store.list_all(&key("list/nothing")).await.unwrap());
    assert!(got.is_empty(), "{name}: an empty prefix lists nothing");
}

async fn list_one_level(store: &Store, name: &str) {
    // Uses the objects list_by_prefix wrote.
    let (objects, prefixes) = store.list_dir(&key("list/a")).await.unwrap();
    assert_eq!(
        locations(&objects),
        set(&["list/a/b.txt"]),
        "{name}: list_dir objects"
    );
    let prefixes: BTreeSet<String> = prefixes.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        prefixes,
        set(&["list/a/b", "list/a/bc"]),
        "{name}: list_dir common prefixes"
    );
    let (objects, prefixes) = store.list_dir(&key("list/a/b/deep")).await.unwrap();
    assert_eq!(locations(&objects), set(&["list/a/b/deep/2"]), "{name}");
    assert!(prefixes.is_empty(), "{name}: no prefixes below a leaf");
}

// ----------------------------------------------------------------------------------------------------------
// Transfers through jam's real upload path.

fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Bytes `offset..offset + len` of the synthetic artifact: a pseudo-random function of the position, so any
/// range can be recomputed without keeping the artifact.
fn synthetic(offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut pos = offset;
    while out.len() < len {
        let word = splitmix(pos / 8).to_le_bytes();
        let at = (pos % 8) as usize;
        let take = (8 - at).min(len - out.len());
        out.extend_from_slice(&word[at..at + take]);
        pos += take as u64;
    }
    out
}

/// SHA-256 (hex) of the first `total` synthetic bytes, computed apart from jam.
fn synthetic_sha256(total: u64) -> String {
    let mut h = Sha256::new();
    let mut pos = 0;
    while pos < total {
        let n = CHUNK.min((total - pos) as usize);
        h.update(synthetic(pos, n));
        pos += n as u64;
    }
    hex::encode(h.finalize())
}

/// What the synthetic source does besides yielding bytes.
#[derive(Clone)]
enum Fault {
    /// Nothing: `total` bytes, then the end.
    None,
    /// The connection breaks once this many bytes have been sent.
    BreakAt(u64),
    /// This token is cancelled once this many bytes have been sent (a shutdown midway).
    CancelAt(u64, CancellationToken),
}

/// A download as jam's Jenkins client hands it over: the announced length and the body.
struct Download {
    content_length: Option<u64>,
    body: futures::stream::BoxStream<'static, Result<Bytes, JenkinsError>>,
}

/// A download of `total` synthetic bytes in [`CHUNK`]-sized chunks, as jam's Jenkins client would hand it over.
fn synthetic_download(total: u64, content_length: Option<u64>, fault: Fault) -> Download {
    let url = "http://jenkins.invalid/job/x/1/artifact/big.bin".to_string();
    let body = stream::unfold((0u64, false), move |(pos, done)| {
        let fault = fault.clone();
        let url = url.clone();
        async move {
            if done || pos >= total {
                return None;
            }
            match fault {
                Fault::BreakAt(at) if pos >= at => {
                    let err = JenkinsError::Transport {
                        url,
                        message: "connection reset (test)".into(),
                        attempts: 1,
                    };
                    return Some((Err(err), (pos, true)));
                }
                Fault::CancelAt(at, token) if pos >= at => token.cancel(),
                _ => {}
            }
            let n = CHUNK.min((total - pos) as usize);
            Some((Ok(Bytes::from(synthetic(pos, n))), (pos + n as u64, false)))
        }
    });
    Download {
        content_length,
        body: Box::pin(body),
    }
}

fn limits() -> TransferLimits {
    TransferLimits {
        part_size: PART,
        part_uploads: 2,
        budget: ByteBudget::new(64 * MIB),
    }
}

type UploadError = TransferError<StreamError<JenkinsError>>;

/// The mirror's write path: the download read through a verified stream (its length checked, SHA-256 and
/// MD5 computed), written by the store.
async fn run_upload(
    store: &Store,
    k: &Path,
    download: Download,
    cancel: &CancellationToken,
) -> Result<Digests, UploadError> {
    let journal = UploadJournal::new(store.clone(), "contract");
    let origin = Origin::Jenkins {
        url: "http://jenkins.invalid/job/x/1/artifact/big.bin".into(),
    };
    let mut body = VerifiedStream::new("big.bin", origin, download.body)
        .expect_size(download.content_length)
        .md5(Md5Check::Compute);
    let write = StreamWrite {
        length: download.content_length,
        limits: &limits(),
        journal: Some(&journal),
        cancel,
        fence: None,
    };
    let written = store.put_stream(k, &mut body, write).await?;
    let digests = body.into_digests().expect("verified");
    assert_eq!(
        written, digests.size,
        "the store wrote what the stream passed"
    );
    Ok(digests)
}

/// SHA-256 (hex) and size of an object, streamed back from the store.
async fn read_back(store: &Store, k: &Path) -> (String, u64) {
    let mut body = store
        .object_store()
        .get(k)
        .await
        .unwrap_or_else(|e| panic!("get {k}: {e}"))
        .into_stream();
    let mut h = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap_or_else(|e| panic!("reading {k}: {e}"));
        n += chunk.len() as u64;
        h.update(&chunk);
    }
    (hex::encode(h.finalize()), n)
}

/// An artifact that fits one part goes up in one PUT.
async fn small_transfer(store: &Store, name: &str) {
    let k = key("transfer/small.bin");
    let total = MIB + 7;
    let t = run_upload(
        store,
        &k,
        synthetic_download(total, Some(total), Fault::None),
        &CancellationToken::new(),
    )
    .await
    .unwrap_or_else(|e| panic!("{name}: small upload: {e}"));
    let want = synthetic_sha256(total);
    assert_eq!(
        (t.size, t.sha256.as_str()),
        (total, want.as_str()),
        "{name}"
    );
    assert_eq!(
        read_back(store, &k).await,
        (want, total),
        "{name}: small read back"
    );
}

/// A 64 MiB artifact goes up as a multipart upload, of known and of unknown length, and reads back intact.
async fn multipart_transfer(store: &Store, name: &str) {
    let want = synthetic_sha256(BIG);
    for (k, length) in [
        (key("transfer/big-known.bin"), Some(BIG)),
        (key("transfer/big-unknown.bin"), None),
    ] {
        let t = run_upload(
            store,
            &k,
            synthetic_download(BIG, length, Fault::None),
            &CancellationToken::new(),
        )
        .await
        .unwrap_or_else(|e| panic!("{name}: multipart upload of {k}: {e}"));
        assert_eq!(t.size, BIG, "{name}: {k}: size jam counted");
        assert_eq!(t.sha256, want, "{name}: {k}: SHA-256 jam computed");
        let head = store.head(&k).await.unwrap().expect("uploaded object");
        assert_eq!(head.size, BIG, "{name}: {k}: size the store reports");
        assert_eq!(
            read_back(store, &k).await,
            (want.clone(), BIG),
            "{name}: {k}: what reads back"
        );
        // A range across the first part boundary, and the ragged tail.
        let part = PART as u64;
        let got = store
            .object_store()
            .get_range(&k, part - 100..part + 100)
            .await
            .unwrap();
        assert_eq!(
            &got[..],
            &synthetic(part - 100, 200)[..],
            "{name}: {k}: range across parts"
        );
        let got = store
            .object_store()
            .get_range(&k, BIG - 10..BIG)
            .await
            .unwrap();
        assert_eq!(
            &got[..],
            &synthetic(BIG - 10, 10)[..],
            "{name}: {k}: tail range"
        );
    }
}

/// A multipart upload that fails midway (the source breaks, or a shutdown cancels it) leaves no object,
/// and on S3 no pending upload; on a local directory no staging file.
async fn aborted_multipart(store: &Store, name: &str, s3: Option<&S3Target>) {
    let broken = key("abort/broken.bin");
    let err = run_upload(
        store,
        &broken,
        synthetic_download(BIG, Some(BIG), Fault::BreakAt(20 * MIB)),
        &CancellationToken::new(),
    )
    .await
    .expect_err("a broken source fails the upload");
    assert!(
        matches!(err, TransferError::Source(StreamError::Source(_))),
        "{name}: {err:?}"
    );

    let cancelled = key("abort/cancelled.bin");
    let token = CancellationToken::new();
    let err = run_upload(
        store,
        &cancelled,
        synthetic_download(BIG, None, Fault::CancelAt(20 * MIB, token.clone())),
        &token,
    )
    .await
    .expect_err("a cancelled upload fails");
    assert!(matches!(err, TransferError::Cancelled), "{name}: {err:?}");

    // Bodies shorter or longer than their Content-Length, small (one PUT) and large (multipart): the
    // verified stream fails in place of ending, so the store never completes them.
    let mut wrong_length = Vec::new();
    for (total, announced) in [
        (MIB, MIB + 1),
        (MIB + 1, MIB),
        (BIG - 1, BIG),
        (BIG + 1, BIG),
        (3 * PART as u64, 2 * PART as u64),
    ] {
        let k = key(&format!("abort/length-{total}-of-{announced}.bin"));
        let err = run_upload(
            store,
            &k,
            synthetic_download(total, Some(announced), Fault::None),
            &CancellationToken::new(),
        )
        .await
        .expect_err("a body of the wrong length fails the upload");
        let Some(Check::Length { expected, actual }) = (match &err {
            TransferError::Source(StreamError::Integrity(e)) => e.check().cloned(),
            _ => None,
        }) else {
            panic!("{name}: {total} bytes announced as {announced}: {err:?}");
        };
        assert_eq!(expected, announced, "{name}: {err}");
        if total < announced {
            assert_eq!(
                actual, total,
                "{name}: a short body counts every byte: {err}"
            );
        } else {
            assert!(
                actual > announced && actual <= announced + CHUNK as u64,
                "{name}: a long body stops at the first chunk past the length: {err}"
            );
        }
        wrong_length.push(k);
    }

    for k in [&broken, &cancelled].into_iter().chain(&wrong_length) {
        assert!(
            store.head(k).await.unwrap().is_none(),
            "{name}: an aborted upload left an object at {k}"
        );
    }
    let left = store.list_all(&key("abort")).await.unwrap();
    assert!(
        left.is_empty(),
        "{name}: aborted uploads left {:?}",
        locations(&left)
    );

    match store.backend() {
        Backend::S3 => {
            let t = s3.expect("an S3 store comes with its target");
            let prefix = format!("{}/abort/", t.prefix);
            if let Some(pending) = support::pending_multipart_uploads(&t.env, &prefix) {
                assert!(
                    pending.is_empty(),
                    "{name}: aborted uploads are still pending on the server (orphaned parts): {pending:?}"
                );
            }
        }
        Backend::Local => {
            // The staging files of an aborted LocalFileSystem upload live beside the target.
            let dir = std::path::Path::new(store.describe()).join("abort");
            let files: Vec<_> = std::fs::read_dir(&dir)
                .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
                .unwrap_or_default();
            assert!(
                files.is_empty(),
                "{name}: aborted uploads left files {files:?}"
            );
        }
        Backend::Memory => {}
    }
}

/// A guard that leaves every listed upload alone (as while another worker holds the build).
struct Defer;

#[async_trait::async_trait]
impl ListedUploads for Defer {
    async fn abortable(&self, _key: &Path, _listed: Vec<String>) -> Option<Vec<String>> {
        None
    }
}

/// An upload left open by a killed worker (created, one part sent, never completed) is recorded in the
/// journal; the next start of the same worker aborts it, and no upload stays pending on the server.
async fn journal_aborts_leftovers(store: &Store, name: &str, s3: Option<&S3Target>) {
    let Some(mp) = store.multipart() else {
        assert_eq!(
            store.backend(),
            Backend::Local,
            "{name}: only the local directory lacks the multipart API"
        );
        return;
    };
    let journal = UploadJournal::new(store.clone(), "killed-worker");
    let k = key("journal/left-open.bin");
    let id = mp.create_multipart(&k).await.unwrap();
    mp.put_part(&k, &id, 0, PutPayload::from(synthetic(0, PART)))
        .await
        .unwrap();
    journal.record(&k, &id).await.unwrap();
    let other = UploadJournal::new(store.clone(), "another-worker");
    assert_eq!(
        other.abort_leftovers(&AloneOnTheStore).await.unwrap(),
        0,
        "{name}: a worker only aborts its own uploads"
    );
    assert_eq!(
        journal.abort_leftovers(&AloneOnTheStore).await.unwrap(),
        1,
        "{name}: the leftover upload is aborted"
    );
    assert_eq!(
        journal.abort_leftovers(&AloneOnTheStore).await.unwrap(),
        0,
        "{name}: and forgotten"
    );
    assert!(
        store.head(&k).await.unwrap().is_none(),
        "{name}: no object appeared"
    );
    if let Some(t) = s3 {
        let prefix = format!("{}/journal/", t.prefix);
        if let Some(pending) = support::pending_multipart_uploads(&t.env, &prefix) {
            assert!(
                pending.is_empty(),
                "{name}: still pending after the journal's abort: {pending:?}"
            );
        }
    }
    // Killed between creating the upload and recording its id: on S3 the journal finds it by its key.
    if let Some(t) = s3 {
        let k2 = key("journal/id-never-recorded.bin");
        journal.intend(&k2).await.unwrap();
        let id2 = mp.create_multipart(&k2).await.unwrap();
        mp.put_part(&k2, &id2, 0, PutPayload::from(synthetic(0, PART)))
            .await
            .unwrap();
        assert_eq!(
            journal.abort_leftovers(&Defer).await.unwrap(),
            0,
            "{name}: a guard that defers (another worker holds the build) keeps the listed upload"
        );
        assert_eq!(
            journal.abort_leftovers(&AloneOnTheStore).await.unwrap(),
            1,
            "{name}: the upload whose id was never recorded is found and aborted"
        );
        let prefix = format!("{}/journal/", t.prefix);
        if let Some(pending) = support::pending_multipart_uploads(&t.env, &prefix) {
            assert!(pending.is_empty(), "{name}: still pending: {pending:?}");
        }
    }
    // Completed and aborted transfers left no journal entries behind.
    let entries = store
        .list_all(&Path::from(".jam/uploads/contract"))
        .await
        .unwrap();
    assert!(
        entries.is_empty(),
        "{name}: journal entries left: {:?}",
        locations(&entries)
    );
    store
        .delete(&Path::from(".jam/uploads/killed-worker"))
        .await
        .unwrap();
}

// ----------------------------------------------------------------------------------------------------------
// Conditional writes.

async fn conditional_create(store: &Store, name: &str) {
    let k = key("cond/42/manifest.json");
    assert_eq!(
        store
            .create(&k, Bytes::from_static(b"first"))
            .await
            .unwrap(),
        Created::Created,
        "{name}: the first create writes"
    );
    assert_eq!(
        store
            .create(&k, Bytes::from_static(b"second"))
            .await
            .unwrap(),
        Created::Existed,
        "{name}: the second create finds the first"
    );
    let (got, _) = store.get(&k).await.unwrap().unwrap();
    assert_eq!(&got[..], b"first", "{name}: create never overwrites");

    // Racing creates: exactly one wins, and the object is the winner's.
    const RACERS: usize = 12;
    for round in 0..4 {
        let k = key(&format!("cond/race-{round}/manifest.json"));
        let tasks: Vec<_> = (0..RACERS)
            .map(|i| {
                let store = store.clone();
                let k = k.clone();
                tokio::spawn(async move {
                    let r = store.create(&k, Bytes::from(format!("writer {i}"))).await;
                    (i, r.unwrap_or_else(|e| panic!("create: {e}")))
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (i, created) = t.await.expect("creator task");
            if created == Created::Created {
                winners.push(i);
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "{name}: {RACERS} racing creates of {k}: writers {winners:?} all think they created it"
        );
        let (got, _) = store.get(&k).await.unwrap().unwrap();
        assert_eq!(
            got,
            format!("writer {}", winners[0]).as_bytes(),
            "{name}: the object is the winner's"
        );
    }
}

/// Concurrent read-modify-write updates all land: 8 writers × 5 increments end at 40.
async fn conditional_update(store: &Store, name: &str) {
    const WRITERS: u64 = 8;
    const EACH: u64 = 5;
    let k = key("cond/counter");
    let mut tasks = Vec::new();
    for _ in 0..WRITERS {
        let store = store.clone();
        let k = k.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..EACH {
                let wrote = store
                    .update(&k, |cur| {
                        let n: u64 = cur.map_or(0, |b| {
                            std::str::from_utf8(b).unwrap().trim().parse().unwrap()
                        });
                        Some(Bytes::from((n + 1).to_string()))
                    })
                    .await
                    .unwrap_or_else(|e| panic!("update: {e}"));
                assert!(wrote);
            }
        }));
    }
    for t in tasks {
        t.await.expect("updater task");
    }
    let (got, _) = store.get(&k).await.unwrap().unwrap();
    assert_eq!(
        std::str::from_utf8(&got).unwrap(),
        (WRITERS * EACH).to_string(),
        "{name}: concurrent updates were lost (compare-and-swap does not hold)"
    );

    // An update that declines writes nothing.
    let wrote = store.update(&k, |_| None).await.unwrap();
    assert!(!wrote, "{name}: a declined update reports no write");
    let (got, _) = store.get(&k).await.unwrap().unwrap();
    assert_eq!(std::str::from_utf8(&got).unwrap(), "40", "{name}");
}

/// A raw conditional update carrying a stale ETag is refused with `Precondition` (S3 and memory; a local
/// directory has no conditional update at all, which `Store::update` works around with a lock).
async fn stale_etag(store: &Store, name: &str) {
    let k = key("cond/pointer.json");
    store
        .put(&k, Bytes::from_static(b"{\"n\":1}"))
        .await
        .unwrap();
    let old = store.head(&k).await.unwrap().unwrap();
    store
        .put(&k, Bytes::from_static(b"{\"n\":2}"))
        .await
        .unwrap();
    let new = store.head(&k).await.unwrap().unwrap();
    let put = |meta: &object_store::ObjectMeta, body: &'static [u8]| {
        let opts = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: meta.e_tag.clone(),
                version: meta.version.clone(),
            }),
            ..Default::default()
        };
        store
            .object_store()
            .put_opts(&k, PutPayload::from_static(body), opts)
    };
    let stale = put(&old, b"{\"n\":99}").await;
    match store.backend() {
        Backend::S3 | Backend::Memory => {
            assert!(
                old.e_tag.is_some() && old.e_tag != new.e_tag,
                "{name}: two different writes have distinct ETags ({:?}, {:?})",
                old.e_tag,
                new.e_tag
            );
            assert!(
                matches!(stale, Err(object_store::Error::Precondition { .. })),
                "{name}: a put with a stale ETag must fail with Precondition, got {stale:?}"
            );
            let (got, _) = store.get(&k).await.unwrap().unwrap();
            assert_eq!(
                &got[..],
                b"{\"n\":2}",
                "{name}: the stale write changed the object"
            );
            put(&new, b"{\"n\":3}")
                .await
                .unwrap_or_else(|e| panic!("{name}: a put with the current ETag: {e}"));
            let (got, _) = store.get(&k).await.unwrap().unwrap();
            assert_eq!(&got[..], b"{\"n\":3}", "{name}");
        }
        Backend::Local => {
            assert!(
                matches!(stale, Err(object_store::Error::NotImplemented { .. })),
                "{name}: LocalFileSystem has no conditional update (if it gained one, drop Store::update's lock): {stale:?}"
            );
        }
    }
}

async fn delete(store: &Store, name: &str) {
    let k = key("basic/hello.txt");
    assert!(store.head(&k).await.unwrap().is_some());
    store.delete(&k).await.expect("delete");
    assert!(store.head(&k).await.unwrap().is_none(), "{name}: deleted");
    store.delete(&k).await.expect("deleting it again is Ok");
    store
        .delete(&key("never/was/here"))
        .await
        .expect("deleting a key that never existed is Ok");
}

// ----------------------------------------------------------------------------------------------------------
// Keys with awkward characters.

/// Keys as jam's layout builds them, with every kind of escape and every character `raw_encode` keeps.
fn awkward_key_strings() -> Vec<String> {
    let l = Layout::new("src");
    let team = JobPath::new(["My Team", "feature%2Fx"]);
    let mut keys = vec![
        l.artifact_key(&team, 7, "dist/ü (1)+x.jar").unwrap(),
        l.artifact_key(&team, 7, "dist/a'b(c)+d,e=f@g!h$i&j*k.txt")
            .unwrap(),
        l.artifact_key(&team, 7, "dist/50% ~[x]{y}#1?^`|\"<>.txt")
            .unwrap(),
        l.artifact_key(&team, 7, "dist/plain.jar").unwrap(),
        l.manifest_key(&team, 7),
        l.pointer_key(&team, Permalink::LastSuccessfulBuild),
        l.index_key(&team),
        // `release/1.0` is not a valid Jenkins name, but key_segment must keep it one segment: `%2F`.
        l.artifact_key(
            &JobPath::new(["Déploiement", "release/1.0"]),
            12,
            "out/日本語 ü.txt",
        )
        .unwrap(),
        l.manifest_key(&JobPath::new([".."]), 1),
        l.manifest_key(&JobPath::new(["."]), 1),
    ];
    for c in [
        '\'', '(', ')', '+', ',', '=', '@', '!', '$', '&', '*', '-', '_', '.',
    ] {
        keys.push(
            l.artifact_key(&JobPath::new(["chars"]), 1, &format!("one/x{c}y.bin"))
                .unwrap(),
        );
    }
    keys
}

async fn awkward_keys(store: &Store, name: &str, s3: Option<&S3Target>) {
    let keys: Vec<String> = awkward_key_strings()
        .into_iter()
        .map(|k| format!("keys/{k}"))
        .collect();
    // The layout's own promise: every key is a valid path that round-trips as text.
    for k in &keys {
        assert_eq!(
            layout::path(k).as_ref(),
            k.as_str(),
            "layout::path changed {k}"
        );
    }
    let mut problems: Vec<String> = Vec::new();
    for k in &keys {
        if let Err(e) = store
            .put(&layout::path(k), Bytes::copy_from_slice(k.as_bytes()))
            .await
        {
            problems.push(format!("put {k}: {e}"));
        }
    }

    // Listing returns exactly the key strings that were written.
    let want: BTreeSet<String> = keys.iter().cloned().collect();
    let listed = locations(&store.list_all(&key("keys")).await.unwrap());
    for missing in want.difference(&listed) {
        problems.push(format!("list_all does not return {missing}"));
    }
    for extra in listed.difference(&want) {
        problems.push(format!("list_all returns {extra}, which was never written"));
    }

    // Each reads back by its key, with its own content.
    for k in &keys {
        match store.get(&layout::path(k)).await {
            Ok(Some((body, meta))) => {
                if body != k.as_bytes() {
                    problems.push(format!(
                        "get {k} returned the content of {:?}",
                        String::from_utf8_lossy(&body)
                    ));
                }
                if meta.location.as_ref() != k {
                    problems.push(format!("get {k} reports location {}", meta.location));
                }
            }
            Ok(None) => problems.push(format!("get {k}: not found")),
            Err(e) => problems.push(format!("get {k}: {e}")),
        }
    }

    // One level at a time.
    let team = Layout::new("src").build_prefix(&JobPath::new(["My Team", "feature%2Fx"]), 7);
    let dist = format!("keys/{team}/artifact/dist");
    let (objects, prefixes) = store.list_dir(&layout::path(&dist)).await.unwrap();
    let want_dist: BTreeSet<String> = keys
        .iter()
        .filter(|k| k.starts_with(&format!("{dist}/")))
        .cloned()
        .collect();
    if locations(&objects) != want_dist || !prefixes.is_empty() {
        problems.push(format!(
            "list_dir {dist}: objects {:?} and prefixes {prefixes:?}, expected objects {want_dist:?}",
            locations(&objects)
        ));
    }
    let jobs = "keys/src/job";
    let (objects, prefixes) = store.list_dir(&layout::path(jobs)).await.unwrap();
    let got: BTreeSet<String> = prefixes.iter().map(|p| p.to_string()).collect();
    let want_jobs = set(&[
        "keys/src/job/My%20Team",
        "keys/src/job/D%C3%A9ploiement",
        "keys/src/job/%2E%2E",
        "keys/src/job/%2E",
        "keys/src/job/chars",
    ]);
    if got != want_jobs || !objects.is_empty() {
        problems.push(format!(
            "list_dir {jobs}: prefixes {got:?} and objects {:?}, expected prefixes {want_jobs:?}",
            locations(&objects)
        ));
    }

    // What any other S3 client sees: the very same key strings in the bucket.
    if let Some(t) = s3 {
        let prefix = format!("{}/keys/", t.prefix);
        if let Some(raw) = support::list_keys_with_cli(&t.env, &prefix) {
            let raw: BTreeSet<String> = raw
                .into_iter()
                .map(|k| {
                    k.strip_prefix(&format!("{}/", t.prefix))
                        .unwrap_or(&k)
                        .to_string()
                })
                .collect();
            for missing in want.difference(&raw) {
                problems.push(format!("the aws CLI does not find {missing} in the bucket"));
            }
            for extra in raw.difference(&want) {
                problems.push(format!(
                    "the aws CLI finds {extra} in the bucket, never written as such"
                ));
            }
        }
    }

    assert!(
        problems.is_empty(),
        "{name}: keys do not round-trip exactly ({} problems):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

/// Everything the contract wrote can be listed and deleted, awkward keys included; the store ends empty.
async fn everything_can_be_deleted(store: &Store, name: &str) {
    let all = store.list_all(&Path::default()).await.unwrap();
    assert!(!all.is_empty(), "{name}: the contract wrote objects");
    for m in &all {
        store
            .delete(&m.location)
            .await
            .unwrap_or_else(|e| panic!("{name}: delete {}: {e}", m.location));
    }
    let left = store.list_all(&Path::default()).await.unwrap();
    assert!(
        left.is_empty(),
        "{name}: left after deleting everything: {:?}",
        locations(&left)
    );
}
