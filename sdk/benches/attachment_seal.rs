//! Attachment sealing and opening throughput on one core (STREAM over XChaCha20-Poly1305,
//! 64 KiB chunks, plus the SHA-256 digest the opener checks), as the SDK does it: sealed
//! in place into 4 MiB upload parts, each hashed once sealed; opened from 64 KiB reads.
//! `cargo bench -p cloak-sdk --bench attachment_seal`; results in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cloak_sdk::attachment::seal::{self, CHUNK, Opener, Sealer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::Digest as _;

const FILE: usize = 16 << 20;

/// The SDK's upload part: 64 chunks.
const CHUNKS_PER_PART: usize = 64;

/// Seals `data` part by part as the SDK does, hashing each part as it is done and handing
/// it to `sink` (the upload, in the SDK); returns the digest.
fn seal_parts(sealer: &Sealer, data: &[u8], mut sink: impl FnMut(&[u8])) -> [u8; 32] {
    let mut hasher = sha2::Sha256::new();
    let mut part = Vec::with_capacity(CHUNKS_PER_PART * seal::SEALED_CHUNK + seal::HEADER);
    part.extend_from_slice(sealer.header());
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        sealer.seal_into(i as u64, chunk, &mut part).unwrap();
        if (i + 1) % CHUNKS_PER_PART == 0 {
            hasher.update(&part);
            sink(&part);
            part.clear();
        }
    }
    hasher.update(&part);
    sink(&part);
    hasher.finalize().into()
}

fn bench(c: &mut Criterion) {
    let data: Vec<u8> = (0..FILE).map(|i| (i * 31 % 251) as u8).collect();
    let mut group = c.benchmark_group("attachment");
    group.throughput(Throughput::Bytes(FILE as u64));
    group.sample_size(20);
    group.bench_function("seal 16 MiB (encrypt + digest)", |b| {
        b.iter(|| {
            let (sealer, _key) = Sealer::new(FILE as u64, &mut rand::rngs::OsRng);
            seal_parts(&sealer, &data, |part| {
                std::hint::black_box(part);
            })
        })
    });
    let (sealer, key) = Sealer::new(FILE as u64, &mut rand::rngs::OsRng);
    let mut blob = Vec::with_capacity(seal::sealed_len(FILE as u64) as usize);
    let digest = seal_parts(&sealer, &data, |part| blob.extend_from_slice(part));
    group.bench_function("open 16 MiB (decrypt + digest), 64 KiB reads", |b| {
        b.iter(|| {
            let mut opener = Opener::new(&key, digest, FILE as u64);
            let mut n = 0;
            for piece in blob.chunks(64 << 10) {
                n += opener.push(piece).unwrap().len();
            }
            n + opener.finish().unwrap().len()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
