//! Channel metadata with revisions, user metadata, and a lock guarding a write.
//!
//! Run `switchboard serve`, export `SWITCHBOARD_APP_ID` / `SWITCHBOARD_APP_CERT` as it
//! prints them (see `examples/common/mod.rs`), then:
//!
//! ```text
//! cargo run -p switchboard-client --example storage_locks -- dave board
//! ```
//!
//! It subscribes to the channel with storage and lock events, sets and updates channel
//! metadata (the update guarded by the item's revision), sets its own user metadata,
//! takes a lock and writes under it, then releases and removes the lock, printing every
//! storage and lock event it gets on the way.

mod common;

use futures_util::StreamExt;
use std::time::Duration;
use switchboard_client::{
    ChannelType, MetadataItem, MetadataOptions, SubscribeOptions, UserMetadataOptions,
};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let user = args.next().unwrap_or_else(|| "dave".into());
    let channel = args.next().unwrap_or_else(|| "board".into());
    let client = common::login(&user).await;
    let options = SubscribeOptions {
        with_metadata: true,
        with_lock: true,
        ..Default::default()
    };
    let _sub = client
        .subscribe(&channel, options)
        .await
        .expect("subscribe");
    let mut storage_events = client.storage_events();
    let mut lock_events = client.lock_events();
    let (storage, lock) = (client.storage(), client.lock());
    let ty = ChannelType::Message;

    storage
        .set_channel_metadata(
            &channel,
            ty,
            [MetadataItem::new("topic", "chess")],
            MetadataOptions::default(),
        )
        .await
        .expect("set channel metadata");
    let data = storage
        .get_channel_metadata(&channel, ty)
        .await
        .expect("get");
    let revision = data.items.get("topic").map(|d| d.revision).unwrap_or(-1);
    println!("topic = chess at revision {revision}");
    // Applies only if nobody changed "topic" since we read it.
    let guarded = MetadataItem::new("topic", "go").with_revision(revision);
    storage
        .update_channel_metadata(&channel, ty, [guarded], MetadataOptions::default())
        .await
        .expect("update with the revision we read");
    storage
        .set_user_metadata(
            [MetadataItem::new("status", "playing")],
            UserMetadataOptions::default(),
        )
        .await
        .expect("set user metadata");

    // A lock left over from an earlier run of this example would make set_lock fail
    // with −14004 (R156); start clean.
    let _ = lock.remove_lock(&channel, ty, "referee").await;
    lock.set_lock(&channel, ty, "referee", Some(30))
        .await
        .expect("set lock");
    lock.acquire_lock(&channel, ty, "referee", false)
        .await
        .expect("acquire");
    // A write that only the lock's owner may make.
    let under_lock = MetadataOptions {
        lock_name: "referee".into(),
        ..Default::default()
    };
    storage
        .set_channel_metadata(
            &channel,
            ty,
            [MetadataItem::new("score", "1-0")],
            under_lock,
        )
        .await
        .expect("write under the lock");
    println!(
        "locks: {:?}",
        lock.get_lock(&channel, ty).await.expect("get lock")
    );
    lock.release_lock(&channel, ty, "referee")
        .await
        .expect("release");
    lock.remove_lock(&channel, ty, "referee")
        .await
        .expect("remove");

    // The events of all of the above (each change, in order), until quiet for a second.
    loop {
        tokio::select! {
            Some(Ok(e)) = storage_events.next() => {
                let items: Vec<_> = e.data.items.iter().map(|(k, d)| format!("{k}={}@{}", d.value, d.revision)).collect();
                println!("storage {:?} {:?} {}: {}", e.event_type, e.storage_type, e.channel_name, items.join(" "));
            }
            Some(Ok(e)) = lock_events.next() => println!("lock {:?} {} owner={:?}", e.event_type, e.lock_name, e.owner),
            _ = tokio::time::sleep(Duration::from_secs(1)) => break,
        }
    }
    client.logout().await.expect("logout");
}
