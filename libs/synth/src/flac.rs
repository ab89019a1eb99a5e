//! A small FLAC encoder for the master, written from the format specification (RFC 9639):
//! fixed blocks of 4096 frames, fixed polynomial predictors of order 0-4, the best of
//! left/right, left/side, right/side and mid/side stereo per block, and partitioned Rice
//! residuals. That is what `flac -2` does; LPC search would shave a few percent off the
//! file for several times the work. (The `flacenc` crate was tried first: with the same
//! settings it took ~300 ms for a 3-minute song in release, and being a dependency it
//! runs unoptimised in debug builds, which made the test suite crawl.)

use crate::util::SAMPLE_RATE;

const BLOCK: usize = 4096;
const MAX_ORDER: usize = 4;
const MAX_PARTITION_ORDER: u32 = 6;
/// The largest parameter of the 4-bit Rice coding method (15 is the escape code).
const MAX_RICE: u32 = 14;

/// Bits appended most significant first.
struct BitWriter {
    bytes: Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter {
    fn with_capacity(bytes: usize) -> Self {
        BitWriter {
            bytes: Vec::with_capacity(bytes),
            acc: 0,
            n: 0,
        }
    }
    /// Writes the low `bits` (at most 32) of `v`.
    #[inline]
    fn put(&mut self, bits: u32, v: u64) {
        if bits == 0 {
            return;
        }
        self.acc = (self.acc << bits) | (v & ((1u64 << bits) - 1));
        self.n += bits;
        // Whole 32-bit words at a time: fewer, larger copies than byte by byte.
        if self.n >= 32 {
            self.n -= 32;
            let word = (self.acc >> self.n) as u32;
            self.bytes.extend_from_slice(&word.to_be_bytes());
        }
    }
    fn put_signed(&mut self, bits: u32, v: i64) {
        self.put(bits, v as u64);
    }
    /// `q` zeros and a one.
    #[inline]
    fn unary(&mut self, mut q: u32) {
        while q >= 32 {
            self.put(32, 0);
            q -= 32;
        }
        self.put(q + 1, 1);
    }
    /// Pads to a byte boundary and moves every complete byte out of the accumulator.
    fn align(&mut self) {
        if !self.n.is_multiple_of(8) {
            self.put(8 - self.n % 8, 0);
        }
        while self.n >= 8 {
            self.n -= 8;
            self.bytes.push((self.acc >> self.n) as u8);
        }
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

fn crc16_table() -> [u16; 256] {
    let mut t = [0u16; 256];
    for (i, e) in t.iter_mut().enumerate() {
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
    t
}

fn crc16(table: &[u16; 256], data: &[u8]) -> u16 {
    data.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ table[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// Residuals of the fixed predictor of `order` (the first `order` samples are warm-up).
/// One loop per order, so each is a straight run the compiler can vectorise.
fn residuals(x: &[i32], order: usize, out: &mut Vec<i32>) {
    out.clear();
    match order {
        0 => out.extend_from_slice(x),
        1 => out.extend(x.windows(2).map(|w| w[1] - w[0])),
        2 => out.extend(x.windows(3).map(|w| w[2] - 2 * w[1] + w[0])),
        3 => out.extend(x.windows(4).map(|w| w[3] - 3 * w[2] + 3 * w[1] - w[0])),
        _ => out.extend(
            x.windows(5)
                .map(|w| w[4] - 4 * w[3] + 6 * w[2] - 4 * w[1] + w[0]),
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

/// A channel's coding: predictor order, partition order, Rice parameters, estimated bits.
struct Choice {
    order: usize,
    porder: u32,
    params: Vec<u32>,
    bits: u64,
    residual: Vec<i32>,
}

/// Picks the predictor order by the smallest sum of absolute residuals (all five
/// orders in one pass, each a difference of the one below), then partitions only that
/// order's residuals.
fn choose(x: &[i32], u: &mut Vec<u32>) -> Choice {
    let mut sums = [0u64; MAX_ORDER + 1];
    for i in MAX_ORDER..x.len() {
        let v = |k: usize| i64::from(x[i - k]);
        let e = [
            v(0),
            v(0) - v(1),
            v(0) - 2 * v(1) + v(2),
            v(0) - 3 * v(1) + 3 * v(2) - v(3),
            v(0) - 4 * v(1) + 6 * v(2) - 4 * v(3) + v(4),
        ];
        for (s, e) in sums.iter_mut().zip(e) {
            *s += e.unsigned_abs();
        }
    }
    let max = MAX_ORDER.min(x.len().saturating_sub(1));
    let order = (0..=max).min_by_key(|&o| sums[o]).unwrap_or(0);
    let mut residual = Vec::with_capacity(x.len());
    residuals(x, order, &mut residual);
    u.clear();
    u.extend(residual.iter().map(|&r| zigzag(r)));
    let (porder, params, bits) = partition(u, x.len(), order);
    Choice {
        order,
        porder,
        params,
        bits,
        residual,
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
        for &r in &c.residual[at..at + count] {
            let v = zigzag(r);
            let q = v >> param;
            if q + 1 + param <= 32 {
                // Quotient in unary (q zeros, a one) and the low bits, in one write.
                let low = u64::from(v) & ((1u64 << param) - 1);
                w.put(q + 1 + param, (1u64 << param) | low);
            } else {
                w.unary(q);
                w.put(param, u64::from(v));
            }
        }
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
    let table = crc16_table();
    let mut w = BitWriter::with_capacity(pcm16.len() * 3 / 4 + 64);
    w.bytes.extend_from_slice(b"fLaC");
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
    let mut u = Vec::new();
    for (number, block) in pcm16.chunks(BLOCK * 4).enumerate() {
        let n = block.len() / 4;
        if n == 0 {
            break;
        }
        for c in &mut ch {
            c.clear();
        }
        for f in block.chunks_exact(4) {
            let l = i32::from(i16::from_le_bytes([f[0], f[1]]));
            let r = i32::from(i16::from_le_bytes([f[2], f[3]]));
            ch[0].push(l);
            ch[1].push(r);
            ch[2].push((l + r) >> 1);
            ch[3].push(l - r);
        }
        let choices: Vec<Choice> = ch.iter().map(|x| choose(x, &mut u)).collect();
        // (assignment code, first channel, second channel, bits per sample of each)
        let modes = [
            (0b0001, 0, 1),
            (0b1000, 0, 3),
            (0b1001, 3, 1),
            (0b1010, 2, 3),
        ];
        let cost = |a: usize, b: usize| choices[a].bits.saturating_add(choices[b].bits);
        let &(code, a, b) = modes
            .iter()
            .min_by_key(|&&(_, a, b)| cost(a, b))
            .unwrap_or(&modes[0]);
        w.align();
        let start = w.bytes.len();
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
        let crc = crc8(&w.bytes[start..]);
        w.put(8, u64::from(crc));
        for c in [a, b] {
            let bps = if c == 3 { 17 } else { 16 };
            write_subframe(&mut w, &ch[c], bps, &choices[c]);
        }
        w.align();
        let crc = crc16(&table, &w.bytes[start..]);
        w.put(16, u64::from(crc));
    }
    w.align();
    w.bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_match_the_specification_examples() {
        // CRC-8 (x^8+x^2+x+1) and CRC-16 (x^16+x^15+x^2+1) of "123456789".
        assert_eq!(crc8(b"123456789"), 0xF4);
        assert_eq!(crc16(&crc16_table(), b"123456789"), 0xFEE8);
        let mut w = BitWriter::with_capacity(8);
        utf8_number(&mut w, 0x800);
        w.align();
        assert_eq!(w.bytes, [0xE0, 0xA0, 0x80]);
    }
}
