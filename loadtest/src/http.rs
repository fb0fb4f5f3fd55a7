//! A plain HTTP/1.1 client connection: one TCP connection, one request at a time.
//!
//! hyper's connection-level client rather than a pooled one: each poster owns its
//! connection outright, so there is no pool lock or checkout on the hot path, and a
//! poster's posts are strictly sequential — which is what lets the agents check order.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1::SendRequest, Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Error;

pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    host: String,
}

/// A response: status and whole body.
pub struct Reply {
    pub status: u16,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Result<Self, Error> {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        // Requests are small and latency is measured: never wait for Nagle.
        tcp.set_nodelay(true)?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Bytes,
    ) -> Result<Reply, Error> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req.body(Full::new(body))?;
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Reply { status, body })
    }

    /// A management call with a bearer token and an optional JSON body.
    pub async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: &str,
        json: Option<&serde_json::Value>,
    ) -> Result<Reply, Error> {
        let auth = format!("Bearer {token}");
        match json {
            Some(v) => {
                let body = Bytes::from(serde_json::to_vec(v)?);
                self.request(
                    method,
                    path,
                    &[
                        ("authorization", &auth),
                        ("content-type", "application/json"),
                    ],
                    body,
                )
                .await
            }
            None => {
                self.request(method, path, &[("authorization", &auth)], Bytes::new())
                    .await
            }
        }
    }
}
