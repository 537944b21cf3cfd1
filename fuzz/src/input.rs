//! Reading a structured input from the fuzzer's bytes, and writing one (for the seeds).
//!
//! The stack targets take a script: a sequence of operations, each a tag byte and its
//! arguments (little-endian integers, length-prefixed byte strings). A script that ends in
//! the middle of an operation ends there. The format is ours rather than `arbitrary`'s so
//! that the seed corpus can be written from the test frames ([`Script`]) and read back the
//! same way by every version of the targets.

/// A cursor over the fuzzer's bytes.
pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Input<'a> {
        Input { data }
    }

    /// Whether every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte.
    pub fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(b)
    }

    /// The next two bytes, little-endian.
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }

    /// The next four bytes, little-endian.
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.u8()?, self.u8()?, self.u8()?, self.u8()?]))
    }

    /// A byte string: a 16-bit length taken modulo `max + 1`, then that many bytes (fewer
    /// if the input ends first).
    pub fn bytes(&mut self, max: usize) -> Option<&'a [u8]> {
        let len = usize::from(self.u16()?) % (max + 1);
        let (b, rest) = self.data.split_at(len.min(self.data.len()));
        self.data = rest;
        Some(b)
    }
}

/// Writes a script that [`Input`] reads back.
#[derive(Default)]
pub struct Script {
    /// The bytes so far.
    pub bytes: Vec<u8>,
}

impl Script {
    /// Appends a byte.
    pub fn u8(&mut self, b: u8) -> &mut Self {
        self.bytes.push(b);
        self
    }

    /// Appends a 16-bit integer.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a 32-bit integer.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    /// Appends a byte string with its length (at most 65535 bytes).
    pub fn data(&mut self, b: &[u8]) -> &mut Self {
        self.u16(u16::try_from(b.len()).expect("a seed's byte string fits 16 bits"));
        self.bytes.extend_from_slice(b);
        self
    }
}
