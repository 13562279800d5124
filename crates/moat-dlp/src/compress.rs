//! Compressors for tests (feature `test-support`, and this crate's own tests): the codings
//! [`crate::decode`] undoes, so a test can send a body the way a guest or a client would.
#![allow(clippy::expect_used, reason = "compressing into memory cannot fail")]

use std::io::Write;

use flate2::Compression;
use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};

/// `gzip`.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("compress into memory");
    e.finish().expect("compress into memory")
}

/// `deflate` as HTTP means it: a zlib stream.
pub fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = ZlibEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("compress into memory");
    e.finish().expect("compress into memory")
}

/// `deflate` as some servers send it: raw, without the zlib wrapper.
pub fn raw_deflate(data: &[u8]) -> Vec<u8> {
    let mut e = DeflateEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).expect("compress into memory");
    e.finish().expect("compress into memory")
}

/// `br`.
pub fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut w = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        w.write_all(data).expect("compress into memory");
    }
    out
}
