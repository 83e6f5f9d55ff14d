//! `Recorder::launch`: the one way a launcher records a kernel. It checks every tensor against the
//! kernel's declared bindings (dtype, presence), binds the `Gpu`'s shared dummy buffer for absent
//! optional inputs, fetches the cached pipeline for (kernel, dtype), and adds the launch's cost.

use std::sync::Arc;

use super::registry::{Elem, Kernel};
use crate::runtime::{Cost, DType, Error, Recorder, Result, Tensor, READY, UNWRITTEN};

impl Recorder<'_> {
    /// Records `kernel` in the compute `dtype`: `tensors` follow `kernel.bindings` in order
    /// (`None` only for optional ones), `params` is binding 0, `grid` the workgroup counts.
    ///
    /// Errors: [`Error::DType`] naming `kernel.binding` when a tensor's dtype is not the one the
    /// binding holds (or `dtype` is not one the kernel is built for); [`Error::Unsupported`] when
    /// the adapter lacks a feature the kernel needs; [`Error::Limit`] for a grid past the device's.
    pub(crate) fn launch<P: bytemuck::Pod>(
        &mut self,
        kernel: &'static Kernel,
        dtype: DType,
        params: &P,
        tensors: &[Option<&Tensor>],
        grid: [u32; 3],
        cost: Cost,
    ) -> Result<()> {
        let named = |b: &str| format!("{}.{b}", kernel.name);
        if !kernel.dtypes.contains(&dtype) {
            let first = kernel.bindings.iter().find(|b| b.elem == Elem::Float).map(|b| b.name).unwrap_or("input");
            return Err(Error::DType {
                tensor: named(first),
                dtype: format!("{dtype:?}"),
                expected: format!("one of {:?}", kernel.dtypes),
            });
        }
        debug_assert_eq!(tensors.len(), kernel.bindings.len(), "launcher of `{}` passed the wrong number of tensors", kernel.name);
        if tensors.len() != kernel.bindings.len() {
            let needs = format!("{} tensors from its launcher, got {}", kernel.bindings.len(), tensors.len());
            return Err(Error::Unsupported { what: format!("kernel `{}`", kernel.name), needs });
        }
        let mut buffers = Vec::with_capacity(tensors.len());
        let mut written = Vec::new();
        for (b, t) in kernel.bindings.iter().zip(tensors) {
            let buf = match t {
                None if b.optional => self.gpu().dummy(),
                None => return Err(Error::input(named(b.name), "required binding left empty")),
                Some(t) => {
                    t.check_gpu(self.gpu(), &named(b.name))?;
                    let want = match b.elem {
                        Elem::Float => dtype,
                        Elem::U32 => DType::U32,
                        Elem::F32 => DType::F32,
                    };
                    if t.dtype() != want {
                        return Err(Error::DType {
                            tensor: named(b.name),
                            dtype: format!("{:?}", t.dtype()),
                            expected: format!("{want:?}"),
                        });
                    }
                    // Valid contents, or written earlier in this recorder; another, unsubmitted
                    // recorder's output is not there yet (nor may this one write over it).
                    match t.pooled().writer() {
                        READY => {}
                        w if w == self.id => {}
                        UNWRITTEN if b.writes => {}
                        UNWRITTEN => return Err(Error::Unwritten { tensor: named(b.name) }),
                        _ => return Err(Error::Pending { tensor: named(b.name) }),
                    }
                    if b.writes {
                        written.push(Arc::clone(t.pooled()));
                    }
                    Arc::clone(t.pooled())
                }
            };
            buffers.push((b.slot, buf));
        }
        let pipeline = self.gpu().pipeline(kernel, dtype)?;
        self.push(kernel.name, pipeline, params, buffers, grid, cost)?;
        // Unreadable until `submit`: reading it now would return stale or zero data.
        for w in written {
            w.set_writer(self.id);
            self.written.push(w);
        }
        Ok(())
    }
}
