//! A small HTTP/1.1 server on 127.0.0.1 written over raw TCP, so that a test can make it
//! misbehave exactly: answer late, dribble a body, send one without end, redirect, or say
//! nothing. It counts the requests each path received.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the server answers a path.
#[derive(Clone)]
pub enum Reply {
    /// A whole answer (with `Content-Length`), after `delay`.
    Full {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        delay: Duration,
    },
    /// `200`, JSON, chunked, one byte every `every`, forever.
    Dribble { every: Duration },
    /// `200`, JSON, chunked, 16 KiB chunks as fast as the reader takes them, forever.
    Endless,
    /// Reads the request, then says nothing and keeps the connection open.
    Silent,
}

impl Reply {
    /// `200` with a JSON body and the given extra headers.
    pub fn json(body: impl Into<Vec<u8>>, headers: &[(&str, &str)]) -> Self {
        let mut all = vec![("Content-Type".to_string(), "application/json".to_string())];
        all.extend(headers.iter().map(|(n, v)| (n.to_string(), v.to_string())));
        Reply::Full {
            status: 200,
            headers: all,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }

    /// A redirect to `location`.
    pub fn redirect(status: u16, location: &str) -> Self {
        Reply::Full {
            status,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
            delay: Duration::ZERO,
        }
    }

    /// This answer, `delay` later.
    pub fn delayed(self, by: Duration) -> Self {
        match self {
            Reply::Full {
                status,
                headers,
                body,
                ..
            } => Reply::Full {
                status,
                headers,
                body,
                delay: by,
            },
            other => other,
        }
    }
}

#[derive(Clone)]
pub struct DocServer {
    pub port: u16,
    routes: Arc<Mutex<HashMap<String, Reply>>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl DocServer {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let server = Self {
            port,
            routes: Arc::default(),
            hits: Arc::default(),
        };
        let serving = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let serving = serving.clone();
                tokio::spawn(async move { serving.answer(stream).await });
            }
        });
        server
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn set(&self, path: &str, reply: Reply) {
        self.routes
            .lock()
            .expect("routes")
            .insert(path.to_string(), reply);
    }

    /// Requests `path` has received.
    pub fn hits(&self, path: &str) -> usize {
        self.hits
            .lock()
            .expect("hits")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    async fn answer(&self, mut stream: TcpStream) {
        let mut head = Vec::new();
        let mut buffer = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
            if head.len() > 16 * 1024 {
                return;
            }
        }
        let head = String::from_utf8_lossy(&head);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        *self
            .hits
            .lock()
            .expect("hits")
            .entry(path.clone())
            .or_default() += 1;
        let reply = self.routes.lock().expect("routes").get(&path).cloned();
        let reply = reply.unwrap_or(Reply::Full {
            status: 404,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: b"not here".to_vec(),
            delay: Duration::ZERO,
        });
        let chunked_head =
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
        match reply {
            Reply::Full {
                status,
                headers,
                body,
                delay,
            } => {
                tokio::time::sleep(delay).await;
                let mut out = format!("HTTP/1.1 {status} Whatever\r\n");
                for (name, value) in headers {
                    out.push_str(&format!("{name}: {value}\r\n"));
                }
                out.push_str(&format!(
                    "Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                ));
                let _ = stream.write_all(out.as_bytes()).await;
                let _ = stream.write_all(&body).await;
                let _ = stream.shutdown().await;
            }
            Reply::Dribble { every } => {
                if stream.write_all(chunked_head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(every).await;
                    if stream.write_all(b"1\r\n \r\n").await.is_err() {
                        return;
                    }
                }
            }
            Reply::Endless => {
                if stream.write_all(chunked_head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = format!("4000\r\n{}\r\n", " ".repeat(0x4000));
                while stream.write_all(chunk.as_bytes()).await.is_ok() {}
            }
            Reply::Silent => {
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }
}
