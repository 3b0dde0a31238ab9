//! Criterion benchmarks of the MLS core: encrypt, decrypt, and one commit adding 50 devices.
//! `cargo bench -p cloak-sdk --bench mls`; results in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cloak_sdk::{Conversation, Incoming, Payload, PayloadKind};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use openmls::prelude::KeyPackage;
use uuid::Uuid;

mod common;

use common::{Device, device, key_package};

/// A conversation of `n` devices; returns the devices and their conversations (index 0 created it).
fn group(n: usize) -> Vec<(Device, Conversation)> {
    let tenant = Uuid::new_v4();
    let creator = device(tenant);
    let mut conv = Conversation::create(
        &creator.provider,
        &creator.identity,
        &creator.ids,
        Uuid::new_v4(),
        None,
    )
    .unwrap();
    let others: Vec<Device> = (1..n).map(|_| device(tenant)).collect();
    let mut members = Vec::new();
    if !others.is_empty() {
        let kps: Vec<KeyPackage> = others.iter().map(|d| key_package(&creator, d)).collect();
        let pending = conv
            .add_devices(&creator.provider, &creator.identity, &kps)
            .unwrap();
        conv.confirm_commit(&creator.provider).unwrap();
        let welcome = pending.welcome.unwrap();
        for d in others {
            let joined = Conversation::stage_join(&d.provider, &welcome)
                .unwrap()
                .join(&d.provider)
                .unwrap();
            members.push((d, joined));
        }
    }
    let mut all = vec![(creator, conv)];
    all.extend(members);
    all
}

fn text(bytes: usize) -> Payload {
    Payload::new(
        Uuid::new_v4(),
        0,
        PayloadKind::Text {
            text: "x".repeat(bytes),
        },
    )
}

fn bench(c: &mut Criterion) {
    // Ciphertext sizes for a 200-byte text message.
    for n in [2, 5] {
        let mut g = group(n);
        let (d, conv) = &mut g[0];
        let ct = conv.encrypt(&d.provider, &d.identity, &text(200)).unwrap();
        println!(
            "ciphertext for a 200-byte text in a {n}-device conversation: {} bytes",
            ct.len()
        );
    }

    let mut g = group(2);
    let payload = text(200);
    let mut enc = c.benchmark_group("mls");
    enc.throughput(Throughput::Elements(1));
    {
        let (d, conv) = &mut g[0];
        enc.bench_function("encrypt_200B", |b| {
            b.iter(|| conv.encrypt(&d.provider, &d.identity, &payload).unwrap())
        });
    }

    // Decrypt: batches of fresh ciphertexts from the sender, processed in order once each.
    const BATCH: usize = 100;
    let mut g = group(2);
    let (sender, receiver) = g.split_at_mut(1);
    let (s_dev, s_conv) = &mut sender[0];
    let (r_dev, r_conv) = &mut receiver[0];
    enc.throughput(Throughput::Elements(BATCH as u64));
    enc.bench_function("decrypt_200B_x100", |b| {
        b.iter_batched(
            || {
                (0..BATCH)
                    .map(|_| {
                        s_conv
                            .encrypt(&s_dev.provider, &s_dev.identity, &payload)
                            .unwrap()
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                for ct in batch {
                    let got = r_conv.process(&r_dev.provider, &ct).unwrap();
                    assert!(matches!(got, Incoming::Application { .. }));
                }
            },
            BatchSize::PerIteration,
        )
    });

    // One commit that adds 50 devices, from a fresh one-device conversation each time.
    enc.throughput(Throughput::Elements(1));
    enc.sample_size(10);
    enc.bench_function("add_50_devices", |b| {
        b.iter_batched(
            || {
                let tenant = Uuid::new_v4();
                let creator = device(tenant);
                let conv = Conversation::create(
                    &creator.provider,
                    &creator.identity,
                    &creator.ids,
                    Uuid::new_v4(),
                    None,
                )
                .unwrap();
                let kps: Vec<KeyPackage> = (0..50)
                    .map(|_| key_package(&creator, &device(tenant)))
                    .collect();
                (creator, conv, kps)
            },
            |(creator, mut conv, kps)| {
                conv.add_devices(&creator.provider, &creator.identity, &kps)
                    .unwrap();
                conv.confirm_commit(&creator.provider).unwrap();
                conv.epoch()
            },
            BatchSize::PerIteration,
        )
    });
    enc.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = bench
}
criterion_main!(benches);
