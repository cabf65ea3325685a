//! The generic ioctl request encoding of `<asm-generic/ioctl.h>` (x86,
//! arm, riscv…): `_IO`, `_IOR`, `_IOW`, `_IOWR` as `const fn`s, so request
//! numbers are written as their C definitions are, with the argument
//! struct's size taken from the Rust copy of that struct.

/// `_IOC_WRITE`: userland writes, the kernel reads.
const WRITE: u64 = 1;
/// `_IOC_READ`: the kernel writes, userland reads.
const READ: u64 = 2;

/// `_IOC(dir, type, nr, size)`.
const fn ioc(dir: u64, ty: u8, nr: u8, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}

/// `_IOR(type, nr, T)`.
pub(crate) const fn ior<T>(ty: u8, nr: u8) -> u64 {
    ioc(READ, ty, nr, std::mem::size_of::<T>())
}

/// `_IOW(type, nr, T)`.
pub(crate) const fn iow<T>(ty: u8, nr: u8) -> u64 {
    ioc(WRITE, ty, nr, std::mem::size_of::<T>())
}

/// `_IOWR(type, nr, T)`.
pub(crate) const fn iowr<T>(ty: u8, nr: u8) -> u64 {
    ioc(READ | WRITE, ty, nr, std::mem::size_of::<T>())
}
