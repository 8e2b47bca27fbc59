//! A streaming writer of *stored* (uncompressed) zip archives, as Jenkins' `…/artifact/*zip*/…` returns
//! them. Nothing is buffered beyond one chunk: each entry's bytes pass through as they come, with the
//! CRC-32 computed on the way and written after them in a data descriptor; the central directory, built
//! from those as the entries pass, closes the archive. Sizes are known before an entry starts, so an entry
//! of 4 GiB or more, an offset past 4 GiB or more than 65535 entries switch to Zip64 fields.
//!
//! Entries are opened lazily: [`zip_stream`] takes a stream of entries and asks for the next one only
//! when the previous one is done, so a zip of many store objects holds one of them open at a time. An
//! entry whose body yields more or fewer bytes than its size ends the archive with an error.

use bytes::{BufMut, Bytes, BytesMut};
use futures::{Stream, StreamExt, stream::BoxStream};

const MAX32: u64 = 0xFFFF_FFFF;

/// One file of the archive: its name inside the zip, its size, and its bytes.
pub struct ZipEntry<E> {
    /// Name inside the archive (`/`-separated).
    pub name: String,
    /// Exact length of `body`.
    pub size: u64,
    /// The bytes.
    pub body: BoxStream<'static, Result<Bytes, E>>,
}

/// An entry's body did not match the size announced for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("zip entry '{name}': {got} bytes where {size} were announced")]
pub struct SizeMismatch {
    /// The entry.
    pub name: String,
    /// Its announced size.
    pub size: u64,
    /// The bytes its body gave.
    pub got: u64,
}

impl From<SizeMismatch> for std::io::Error {
    fn from(e: SizeMismatch) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

struct Central {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
    zip64: bool,
}

struct Current<E> {
    body: BoxStream<'static, Result<Bytes, E>>,
    crc: crc32fast::Hasher,
    written: u64,
}

struct State<I, E> {
    entries: I,
    current: Option<Current<E>>,
    central: Vec<Central>,
    offset: u64,
    dos: (u16, u16),
    done: bool,
}

/// DOS time and date for `ms` since the epoch (UTC), clamped to the years DOS dates can hold.
pub fn dos_time_date(ms: i64) -> (u16, u16) {
    let t = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let (y, mo, d, h, mi, sec) = match t.year() {
        ..1980 => (1980, 1, 1, 0, 0, 0),
        2108.. => (2107, 12, 31, 23, 59, 58),
        y => (
            y,
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
        ),
    };
    let time = (u16::from(h) << 11) | (u16::from(mi) << 5) | (u16::from(sec) / 2);
    let date = (((y - 1980) as u16) << 9) | (u16::from(mo) << 5) | u16::from(d);
    (time, date)
}

/// A zip of `entries`, streamed; every entry carries the modification time `mtime_ms` (ms since the
/// epoch). The stream's errors are the entries' own, or a [`SizeMismatch`] converted into `E`.
pub fn zip_stream<I, E>(entries: I, mtime_ms: i64) -> impl Stream<Item = Result<Bytes, E>> + Send
where
    I: Stream<Item = Result<ZipEntry<E>, E>> + Send + Unpin + 'static,
    E: From<SizeMismatch> + Send + 'static,
{
    let st = State {
        entries,
        current: None,
        central: Vec::new(),
        offset: 0,
        dos: dos_time_date(mtime_ms),
        done: false,
    };
    futures::stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        let item = step(&mut st).await;
        match &item {
            Ok(chunk) => st.offset += chunk.len() as u64,
            Err(_) => st.done = true,
        }
        Some((item, st))
    })
}

async fn step<I, E>(st: &mut State<I, E>) -> Result<Bytes, E>
where
    I: Stream<Item = Result<ZipEntry<E>, E>> + Unpin,
    E: From<SizeMismatch>,
{
    loop {
        if let Some(cur) = &mut st.current {
            match cur.body.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    cur.crc.update(&chunk);
                    cur.written += chunk.len() as u64;
                    return Ok(chunk);
                }
                Some(Err(e)) => return Err(e),
                None => {
                    let cur = st.current.take().expect("an entry is open");
                    let c = st.central.last_mut().expect("its central record");
                    if cur.written != c.size {
                        return Err(SizeMismatch {
                            name: c.name.clone(),
                            size: c.size,
                            got: cur.written,
                        }
                        .into());
                    }
                    c.crc = cur.crc.finalize();
                    return Ok(descriptor(c));
                }
            }
        }
        return match st.entries.next().await {
            Some(Ok(e)) => {
                let zip64 = e.size >= MAX32;
                let header = local_header(&e.name, zip64, st.dos);
                st.central.push(Central {
                    name: e.name,
                    crc: 0,
                    size: e.size,
                    offset: st.offset,
                    zip64,
                });
                st.current = Some(Current {
                    body: e.body,
                    crc: crc32fast::Hasher::new(),
                    written: 0,
                });
                Ok(header)
            }
            Some(Err(e)) => Err(e),
            None => {
                st.done = true;
                Ok(central_directory(&st.central, st.offset, st.dos))
            }
        };
    }
}

/// A local file header with the "sizes in the data descriptor" flag (and UTF-8 names).
fn local_header(name: &str, zip64: bool, (time, date): (u16, u16)) -> Bytes {
    let mut b = BytesMut::with_capacity(30 + name.len() + 20);
    b.put_u32_le(0x0403_4b50);
    b.put_u16_le(if zip64 { 45 } else { 20 });
    b.put_u16_le(0x0808);
    b.put_u16_le(0);
    b.put_u16_le(time);
    b.put_u16_le(date);
    b.put_u32_le(0);
    b.put_u32_le(if zip64 { MAX32 as u32 } else { 0 });
    b.put_u32_le(if zip64 { MAX32 as u32 } else { 0 });
    b.put_u16_le(name.len() as u16);
    b.put_u16_le(if zip64 { 20 } else { 0 });
    b.put_slice(name.as_bytes());
    if zip64 {
        b.put_u16_le(1);
        b.put_u16_le(16);
        b.put_u64_le(0);
        b.put_u64_le(0);
    }
    b.freeze()
}

fn descriptor(c: &Central) -> Bytes {
    let mut b = BytesMut::with_capacity(24);
    b.put_u32_le(0x0807_4b50);
    b.put_u32_le(c.crc);
    if c.zip64 {
        b.put_u64_le(c.size);
        b.put_u64_le(c.size);
    } else {
        b.put_u32_le(c.size as u32);
        b.put_u32_le(c.size as u32);
    }
    b.freeze()
}

fn central_directory(central: &[Central], cd_start: u64, (time, date): (u16, u16)) -> Bytes {
    let mut b = BytesMut::new();
    for c in central {
        let big_size = c.size >= MAX32;
        let big_off = c.offset >= MAX32;
        let extra_len = 8 * (2 * big_size as u16 + big_off as u16);
        let version = if big_size || big_off { 45 } else { 20 };
        b.put_u32_le(0x0201_4b50);
        b.put_u16_le(0x0300 | version);
        b.put_u16_le(version);
        b.put_u16_le(0x0808);
        b.put_u16_le(0);
        b.put_u16_le(time);
        b.put_u16_le(date);
        b.put_u32_le(c.crc);
        let sz = if big_size { MAX32 } else { c.size } as u32;
        b.put_u32_le(sz);
        b.put_u32_le(sz);
        b.put_u16_le(c.name.len() as u16);
        b.put_u16_le(if extra_len > 0 { extra_len + 4 } else { 0 });
        b.put_u16_le(0);
        b.put_u16_le(0);
        b.put_u16_le(0);
        b.put_u32_le(0o100644 << 16);
        b.put_u32_le(if big_off { MAX32 } else { c.offset } as u32);
        b.put_slice(c.name.as_bytes());
        if extra_len > 0 {
            b.put_u16_le(1);
            b.put_u16_le(extra_len);
            if big_size {
                b.put_u64_le(c.size);
                b.put_u64_le(c.size);
            }
            if big_off {
                b.put_u64_le(c.offset);
            }
        }
    }
    let cd_size = b.len() as u64;
    let n = central.len() as u64;
    let need64 = n >= 0xFFFF || cd_start >= MAX32 || cd_size >= MAX32;
    if need64 {
        b.put_u32_le(0x0606_4b50);
        b.put_u64_le(44);
        b.put_u16_le(45);
        b.put_u16_le(45);
        b.put_u32_le(0);
        b.put_u32_le(0);
        b.put_u64_le(n);
        b.put_u64_le(n);
        b.put_u64_le(cd_size);
        b.put_u64_le(cd_start);
        b.put_u32_le(0x0706_4b50);
        b.put_u32_le(0);
        b.put_u64_le(cd_start + cd_size);
        b.put_u32_le(1);
    }
    b.put_u32_le(0x0605_4b50);
    b.put_u16_le(0);
    b.put_u16_le(0);
    let n16 = if need64 { 0xFFFF } else { n as u16 };
    b.put_u16_le(n16);
    b.put_u16_le(n16);
    b.put_u32_le(if need64 { MAX32 } else { cd_size } as u32);
    b.put_u32_le(if need64 { MAX32 } else { cd_start } as u32);
    b.put_u16_le(0);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum E {
        Size(SizeMismatch),
    }

    impl From<SizeMismatch> for E {
        fn from(e: SizeMismatch) -> E {
            E::Size(e)
        }
    }

    fn entry(name: &str, data: &'static [u8], size: u64) -> Result<ZipEntry<E>, E> {
        let chunks: Vec<Result<Bytes, E>> =
            data.chunks(3).map(|c| Ok(Bytes::from_static(c))).collect();
        Ok(ZipEntry {
            name: name.into(),
            size,
            body: futures::stream::iter(chunks).boxed(),
        })
    }

    async fn collect(entries: Vec<Result<ZipEntry<E>, E>>) -> Result<Vec<u8>, E> {
        let mut out = Vec::new();
        let mut s = Box::pin(zip_stream(futures::stream::iter(entries), 0));
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    #[test]
    fn dos_dates() {
        // 2025-11-12 14:49:02 UTC
        let (t, d) = dos_time_date(1762958942000);
        assert_eq!(d >> 9, 2025 - 1980);
        assert_eq!((d >> 5) & 15, 11);
        assert_eq!(d & 31, 12);
        assert_eq!(t >> 11, 14);
        assert_eq!((t >> 5) & 63, 49);
        assert_eq!((t & 31) * 2, 2);
        // Before 1980: the first DOS date.
        assert_eq!(dos_time_date(0), (0, (1 << 5) | 1));
    }

    #[tokio::test]
    async fn entries_stream_through_with_their_crc() {
        let zip = collect(vec![
            entry("archive/a.txt", b"hello world", 11),
            entry("archive/d/empty", b"", 0),
        ])
        .await
        .unwrap();
        // Local header of the first entry, then its bytes as they came.
        assert_eq!(&zip[..4], b"PK\x03\x04");
        assert_eq!(&zip[30..43], b"archive/a.txt");
        assert_eq!(&zip[43..54], b"hello world");
        // Its descriptor carries the CRC-32 of the bytes.
        assert_eq!(&zip[54..58], b"PK\x07\x08");
        let crc = u32::from_le_bytes(zip[58..62].try_into().unwrap());
        assert_eq!(crc, crc32fast::hash(b"hello world"));
        // The end record counts two entries.
        let eocd = zip.len() - 22;
        assert_eq!(&zip[eocd..eocd + 4], b"PK\x05\x06");
        assert_eq!(u16::from_le_bytes([zip[eocd + 10], zip[eocd + 11]]), 2);
    }

    #[tokio::test]
    async fn a_body_of_the_wrong_size_fails_the_archive() {
        let err = collect(vec![entry("a", b"abc", 5)]).await.unwrap_err();
        assert_eq!(
            err,
            E::Size(SizeMismatch {
                name: "a".into(),
                size: 5,
                got: 3
            })
        );
    }
}
