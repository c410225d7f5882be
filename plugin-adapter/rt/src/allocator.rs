//! The global allocator: kernel-core's [`HeapAllocator`] (shared with the kernel component)
//! over the module's own linear memory ([`WasmMemory`]), growing it with `memory.grow` by the
//! pages it needs.

use kernel_core::{HeapAllocator, WasmMemory};

#[global_allocator]
static GLOBAL: HeapAllocator<WasmMemory> = HeapAllocator::new(WasmMemory);
