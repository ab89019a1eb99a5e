//! The listeners of the property tests: a beat tracker and a key estimator, written
//! here so that they share nothing with the engine.

const SR: f32 = 44_100.0;

/// Onset strength at 400 Hz: the half-wave rectified rise of the RMS amplitude in
/// 2.5 ms hops, smoothed over 10 ms, normalised to unit variance.
fn band_onsets(x: &[f32]) -> Vec<f32> {
    let hop = 110;
    let rms: Vec<f32> = x
        .chunks(hop)
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let smooth: Vec<f32> = (0..rms.len())
        .map(|i| rms[i.saturating_sub(3)..(i + 1)].iter().sum::<f32>() / 4.0)
        .collect();
    let mut env: Vec<f32> = smooth.windows(2).map(|w| (w[1] - w[0]).max(0.0)).collect();
    let n = env.len().max(1) as f32;
    let mean = env.iter().sum::<f32>() / n;
    let sd = (env.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / n)
        .sqrt()
        .max(1e-12);
    env.iter_mut().for_each(|v| *v = (*v - mean) / sd);
    env
}

/// Onsets of the whole signal plus onsets of its low band (below ~200 Hz: kick and
/// bass), each normalised: the low band carries the beat when cymbals fill every
/// subdivision above it.
fn onset_envelope(x: &[f32]) -> Vec<f32> {
    let a = (-std::f32::consts::TAU * 200.0 / SR).exp();
    let (mut y1, mut y2) = (0.0f32, 0.0f32);
    let low: Vec<f32> = x
        .iter()
        .map(|&v| {
            y1 = v + a * (y1 - v);
            y2 = y1 + a * (y2 - y1);
            y2
        })
        .collect();
    band_onsets(x)
        .iter()
        .zip(band_onsets(&low))
        .map(|(a, b)| a + b)
        .collect()
}

/// Tempo by autocorrelation of the onset envelope: each candidate BPM scores the sum of
/// the autocorrelation at one to four beats (a comb), which favours the beat over its
/// subdivisions, weighted by the usual perceptual tempo prior (log-Gaussian around
/// 120 BPM, as in Ellis's beat tracker) against half- and double-tempo answers.
/// Fractional lags are interpolated, so the answer is not quantised.
pub fn estimate_bpm(x: &[f32]) -> f32 {
    let env = onset_envelope(x);
    let rate = SR / 110.0;
    let max_lag = (rate * 60.0 / 50.0 * 4.0) as usize + 2;
    let ac: Vec<f32> = (0..max_lag.min(env.len()))
        .map(|lag| {
            env.iter().zip(&env[lag..]).map(|(a, b)| a * b).sum::<f32>() / (env.len() - lag) as f32
        })
        .collect();
    let at = |lag: f32| {
        let i = lag as usize;
        let f = lag - i as f32;
        match (ac.get(i), ac.get(i + 1)) {
            (Some(a), Some(b)) => a + (b - a) * f,
            _ => 0.0,
        }
    };
    let mut best = (f32::MIN, 0.0);
    let mut bpm = 50.0f32;
    while bpm <= 230.0 {
        let lag = rate * 60.0 / bpm;
        let prior = (-0.5 * ((bpm / 120.0).log2() / 0.9).powi(2)).exp();
        let score = prior * (1..=4).map(|k| at(lag * k as f32)).sum::<f32>();
        if score > best.0 {
            best = (score, bpm);
        }
        bpm += 0.1;
    }
    best.1
}

/// Krumhansl-Kessler key profiles (probe-tone ratings), major and minor.
const MAJOR: [f32; 12] = [
    6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
];
const MINOR: [f32; 12] = [
    6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
];

/// Chroma of a signal: amplitude at every semitone from E2 to B6 by Goertzel filters
/// over 32768-sample frames (long enough to resolve semitones in the bass), folded into
/// 12 pitch classes. Bright timbres put much of a note's energy into its harmonics (the
/// 3rd, a twelfth above, would pull the estimate a fifth up; the 5th adds a major
/// third), so each semitone first loses what the notes whose harmonics land there
/// explain; the bass register counts double. Each frame is normalised, so loud bars do
/// not outvote quiet ones.
fn chroma(x: &[f32]) -> [f32; 12] {
    let n = 32_768;
    let (lo, hi) = (40usize, 96usize);
    let mut out = [0.0f32; 12];
    for frame in x.chunks_exact(n) {
        let mut amp = vec![0.0f32; hi];
        for (midi, a) in amp.iter_mut().enumerate().skip(lo) {
            let f = 440.0 * 2f32.powf((midi as f32 - 69.0) / 12.0);
            let w = 2.0 * (std::f32::consts::TAU * f / SR).cos();
            let (mut s1, mut s2) = (0.0f32, 0.0f32);
            for (i, &v) in frame.iter().enumerate() {
                // Hann window against leakage between neighbouring semitones.
                let h = 0.5 - 0.5 * (std::f32::consts::TAU * i as f32 / n as f32).cos();
                let s = v * h + w * s1 - s2;
                s2 = s1;
                s1 = s;
            }
            *a = (s1 * s1 + s2 * s2 - w * s1 * s2).max(0.0).sqrt();
        }
        let mut c = [0.0f32; 12];
        for midi in lo..hi {
            let below = |k: usize| if midi >= lo + k { amp[midi - k] } else { 0.0 };
            let harmonics = 0.5 * below(12) + 0.5 * below(19) + 0.3 * below(24) + 0.3 * below(28);
            let salience = (amp[midi] - harmonics).max(0.0);
            // The bass names the chord's root, which tells a key from its relative
            // (A minor seven holds C major): notes below G3 count double.
            c[midi % 12] += salience * if midi < 55 { 2.0 } else { 1.0 };
        }
        let total: f32 = c.iter().sum();
        if total > 0.0 {
            c.iter().enumerate().for_each(|(k, v)| out[k] += v / total);
        }
    }
    out
}

fn correlation(a: &[f32; 12], b: &[f32; 12]) -> f32 {
    let (ma, mb) = (a.iter().sum::<f32>() / 12.0, b.iter().sum::<f32>() / 12.0);
    let (mut num, mut da, mut db) = (0.0, 0.0, 0.0);
    for k in 0..12 {
        num += (a[k] - ma) * (b[k] - mb);
        da += (a[k] - ma) * (a[k] - ma);
        db += (b[k] - mb) * (b[k] - mb);
    }
    num / (da * db).sqrt().max(1e-12)
}

/// The best-correlating of the 24 major and minor keys: (tonic pitch class, minor).
pub fn estimate_key(x: &[f32]) -> (usize, bool) {
    let c = chroma(x);
    let mut best = (f32::MIN, 0, false);
    for tonic in 0..12 {
        for (minor, profile) in [(false, &MAJOR), (true, &MINOR)] {
            let rotated: [f32; 12] = std::array::from_fn(|k| profile[(k + 12 - tonic) % 12]);
            let r = correlation(&c, &rotated);
            if r > best.0 {
                best = (r, tonic, minor);
            }
        }
    }
    (best.1, best.2)
}
