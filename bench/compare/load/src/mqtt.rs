//! MQTT 3.1.1 with rumqttc, QoS 0 (no acknowledgement): one client per user, a topic
//! per channel / user. The fanout publisher's event loop runs in its own task; a
//! receiving client's event loop is driven by `recv`, which also writes what `send`
//! queued.

use crate::common::{decode_binary, encode_binary, Msg};
use crate::peer::{p2p_user, Conn, Peer};
use anyhow::bail;
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use std::time::Duration;

pub struct Mqtt {
    pub host: String,
    pub port: u16,
    pub size: usize,
}

pub struct MqttConn {
    client: AsyncClient,
    /// `None` for the fanout publisher, whose event loop runs in its own task.
    ev: Option<EventLoop>,
    size: usize,
}

impl Mqtt {
    fn options(&self, id: String) -> MqttOptions {
        let mut opts = MqttOptions::new(id, self.host.clone(), self.port);
        opts.set_keep_alive(Duration::from_secs(60));
        opts.set_max_packet_size(1 << 20, 1 << 20);
        opts
    }

    /// A client subscribed to `topic`, its SUBACK received.
    async fn subscribed(&self, id: String, topic: &str) -> anyhow::Result<MqttConn> {
        let (client, mut ev) = AsyncClient::new(self.options(id.clone()), 64);
        client.subscribe(topic, QoS::AtMostOnce).await?;
        loop {
            match tokio::time::timeout(Duration::from_secs(10), ev.poll()).await {
                Ok(Ok(Event::Incoming(Packet::SubAck(_)))) => break,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("mqtt {id}: {e}"),
                Err(_) => bail!("mqtt {id}: no SUBACK in 10 s"),
            }
        }
        Ok(MqttConn {
            client,
            ev: Some(ev),
            size: self.size,
        })
    }
}

impl Peer for Mqtt {
    type C = MqttConn;

    async fn subscriber(&self, i: u32, channel: &str) -> anyhow::Result<MqttConn> {
        self.subscribed(format!("bench-sub-{i}"), channel).await
    }

    async fn publisher(&self, channel: &str) -> anyhow::Result<(MqttConn, String)> {
        let (client, mut ev) = AsyncClient::new(self.options("bench-pub-0".into()), 1024);
        tokio::task::spawn_local(async move {
            loop {
                if let Err(e) = ev.poll().await {
                    eprintln!("mqtt publisher: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        let c = MqttConn {
            client,
            ev: None,
            size: self.size,
        };
        Ok((c, channel.to_string()))
    }

    async fn p2p_side(&self, i: u32) -> anyhow::Result<(MqttConn, String)> {
        let me = p2p_user(i);
        Ok((self.subscribed(me.clone(), &me).await?, p2p_user(i ^ 1)))
    }
}

impl Conn for MqttConn {
    async fn recv(&mut self, out: &mut Vec<Msg>) -> anyhow::Result<()> {
        let Some(ev) = self.ev.as_mut() else {
            return std::future::pending().await;
        };
        match ev.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                out.extend(decode_binary(&p.payload));
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) => bail!("mqtt: {e}"),
        }
    }

    async fn send(&mut self, to: &str, m: Msg) -> anyhow::Result<()> {
        let mut p = Vec::with_capacity(self.size.max(20));
        encode_binary(self.size, m, &mut p);
        if self.ev.is_some() {
            // Our own `recv` drives the event loop: never wait for room here.
            self.client.try_publish(to, QoS::AtMostOnce, false, p)?;
        } else {
            self.client.publish(to, QoS::AtMostOnce, false, p).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}
