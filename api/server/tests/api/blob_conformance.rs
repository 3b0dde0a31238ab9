//! The blob store contract, on the local filesystem and on a real S3-protocol server
//! (moto, started by scripts/test): the same suite for both.

use bytes::Bytes;
use cloak_api::blobs::{BlobStore, ObjectBlobs, S3Options};
use futures_util::TryStreamExt as _;
use uuid::Uuid;

async fn read(store: &dyn BlobStore, key: &str, range: std::ops::Range<u64>) -> Vec<u8> {
    let parts: Vec<Bytes> = store
        .get(key, range)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    parts.concat()
}

async fn conformance(store: &dyn BlobStore) {
    let prefix = format!("t/{}", Uuid::new_v4().simple());
    let a = format!("{prefix}/a/00000000000000000000-x");
    let b = format!("{prefix}/a/00000000000000000100-y");
    let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
    store.put(&a, Bytes::from(data.clone())).await.unwrap();
    store.put(&b, Bytes::from_static(b"second")).await.unwrap();
    assert_eq!(read(store, &a, 0..10_000).await, data);
    assert_eq!(read(store, &a, 9_990..10_000).await, &data[9_990..]);
    assert_eq!(read(store, &b, 1..4).await, b"eco");
    // A blob larger than one read (files are read 1 MiB at a time), whole and in a range
    // that starts and ends inside reads.
    let big_key = format!("{prefix}/big");
    let big: Vec<u8> = (0..(3 << 20) + 5).map(|i: u32| (i % 251) as u8).collect();
    store.put(&big_key, Bytes::from(big.clone())).await.unwrap();
    assert_eq!(read(store, &big_key, 0..big.len() as u64).await, big);
    let (from, to) = ((1 << 20) - 7, (3 << 20) + 2);
    assert_eq!(
        read(store, &big_key, from..to).await,
        &big[from as usize..to as usize]
    );
    store.delete(&big_key).await.unwrap();
    let mut keys = store.list(&prefix).await.unwrap();
    keys.sort();
    assert_eq!(keys, vec![a.clone(), b.clone()]);
    // Replacing a key replaces its bytes.
    store.put(&b, Bytes::from_static(b"third!")).await.unwrap();
    assert_eq!(read(store, &b, 0..6).await, b"third!");
    store.delete(&a).await.unwrap();
    store.delete(&a).await.unwrap(); // deleting twice is fine
    assert_eq!(store.list(&prefix).await.unwrap(), vec![b.clone()]);
    assert!(store.get(&a, 0..1).await.is_err());
    assert_eq!(store.delete_prefix(&prefix).await.unwrap(), 1);
    assert!(store.list(&prefix).await.unwrap().is_empty());
    assert_eq!(store.delete_prefix(&prefix).await.unwrap(), 0);
}

#[tokio::test]
async fn the_filesystem_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let store = ObjectBlobs::open(
        &dir.path().join("blobs").display().to_string(),
        &S3Options::default(),
    )
    .unwrap();
    assert_eq!(store.kind(), "file");
    conformance(&store).await;
    // Empty directories go with their last blob.
    let left: Vec<_> = std::fs::read_dir(dir.path().join("blobs"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn the_s3_store_keeps_the_contract() {
    let endpoint = std::env::var("CLOAK_TEST_S3_ENDPOINT").expect(
        "CLOAK_TEST_S3_ENDPOINT is not set: run the suite with scripts/test, which starts an S3 server",
    );
    let s3 = S3Options {
        endpoint: Some(endpoint),
        region: Some("us-east-1".into()),
        access_key_id: Some("test".into()),
        secret_access_key: Some("test".to_owned().into()),
    };
    let store = ObjectBlobs::open(
        &format!("s3://cloak-test/conformance-{}", Uuid::new_v4().simple()),
        &s3,
    )
    .unwrap();
    assert_eq!(store.kind(), "s3");
    conformance(&store).await;
}
