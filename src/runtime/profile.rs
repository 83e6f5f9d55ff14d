//! Profiling a forward dispatch by dispatch (`vlmc profile`): each kernel in its own compute pass
//! with GPU timestamps around it when the device has TIMESTAMP_QUERY, else each in its own submit
//! timed by the wall clock. Slower than a normal forward (no overlap between kernels): for finding
//! where the time goes, not for end-to-end numbers.

use super::error::{Error, Result};
use super::recorder::{read_timestamps, DispatchProfile, Recorder};

/// Most dispatches one profiled forward may hold (two timestamps each in one query set).
pub const MAX_PROFILED: usize = 2048;

impl Recorder<'_> {
    /// Submits like [`Recorder::submit`], one pass per dispatch, waits, and returns each
    /// dispatch's kernel, grid, cost and time. Errors: [`Error::Limit`] past [`MAX_PROFILED`]
    /// dispatches, and what a submit can fail with.
    pub fn submit_profiled(mut self) -> Result<Vec<DispatchProfile>> {
        let gpu = self.gpu();
        let n = self.dispatches.len();
        if n > MAX_PROFILED {
            return Err(Error::Limit {
                op: "profile".into(),
                limit: "dispatches per profiled forward".into(),
                requested: n as u64,
                max: MAX_PROFILED as u64,
            });
        }
        let mut out: Vec<DispatchProfile> = self
            .dispatches
            .iter()
            .map(|d| DispatchProfile { kernel: d.label, grid: d.workgroups, cost: d.cost, ms: 0.0, timer: "wall" })
            .collect();
        if n > 0 && gpu.features().contains(wgpu::Features::TIMESTAMP_QUERY) {
            let qs = gpu.serialized(|| {
                gpu.device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("profile"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2 * n as u32,
                })
            });
            let submitted = self.encode_and_submit_dispatches(0..n, Some(&qs), true);
            self.finish_submitted(); // what was submitted is readable, whatever happens next
            submitted?;
            gpu.wait()?;
            let ticks = read_timestamps(gpu, &qs, 2 * n as u32)?;
            let period = gpu.queue.get_timestamp_period() as f64;
            for (i, p) in out.iter_mut().enumerate() {
                p.ms = ticks[2 * i + 1].saturating_sub(ticks[2 * i]) as f64 * period * 1e-6;
                p.timer = "gpu-timestamp";
            }
        } else {
            for (i, p) in out.iter_mut().enumerate() {
                let t0 = web_time::Instant::now();
                if let Err(e) = self.encode_and_submit_dispatches(i..i + 1, None, false) {
                    self.finish_submitted(); // 0..i ran; the rest never will
                    return Err(e);
                }
                gpu.wait()?;
                p.ms = t0.elapsed().as_secs_f64() * 1e3;
            }
            self.finish_submitted();
        }
        Ok(out)
    }
}
