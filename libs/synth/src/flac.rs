//! A small FLAC encoder for the master, written from the format specification (RFC 9639):
//! fixed blocks of 4096 frames, fixed polynomial predictors of order 0-4, the best of
//! left/right, left/side, right/side and mid/side stereo, and partitioned Rice
//! residuals. That is about what `flac -1` does; LPC search would shave a few percent
//! off the file for several times the work. Like `flac`, it picks each channel's order
//! and the stereo mode from sums of absolute residuals (one vectorised pass), and it
//! makes that choice every fourth block (about 0.4 s), the blocks between keeping it,
//! as `flac`'s adaptive mid-side does with the stereo mode; only the two channels kept
//! are partitioned. Rice codes are written four to a 64-bit write. (The `flacenc`
//! crate was tried first: with the same settings it took ~300 ms for a 3-minute song
//! in release, and being a dependency it runs unoptimised in debug builds, which made
//! the test suite crawl.)

use crate::util::SAMPLE_RATE;

const BLOCK: usize = 4096;
const MAX_ORDER: usize = 4;
/// Blocks from one analysis to the next (about 0.4 s of audio): a block that is
/// analysed chooses the stereo mode and each channel's predictor order, the blocks
/// after it keep those choices, as `flac`'s adaptive mid-side keeps its stereo mode.
/// Music changes its character more slowly than that; the file is about 1% larger
/// than with every block analysed, for a third less work.
const ANALYSE_EVERY: usize = 4;
const MAX_PARTITION_ORDER: u32 = 6;
/// The largest parameter of the 4-bit Rice coding method (15 is the escape code).
const MAX_RICE: u32 = 14;

/// Bits appended most significant first. The pending bits sit at the top of a 64-bit
/// accumulator that is stored whole after every write (the next store overwrites the
/// bytes not yet complete); the position then advances by the bytes completed. No
/// branch on how full the accumulator is, which in Rice codes of varying length is a
/// coin toss.
struct BitWriter {
    /// Always at least 8 bytes longer than `pos`: room for the accumulator.
    buf: Vec<u8>,
    /// Complete bytes written.
    pos: usize,
    acc: u64,
    /// Bits pending in `acc` (under 8 between writes).
    n: u32,
}

impl BitWriter {
    fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            buf: vec![0; bytes + 8],
            pos: 0,
            acc: 0,
            n: 0,
        }
    }
    /// Makes room for `bytes` more complete bytes.
    fn reserve(&mut self, bytes: usize) {
        let need = self.pos + bytes + 8;
        if self.buf.len() < need {
            self.buf.resize(need.max(2 * self.buf.len()), 0);
        }
    }
    /// Writes the low `bits` (at most 56) of `v`.
    #[inline]
    fn put(&mut self, bits: u32, v: u64) {
        if bits == 0 {
            return;
        }
        self.reserve(8);
        let v = v & ((1u64 << bits) - 1);
        // n + bits <= 63: the shift is 1..=63.
        self.acc |= v << (64 - self.n - bits);
        self.n += bits;
        self.store();
    }
    /// Stores the accumulator and drops the bytes it completed.
    #[inline(always)]
    fn store(&mut self) {
        self.buf[self.pos..self.pos + 8].copy_from_slice(&self.acc.to_be_bytes());
        let full = self.n >> 3;
        self.pos += full as usize;
        // At most 7 bytes complete (n <= 63), so the shift stays below 64.
        self.acc <<= full << 3;
        self.n &= 7;
    }
    fn put_signed(&mut self, bits: u32, v: i64) {
        self.put(bits, v as u64);
    }
    /// `q` zeros and a one.
    fn unary(&mut self, mut q: u32) {
        while q >= 32 {
            self.put(32, 0);
            q -= 32;
        }
        self.put(q + 1, 1);
    }
    /// Rice codes of `coded` with parameter `param` (at most [`MAX_RICE`]).
    fn rice(&mut self, coded: &[u32], param: u32) {
        let mut rest = coded;
        while !rest.is_empty() {
            let done = self.rice_short(rest, param);
            rest = &rest[done..];
            if let Some((&v, tail)) = rest.split_first() {
                // A quotient too long for one write: in pieces.
                self.unary(v >> param);
                self.put(param, u64::from(v));
                rest = tail;
            }
        }
    }
    /// Writes the codes from the start of `coded` that take at most 32 bits (the
    /// quotient in unary and the low bits, as one write), with the state in
    /// registers and four codes per write where they fit together (the chain from
    /// one write to the next is the longest part of the work); stops before the
    /// first code longer than 32 bits and returns how many it wrote.
    fn rice_short(&mut self, coded: &[u32], param: u32) -> usize {
        // At most 4 bytes a code.
        self.reserve(4 * coded.len());
        let (mut acc, mut n, mut pos) = (self.acc, self.n, self.pos);
        let buf = &mut self.buf[..];
        let mut emit = |code: u64, len: u32| {
            // n + len <= 7 + 56: the shifts stay within 1..=63.
            acc |= code << (64 - n - len);
            n += len;
            buf[pos..pos + 8].copy_from_slice(&acc.to_be_bytes());
            let full = n >> 3;
            pos += full as usize;
            acc <<= full << 3;
            n &= 7;
        };
        let (low, stop) = ((1u32 << param) - 1, 1u32 << param);
        let code = |v: u32| {
            (
                u64::from((v & low) | stop),
                (v >> param).saturating_add(1 + param),
            )
        };
        let mut done = 0;
        'codes: for quad in coded.chunks(4) {
            let c: [(u64, u32); 4] =
                std::array::from_fn(|k| quad.get(k).map_or((0, 0), |&v| code(v)));
            let total = c.iter().fold(0u32, |t, &(_, len)| t.saturating_add(len));
            if total <= 56 {
                // Four codes in one write (the usual case: Rice codes are short).
                let packed = c.iter().fold(0u64, |p, &(code, len)| (p << len) | code);
                emit(packed, total);
                done += quad.len();
                continue;
            }
            for &(code, len) in &c[..quad.len()] {
                if len > 32 {
                    break 'codes;
                }
                emit(code, len);
                done += 1;
            }
        }
        (self.acc, self.n, self.pos) = (acc, n, pos);
        done
    }
    /// Pads to a byte boundary.
    fn align(&mut self) {
        if self.n > 0 {
            self.put(8 - self.n, 0);
        }
    }
    /// The complete bytes so far.
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.pos]
    }
    /// Pads to a byte boundary and returns the bytes.
    fn finish(mut self) -> Vec<u8> {
        self.align();
        self.buf.truncate(self.pos);
        self.buf
    }
}

fn crc8(data: &[u8]) -> u8 {
    let mut crc = 0u8;
    for &b in data {
        crc ^= b;
        for _ in 0..8 {
            crc = if crc & 0x80 != 0 {
                (crc << 1) ^ 0x07
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// CRC-16 lookup tables for slicing by 8: `t[k][b]` is the CRC of byte `b` followed by
/// `k` zero bytes, so eight bytes fold into the CRC with eight independent lookups
/// instead of a chain of eight dependent ones.
fn crc16_tables() -> Vec<[u16; 256]> {
    let mut t = vec![[0u16; 256]; 8];
    for (i, e) in t[0].iter_mut().enumerate() {
        let mut c = (i as u16) << 8;
        for _ in 0..8 {
            c = if c & 0x8000 != 0 {
                (c << 1) ^ 0x8005
            } else {
                c << 1
            };
        }
        *e = c;
    }
    for k in 1..8 {
        for b in 0..256 {
            let prev = t[k - 1][b];
            t[k][b] = (prev << 8) ^ t[0][usize::from(prev >> 8)];
        }
    }
    t
}

fn crc16(t: &[[u16; 256]], data: &[u8]) -> u16 {
    let mut crc = 0u16;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let [hi, lo] = crc.to_be_bytes();
        crc = t[7][usize::from(c[0] ^ hi)]
            ^ t[6][usize::from(c[1] ^ lo)]
            ^ t[5][usize::from(c[2])]
            ^ t[4][usize::from(c[3])]
            ^ t[3][usize::from(c[4])]
            ^ t[2][usize::from(c[5])]
            ^ t[1][usize::from(c[6])]
            ^ t[0][usize::from(c[7])];
    }
    chunks.remainder().iter().fold(crc, |crc, &b| {
        (crc << 8) ^ t[0][usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// Residuals of the fixed predictor of `order` (the first `order` samples are warm-up),
/// zigzagged to unsigned as the Rice codes want them.
/// One loop per order, so each is a straight run the compiler can vectorise.
fn residuals(x: &[i32], order: usize, out: &mut Vec<u32>) {
    out.clear();
    let z = zigzag;
    match order {
        0 => out.extend(x.iter().map(|&v| z(v))),
        1 => out.extend(x.windows(2).map(|w| z(w[1] - w[0]))),
        2 => out.extend(x.windows(3).map(|w| z(w[2] - 2 * w[1] + w[0]))),
        3 => out.extend(x.windows(4).map(|w| z(w[3] - 3 * w[2] + 3 * w[1] - w[0]))),
        _ => out.extend(
            x.windows(5)
                .map(|w| z(w[4] - 4 * w[3] + 6 * w[2] - 4 * w[1] + w[0])),
        ),
    }
}

#[inline]
fn zigzag(r: i32) -> u32 {
    ((r << 1) ^ (r >> 31)) as u32
}

/// Best Rice parameter for a partition and its cost in bits.
fn rice_choice(sum: u64, count: usize) -> (u32, u64) {
    if count == 0 {
        return (0, 4);
    }
    let mean = sum / count as u64;
    let guess = 64 - mean.leading_zeros();
    let mut best = (0, u64::MAX);
    for k in guess.saturating_sub(1).min(MAX_RICE)..=(guess + 1).min(MAX_RICE) {
        // Unary part of each value plus its stop bit and k low bits (estimated from the sum).
        let bits = 4 + count as u64 * u64::from(k + 1) + (sum >> k);
        if bits < best.1 {
            best = (k, bits);
        }
    }
    best
}

/// The cheapest partition order for residuals `u` (zigzagged) of a block of `n`
/// samples whose first `order` are warm-up: (order, params, estimated bits). The sums
/// are taken once at the finest partitioning and merged pairwise for coarser ones.
fn partition(u: &[u32], n: usize, order: usize) -> (u32, Vec<u32>, u64) {
    let mut finest = 0;
    while finest < MAX_PARTITION_ORDER
        && n.is_multiple_of(1 << (finest + 1))
        && n >> (finest + 1) > order
    {
        finest += 1;
    }
    let len = n >> finest;
    let mut sums: Vec<u64> = Vec::with_capacity(1 << finest);
    let mut at = 0;
    for k in 0..(1usize << finest) {
        let count = if k == 0 { len - order } else { len };
        sums.push(u[at..at + count].iter().map(|&v| u64::from(v)).sum());
        at += count;
    }
    let mut best = (0, vec![0], u64::MAX);
    let mut p = finest;
    loop {
        let parts = 1usize << p;
        let len = n / parts;
        let mut params = Vec::with_capacity(parts);
        let mut bits = 6u64;
        for (k, &sum) in sums.iter().enumerate() {
            let count = if k == 0 { len - order } else { len };
            let (param, b) = rice_choice(sum, count);
            params.push(param);
            bits = bits.saturating_add(b);
        }
        if bits <= best.2 {
            best = (p, params, bits);
        }
        if p == 0 {
            break;
        }
        sums = sums.chunks(2).map(|c| c.iter().sum()).collect();
        p -= 1;
    }
    best
}

/// A channel's coding: predictor order, partition order, Rice parameters, estimated
/// bits, and the zigzagged residuals.
struct Choice {
    order: usize,
    porder: u32,
    params: Vec<u32>,
    bits: u64,
    coded: Vec<u32>,
}

/// Sums of absolute residuals of the fixed predictors of order 0-4 over `x[4..]`,
/// each order the difference of the one below. 16-bit input (17 for the side channel)
/// keeps order-4 residuals under 2^21, so 1024 of them fit a `u32` sum: the inner loop
/// is plain 32-bit integer arithmetic, which the compiler vectorises.
fn order_sums(x: &[i32]) -> [u64; MAX_ORDER + 1] {
    let mut total = [0u64; MAX_ORDER + 1];
    let n = x.len();
    let mut start = MAX_ORDER;
    while start < n {
        let end = (start + 1024).min(n);
        let mut s = [0u32; MAX_ORDER + 1];
        let a = &x[start..end];
        let b = &x[start - 1..end - 1];
        let c = &x[start - 2..end - 2];
        let d = &x[start - 3..end - 3];
        let e = &x[start - 4..end - 4];
        for ((((&a, &b), &c), &d), &e) in a.iter().zip(b).zip(c).zip(d).zip(e) {
            let (d1, d1b, d1c, d1d) = (a - b, b - c, c - d, d - e);
            let (d2, d2b, d2c) = (d1 - d1b, d1b - d1c, d1c - d1d);
            let (d3, d3b) = (d2 - d2b, d2b - d2c);
            let d4 = d3 - d3b;
            s[0] += a.unsigned_abs();
            s[1] += d1.unsigned_abs();
            s[2] += d2.unsigned_abs();
            s[3] += d3.unsigned_abs();
            s[4] += d4.unsigned_abs();
        }
        for (t, s) in total.iter_mut().zip(s) {
            *t += u64::from(s);
        }
        start = end;
    }
    total
}

/// The predictor order with the smallest residual and an estimate of the channel's
/// bits with it (one Rice partition; zigzag about doubles the magnitudes).
fn estimate(x: &[i32], bps: u32) -> (usize, u64) {
    let max = MAX_ORDER.min(x.len().saturating_sub(1));
    if x.len() <= MAX_ORDER {
        return (0, u64::from(bps) * x.len() as u64);
    }
    let sums = order_sums(x);
    let order = (0..=max).min_by_key(|&o| sums[o]).unwrap_or(0);
    let (_, bits) = rice_choice(2 * sums[order], x.len() - order);
    (order, bits + u64::from(bps) * order as u64)
}

/// Codes channel `x` with predictor `order`: residuals (into `coded`, zigzagged),
/// partitions.
fn choose(x: &[i32], order: usize, mut coded: Vec<u32>) -> Choice {
    residuals(x, order, &mut coded);
    let (porder, params, bits) = partition(&coded, x.len(), order);
    Choice {
        order,
        porder,
        params,
        bits,
        coded,
    }
}

fn write_subframe(w: &mut BitWriter, x: &[i32], bps: u32, c: &Choice) {
    let verbatim = u64::from(bps) * x.len() as u64;
    if c.bits == u64::MAX || c.bits + u64::from(bps) * c.order as u64 >= verbatim {
        w.put(8, 0b0000_0010);
        for &v in x {
            w.put_signed(bps, i64::from(v));
        }
        return;
    }
    // 0, type 001ooo (fixed predictor of order ooo), no wasted bits.
    w.put(8, (0b0000_1000 | c.order as u64) << 1);
    for &v in &x[..c.order] {
        w.put_signed(bps, i64::from(v));
    }
    w.put(2, 0);
    w.put(4, u64::from(c.porder));
    let len = x.len() >> c.porder;
    let mut at = 0;
    for (k, &param) in c.params.iter().enumerate() {
        let count = if k == 0 { len - c.order } else { len };
        w.put(4, u64::from(param));
        w.rice(&c.coded[at..at + count], param);
        at += count;
    }
}

/// UTF-8-style coding of the frame number, as the frame header wants it.
fn utf8_number(w: &mut BitWriter, n: u64) {
    if n < 0x80 {
        w.put(8, n);
        return;
    }
    let extra = match n {
        0..0x800 => 1,
        0x800..0x1_0000 => 2,
        0x1_0000..0x20_0000 => 3,
        0x20_0000..0x400_0000 => 4,
        _ => 5,
    };
    let lead_bits = 6 - extra;
    let marker = (0xFF00u64 >> (extra + 1)) & 0xFF;
    w.put(8, marker | ((n >> (6 * extra)) & ((1 << lead_bits) - 1)));
    for i in (0..extra).rev() {
        w.put(8, 0x80 | ((n >> (6 * i)) & 0x3F));
    }
}

/// Encodes interleaved little-endian 16-bit stereo (a WAV file's data chunk).
pub fn encode(pcm16: &[u8]) -> Vec<u8> {
    let frames = pcm16.len() / 4;
    let table = crc16_tables();
    let mut w = BitWriter::with_capacity(pcm16.len() * 3 / 4 + 64);
    w.put(32, u64::from(u32::from_be_bytes(*b"fLaC")));
    // STREAMINFO, the last metadata block. Frame sizes 0 = unknown; MD5 0 = not computed.
    w.put(8, 0x80);
    w.put(24, 34);
    w.put(16, BLOCK as u64);
    w.put(16, BLOCK as u64);
    w.put(24, 0);
    w.put(24, 0);
    w.put(20, u64::from(SAMPLE_RATE));
    w.put(3, 1);
    w.put(5, 15);
    w.put(36, frames as u64);
    for _ in 0..4 {
        w.put(32, 0);
    }
    let mut ch: [Vec<i32>; 4] = Default::default();
    // The two channels' residual buffers, handed from block to block.
    let mut spare = [Vec::with_capacity(BLOCK), Vec::with_capacity(BLOCK)];
    // The last search's stereo mode and each channel's predictor order.
    let mut mode = (0b0001, 0, 1);
    let mut last = [(0usize, 0u64); 4];
    for (number, block) in pcm16.chunks(BLOCK * 4).enumerate() {
        let n = block.len() / 4;
        if n == 0 {
            break;
        }
        for c in &mut ch {
            c.resize(n, 0);
        }
        let [l, r, mid, side] = &mut ch;
        for ((((f, l), r), m), s) in block
            .chunks_exact(4)
            .zip(l.iter_mut())
            .zip(r.iter_mut())
            .zip(mid.iter_mut())
            .zip(side.iter_mut())
        {
            *l = i32::from(i16::from_le_bytes([f[0], f[1]]));
            *r = i32::from(i16::from_le_bytes([f[2], f[3]]));
            *m = (*l + *r) >> 1;
            *s = *l - *r;
        }
        // (assignment code, first channel, second channel)
        let modes = [
            (0b0001, 0, 1),
            (0b1000, 0, 3),
            (0b1001, 3, 1),
            (0b1010, 2, 3),
        ];
        let bps = |c: usize| if c == 3 { 17 } else { 16 };
        let est = if number % ANALYSE_EVERY == 0 {
            let est: [(usize, u64); 4] = std::array::from_fn(|c| estimate(&ch[c], bps(c)));
            mode = *modes
                .iter()
                .min_by_key(|&&(_, a, b)| est[a].1 + est[b].1)
                .unwrap_or(&modes[0]);
            est
        } else {
            last
        };
        last = est;
        let (code, a, b) = mode;
        let [sa, sb] = spare;
        let choices = [(a, sa), (b, sb)].map(|(c, buf)| choose(&ch[c], est[c].0, buf));
        w.align();
        let start = w.pos;
        w.put(16, 0xFFF8);
        w.put(4, if n == BLOCK { 12 } else { 7 });
        w.put(4, 9);
        w.put(4, code);
        w.put(3, 0b100);
        w.put(1, 0);
        utf8_number(&mut w, number as u64);
        if n != BLOCK {
            w.put(16, n as u64 - 1);
        }
        w.align();
        let crc = crc8(&w.bytes()[start..]);
        w.put(8, u64::from(crc));
        for (c, choice) in [a, b].into_iter().zip(&choices) {
            write_subframe(&mut w, &ch[c], bps(c), choice);
        }
        w.align();
        let crc = crc16(&table, &w.bytes()[start..]);
        w.put(16, u64::from(crc));
        spare = choices.map(|c| c.coded);
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_the_specification_examples() {
        // CRC-8 (x^8+x^2+x+1) and CRC-16 (x^16+x^15+x^2+1) of "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(&crc16_tables(), b"123456789"), 0xFEE8);
        let mut w = BitWriter::with_capacity(8);
        utf8_number(&mut w, 0x800);
        assert_eq!(w.finish(), [0xE0, 0xA0, 0x80]);
    }
}

#[cfg(test)]
mod round_trip {
    /// Quiet stretches with sudden full-scale spikes (Rice parameter 0 meeting huge
    /// residuals: quotients too long for one write), noise, a ramp, and a last block
    /// shorter than the others, decoded by an independent decoder.
    #[test]
    fn decodes_to_the_same_samples() -> Result<(), claxon::Error> {
        let mut noise = crate::dsp::Noise::new(3);
        let frames = 3 * super::BLOCK + 1234;
        let mut pcm = Vec::with_capacity(frames * 4);
        let mut want = Vec::with_capacity(frames * 2);
        for i in 0..frames {
            let (l, r) = match (i / 1000) % 4 {
                0 if i % 997 == 0 => (i16::MAX, i16::MIN),
                0 => (0, 1),
                1 => (
                    (noise.next() * 20000.0) as i16,
                    (noise.next() * 300.0) as i16,
                ),
                2 => (
                    (i % 4000) as i16 * 8 - 16000,
                    -((i % 4000) as i16) * 8 + 16000,
                ),
                _ => ((noise.next() * 3.0) as i16, (noise.next() * 32767.0) as i16),
            };
            pcm.extend_from_slice(&l.to_le_bytes());
            pcm.extend_from_slice(&r.to_le_bytes());
            want.extend([i32::from(l), i32::from(r)]);
        }
        let bytes = super::encode(&pcm);
        let mut reader = claxon::FlacReader::new(std::io::Cursor::new(bytes))?;
        let got = reader.samples().collect::<Result<Vec<i32>, _>>()?;
        assert_eq!(got.len(), want.len());
        assert!(got == want);
        Ok(())
    }
}
