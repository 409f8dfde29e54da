//! The test upstream DNS server (`tbnode dns-forward`): runs in a container of its own on the
//! cluster's private network and answers on port 53 (UDP and TCP) by asking Docker's embedded
//! resolver of its own container, so nodes can use a non-loopback nameserver in /etc/resolv.conf
//! (a real CoreDNS's `loop` plugin refuses a loopback upstream) and still resolve what Docker does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::net::{TcpListener, UdpSocket};

const UPSTREAM: &str = "127.0.0.11:53";

pub fn main(args: &[String]) -> i32 {
    crate::run_component("dns-forward", args, run)
}

async fn answer(query: Vec<u8>) -> Result<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await?;
    socket.send_to(&query, UPSTREAM).await?;
    let mut buf = vec![0u8; 65535];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .context("upstream timeout")??;
    buf.truncate(n);
    Ok(buf)
}

async fn run(_args: Vec<String>) -> Result<()> {
    let listen: SocketAddr = "0.0.0.0:53".parse()?;
    let udp = Arc::new(UdpSocket::bind(listen).await.context("listen on udp :53")?);
    let tcp = TcpListener::bind(listen)
        .await
        .context("listen on tcp :53")?;
    eprintln!("forwarding DNS on :53 to {UPSTREAM}");
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = tcp.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                if let Ok(mut upstream) = tokio::net::TcpStream::connect(UPSTREAM).await {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, from) = udp.recv_from(&mut buf).await?;
        let query = buf[..n].to_vec();
        let udp = udp.clone();
        tokio::spawn(async move {
            if let Ok(reply) = answer(query).await {
                let _ = udp.send_to(&reply, from).await;
            }
        });
    }
}
