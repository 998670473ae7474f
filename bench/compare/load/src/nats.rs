//! NATS core with async-nats: one client per user, a subject per channel / user.
//! `publish` only queues into the client's connection task, which writes whenever
//! it has data; `flush` is called when the sender would otherwise wait.

use crate::common::{decode_binary, encode_binary, Msg};
use crate::peer::{p2p_user, Conn, Peer};
use bytes::Bytes;
use futures_util::StreamExt;

pub struct Nats {
    pub url: String,
    pub size: usize,
}

pub struct NatsConn {
    client: async_nats::Client,
    sub: Option<async_nats::Subscriber>,
    size: usize,
}

impl Nats {
    async fn connect(&self, subject: Option<&str>) -> anyhow::Result<NatsConn> {
        let client = async_nats::ConnectOptions::new()
            .subscription_capacity(1 << 16)
            .connect(self.url.as_str())
            .await?;
        let sub = match subject {
            Some(s) => Some(client.subscribe(s.to_string()).await?),
            None => None,
        };
        // The server has the SUB once it answered the PING behind it.
        client.flush().await?;
        Ok(NatsConn {
            client,
            sub,
            size: self.size,
        })
    }
}

impl Peer for Nats {
    type C = NatsConn;

    async fn subscriber(&self, _i: u32, channel: &str) -> anyhow::Result<NatsConn> {
        self.connect(Some(channel)).await
    }

    async fn publisher(&self, channel: &str) -> anyhow::Result<(NatsConn, String)> {
        Ok((self.connect(None).await?, channel.to_string()))
    }

    async fn p2p_side(&self, i: u32) -> anyhow::Result<(NatsConn, String)> {
        Ok((self.connect(Some(&p2p_user(i))).await?, p2p_user(i ^ 1)))
    }
}

impl Conn for NatsConn {
    async fn recv(&mut self, out: &mut Vec<Msg>) -> anyhow::Result<()> {
        let Some(sub) = self.sub.as_mut() else {
            return std::future::pending().await;
        };
        match sub.next().await {
            Some(m) => {
                out.extend(decode_binary(&m.payload));
                Ok(())
            }
            None => anyhow::bail!("subscription ended"),
        }
    }

    async fn send(&mut self, to: &str, m: Msg) -> anyhow::Result<()> {
        let mut p = Vec::with_capacity(self.size.max(20));
        encode_binary(self.size, m, &mut p);
        self.client.publish(to.to_string(), Bytes::from(p)).await?;
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        if self.sub.is_none() {
            // The fanout publisher, about to wait for the window.
            self.client.flush().await?;
        }
        Ok(())
    }
}
