//! A streaming writer for *stored* (uncompressed) zip archives, as `…/artifact/*zip*/…`
//! returns them. Entries use data descriptors (CRC computed while streaming) and switch to
//! Zip64 fields when sizes or offsets pass 4 GiB.

use crate::faults::BodyStream;
use crate::model::Artifact;
use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use std::sync::Arc;

const CHUNK: u64 = 64 * 1024;
const MAX32: u64 = 0xFFFF_FFFF;

struct Entry {
    name: String,
    art: Arc<Artifact>,
}

struct Central {
    name: String,
    crc: u32,
    size: u64,
    offset: u64,
    zip64_local: bool,
}

enum Phase {
    Header(usize),
    Data(usize, u64),
    Descriptor(usize),
    Central,
    Done,
}

struct State {
    entries: Vec<Entry>,
    central: Vec<Central>,
    offset: u64,
    crc: crc32fast::Hasher,
    phase: Phase,
    dos_time: u16,
    dos_date: u16,
}

/// DOS date and time for `ms` since the epoch (UTC).
fn dos(ms: i64) -> (u16, u16) {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + if mo <= 2 { 1 } else { 0 };
    let y = y.clamp(1980, 2107);
    let time = ((rem / 3600) << 11) | (((rem / 60) % 60) << 5) | ((rem % 60) / 2);
    let date = ((y - 1980) << 9) | (mo << 5) | d;
    (time as u16, date as u16)
}

/// A zip of `entries` (`(name in zip, artifact)`), streamed.
pub(crate) fn zip_stream(entries: Vec<(String, Arc<Artifact>)>, mtime_ms: i64) -> BodyStream {
    let (dos_time, dos_date) = dos(mtime_ms);
    let st = State {
        entries: entries
            .into_iter()
            .map(|(name, art)| Entry { name, art })
            .collect(),
        central: Vec::new(),
        offset: 0,
        crc: crc32fast::Hasher::new(),
        phase: Phase::Header(0),
        dos_time,
        dos_date,
    };
    futures::stream::unfold(st, |mut st| async move {
        let chunk = step(&mut st)?;
        st.offset += chunk.len() as u64;
        Some((Ok(chunk), st))
    })
    .boxed()
}

fn step(st: &mut State) -> Option<Bytes> {
    match st.phase {
        Phase::Header(i) => {
            if i >= st.entries.len() {
                st.phase = Phase::Central;
                return step(st);
            }
            let e = &st.entries[i];
            let size = e.art.content.len();
            let z64 = size >= MAX32;
            let mut b = BytesMut::new();
            b.put_u32_le(0x0403_4b50);
            b.put_u16_le(if z64 { 45 } else { 20 });
            b.put_u16_le(0x0808);
            b.put_u16_le(0);
            b.put_u16_le(st.dos_time);
            b.put_u16_le(st.dos_date);
            b.put_u32_le(0);
            b.put_u32_le(if z64 { MAX32 as u32 } else { 0 });
            b.put_u32_le(if z64 { MAX32 as u32 } else { 0 });
            b.put_u16_le(e.name.len() as u16);
            b.put_u16_le(if z64 { 20 } else { 0 });
            b.put_slice(e.name.as_bytes());
            if z64 {
                b.put_u16_le(1);
                b.put_u16_le(16);
                b.put_u64_le(0);
                b.put_u64_le(0);
            }
            st.central.push(Central {
                name: e.name.clone(),
                crc: 0,
                size,
                offset: st.offset,
                zip64_local: z64,
            });
            st.crc = crc32fast::Hasher::new();
            st.phase = Phase::Data(i, 0);
            Some(b.freeze())
        }
        Phase::Data(i, pos) => {
            let e = &st.entries[i];
            let size = e.art.content.len();
            if pos >= size {
                st.phase = Phase::Descriptor(i);
                return step(st);
            }
            let n = (size - pos).min(CHUNK) as usize;
            let mut v = vec![0u8; n];
            e.art.content.fill_at(pos, &mut v);
            st.crc.update(&v);
            st.phase = Phase::Data(i, pos + n as u64);
            Some(Bytes::from(v))
        }
        Phase::Descriptor(i) => {
            let crc = std::mem::replace(&mut st.crc, crc32fast::Hasher::new()).finalize();
            let c = st.central.last_mut().expect("central entry");
            c.crc = crc;
            let mut b = BytesMut::new();
            b.put_u32_le(0x0807_4b50);
            b.put_u32_le(crc);
            if c.zip64_local {
                b.put_u64_le(c.size);
                b.put_u64_le(c.size);
            } else {
                b.put_u32_le(c.size as u32);
                b.put_u32_le(c.size as u32);
            }
            st.phase = Phase::Header(i + 1);
            Some(b.freeze())
        }
        Phase::Central => {
            let mut b = BytesMut::new();
            let cd_start = st.offset;
            for c in &st.central {
                let big_size = c.size >= MAX32;
                let big_off = c.offset >= MAX32;
                let extra_len = 8 * (2 * big_size as u16 + big_off as u16);
                b.put_u32_le(0x0201_4b50);
                b.put_u16_le(0x0300 | if big_size || big_off { 45 } else { 20 });
                b.put_u16_le(if big_size || big_off { 45 } else { 20 });
                b.put_u16_le(0x0808);
                b.put_u16_le(0);
                b.put_u16_le(st.dos_time);
                b.put_u16_le(st.dos_date);
                b.put_u32_le(c.crc);
                let sz = if big_size {
                    MAX32 as u32
                } else {
                    c.size as u32
                };
                b.put_u32_le(sz);
                b.put_u32_le(sz);
                b.put_u16_le(c.name.len() as u16);
                b.put_u16_le(if extra_len > 0 { extra_len + 4 } else { 0 });
                b.put_u16_le(0);
                b.put_u16_le(0);
                b.put_u16_le(0);
                b.put_u32_le(0o100644 << 16);
                b.put_u32_le(if big_off {
                    MAX32 as u32
                } else {
                    c.offset as u32
                });
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
            let n = st.central.len() as u64;
            let need64 = n >= 0xFFFF || cd_start >= MAX32 || cd_size >= MAX32;
            if need64 {
                let z64_eocd = cd_start + cd_size;
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
                b.put_u64_le(z64_eocd);
                b.put_u32_le(1);
            }
            b.put_u32_le(0x0605_4b50);
            b.put_u16_le(0);
            b.put_u16_le(0);
            let n16 = if need64 { 0xFFFF } else { n as u16 };
            b.put_u16_le(n16);
            b.put_u16_le(n16);
            b.put_u32_le(if need64 { MAX32 as u32 } else { cd_size as u32 });
            b.put_u32_le(if need64 {
                MAX32 as u32
            } else {
                cd_start as u32
            });
            b.put_u16_le(0);
            st.phase = Phase::Done;
            Some(b.freeze())
        }
        Phase::Done => None,
    }
}

#[cfg(test)]
mod tests {
    use super::dos;

    #[test]
    fn dos_dates() {
        // 2025-11-12 14:49:02 UTC
        let (t, d) = dos(1762958942000);
        assert_eq!(d >> 9, 2025 - 1980);
        assert_eq!((d >> 5) & 15, 11);
        assert_eq!(d & 31, 12);
        assert_eq!(t >> 11, 14);
        assert_eq!((t >> 5) & 63, 49);
        assert_eq!((t & 31) * 2, 2);
    }
}
