//! Attachment sealing and opening throughput on one core (STREAM over XChaCha20-Poly1305,
//! 64 KiB chunks, plus the SHA-256 digest the opener checks).
//! `cargo bench -p cloak-sdk --bench attachment_seal`; results in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cloak_sdk::attachment::seal::{self, CHUNK, Opener, Sealer};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sha2::Digest as _;

const FILE: usize = 16 << 20;

fn seal_all(sealer: &Sealer, data: &[u8]) -> Vec<u8> {
    let mut blob = Vec::with_capacity(seal::sealed_len(data.len() as u64) as usize);
    blob.extend_from_slice(sealer.header());
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        blob.extend(sealer.seal(i as u64, chunk).unwrap());
    }
    blob
}

fn bench(c: &mut Criterion) {
    let data: Vec<u8> = (0..FILE).map(|i| (i * 31 % 251) as u8).collect();
    let mut group = c.benchmark_group("attachment");
    group.throughput(Throughput::Bytes(FILE as u64));
    group.sample_size(20);
    group.bench_function("seal 16 MiB (encrypt + digest)", |b| {
        b.iter(|| {
            let (sealer, _key) = Sealer::new(FILE as u64, &mut rand::rngs::OsRng);
            let blob = seal_all(&sealer, &data);
            sha2::Sha256::digest(&blob)
        })
    });
    let (sealer, key) = Sealer::new(FILE as u64, &mut rand::rngs::OsRng);
    let blob = seal_all(&sealer, &data);
    let digest: [u8; 32] = sha2::Sha256::digest(&blob).into();
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
