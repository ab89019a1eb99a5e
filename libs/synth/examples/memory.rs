//! Peak heap memory of each stage of a long song, measured by a counting allocator:
//! `cargo run --release -p cadenza-synth --example memory [seconds]` (default 600).
//! Prints, per stage, the bytes of its inputs and outputs and the peak of everything
//! else (the working memory the stage adds beside them).
#![allow(unsafe_code)] // a global allocator is unsafe by nature; only in this tool

use std::alloc::{GlobalAlloc, Layout, System};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicUsize, Ordering};

use cadenza_synth::{Artifact, SongRequest, Stage, render_stage, stage_inputs};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            if new_size >= layout.size() {
                let now = CURRENT.fetch_add(new_size - layout.size(), Ordering::Relaxed) + new_size
                    - layout.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                CURRENT.fetch_sub(layout.size() - new_size, Ordering::Relaxed);
            }
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secs = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let req = SongRequest {
        prompt: "upbeat synth-pop about city lights".into(),
        duration_seconds: secs,
        has_vocals: true,
        style_strength: 0.8,
        seed: 1,
        lyrics: None,
    };
    let mut store: Vec<Artifact> = Vec::new();
    println!("{secs}-second song, sizes in MB (1 MB = 10^6 bytes)");
    println!(
        "{:<12} {:>8} {:>8} {:>10} {:>12}",
        "stage", "inputs", "outputs", "peak heap", "working set"
    );
    let mut overall = 0.0f64;
    for stage in [
        Stage::Lyrics,
        Stage::Composition,
        Stage::Arrangement,
        Stage::Vocals,
        Stage::Mix,
        Stage::Master,
    ] {
        let wanted = stage_inputs(stage, req.has_vocals);
        let inputs: Vec<Artifact> = store
            .iter()
            .filter(|a| wanted.contains(&a.kind))
            .cloned()
            .collect();
        let in_bytes: usize = inputs.iter().map(|a| a.bytes.len()).sum();
        let base = CURRENT.load(Ordering::Relaxed);
        PEAK.store(base, Ordering::Relaxed);
        let out = render_stage(stage, &req, &inputs, &mut |_| ControlFlow::Continue(()))?;
        let peak = PEAK.load(Ordering::Relaxed) - base;
        let out_bytes: usize = out.iter().map(|a| a.bytes.len()).sum();
        let working = peak.saturating_sub(out_bytes);
        overall = overall.max(mb(peak + in_bytes));
        println!(
            "{:<12} {:>8.1} {:>8.1} {:>10.1} {:>12.1}",
            format!("{stage:?}"),
            mb(in_bytes),
            mb(out_bytes),
            mb(peak),
            mb(working)
        );
        store.extend(out);
    }
    println!(
        "peak heap: the stage's allocations (outputs included, inputs excluded); \
         working set: peak heap minus the outputs"
    );
    println!("largest stage peak including its inputs: {overall:.1} MB");
    Ok(())
}
