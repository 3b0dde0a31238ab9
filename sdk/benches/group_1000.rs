//! A 1,000-member group: created by one device, grown by commits that add 50 devices at a
//! time, joined from its Welcome by the last device added, which then decrypts a message
//! the creator sends. Prints a table of timings (median of `RUNS` runs).
//! `cargo bench -p cloak-sdk --bench group_1000`; results in BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use cloak_sdk::{Conversation, Incoming, Payload, PayloadKind};
use openmls::prelude::KeyPackage;
use uuid::Uuid;

const MEMBERS: usize = 1000;
const BATCH: usize = 50;
const RUNS: usize = 3;

mod common;

use common::{Device, device, key_package};

struct Run {
    create: Duration,
    first_batch: Duration,
    last_batch: Duration,
    all_batches: Duration,
    join: Duration,
    encrypt: Duration,
    encrypt_next: Duration,
    decrypt: Duration,
    welcome_bytes: usize,
}

fn run() -> Run {
    let tenant = Uuid::new_v4();
    let creator = device(tenant);
    let started = Instant::now();
    let mut conv = Conversation::create(
        &creator.provider,
        &creator.identity,
        &creator.ids,
        Uuid::new_v4(),
        None,
    )
    .unwrap();
    let create = started.elapsed();
    let mut batches = Vec::new();
    let mut last = None;
    let mut welcome = Vec::new();
    while conv.members().len() < MEMBERS {
        let n = BATCH.min(MEMBERS - conv.members().len());
        // KeyPackages are made (and validated) outside the timing: in the product they
        // come from the server's directory.
        let devices: Vec<Device> = (0..n).map(|_| device(tenant)).collect();
        let kps: Vec<KeyPackage> = devices.iter().map(|d| key_package(&creator, d)).collect();
        let t = Instant::now();
        let pending = conv
            .add_devices(&creator.provider, &creator.identity, &kps)
            .unwrap();
        conv.confirm_commit(&creator.provider).unwrap();
        batches.push(t.elapsed());
        welcome = pending.welcome.unwrap();
        last = devices.into_iter().last();
    }
    let member = last.unwrap();
    let t = Instant::now();
    let mut joined = Conversation::stage_join(&member.provider, &welcome)
        .unwrap()
        .join(&member.provider)
        .unwrap();
    let join = t.elapsed();
    assert_eq!(joined.members().len(), MEMBERS);
    let payload = Payload::new(
        Uuid::new_v4(),
        0,
        PayloadKind::Text {
            text: "hello, thousand".into(),
        },
    );
    let t = Instant::now();
    let ct = conv
        .encrypt(&creator.provider, &creator.identity, &payload)
        .unwrap();
    let encrypt = t.elapsed();
    let t = Instant::now();
    conv.encrypt(&creator.provider, &creator.identity, &payload)
        .unwrap();
    let encrypt_next = t.elapsed();
    let t = Instant::now();
    let got = joined.process(&member.provider, &ct).unwrap();
    let decrypt = t.elapsed();
    assert!(matches!(got, Incoming::Application { payload: p, .. } if p == payload));
    Run {
        create,
        first_batch: batches[0],
        last_batch: *batches.last().unwrap(),
        all_batches: batches.iter().sum(),
        join,
        encrypt,
        encrypt_next,
        decrypt,
        welcome_bytes: welcome.len(),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: Vec<Run> = (0..RUNS).map(|_| run()).collect();
    let row = |name: &str, f: fn(&Run) -> Duration| {
        let d = median(runs.iter().map(f).collect());
        println!("| {name} | {:.2} ms |", d.as_secs_f64() * 1000.0);
    };
    println!("| 1,000-member group (median of {RUNS}) | time |");
    println!("|---|---|");
    row("create (1 member)", |r| r.create);
    row("commit adding 50 (to 1 → 51)", |r| r.first_batch);
    row("commit adding 49 (to 951 → 1,000)", |r| r.last_batch);
    row("all 20 commits", |r| r.all_batches);
    row("join from the last Welcome (1,000 leaves)", |r| r.join);
    row("encrypt the first message of the epoch", |r| r.encrypt);
    row("encrypt the next one", |r| r.encrypt_next);
    row("decrypt it (the new member)", |r| r.decrypt);
    let bytes = runs.iter().map(|r| r.welcome_bytes).max().unwrap_or(0);
    println!("| last Welcome's size | {bytes} bytes |");
}
