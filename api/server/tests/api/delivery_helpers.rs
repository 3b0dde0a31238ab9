//! Conversations and mailboxes for delivery tests. Bodies are opaque bytes to the server,
//! so tests use recognisable byte strings in place of MLS ciphertext.

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

use crate::helpers::TestApp;
use crate::identity_helpers::{TestDevice, b64};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl TestApp {
    /// alice and bob (contacts), one device each, in a conversation at epoch 1.
    pub async fn pair(&self) -> (TestDevice, TestDevice, Uuid) {
        let alice = self.create_user("alice").await;
        let bob = self.create_user("bob").await;
        self.make_contacts(alice, bob).await;
        let a = self.new_device(alice).await;
        let b = self.new_device(bob).await;
        let conv = self.conversation(&a, &[&b]).await;
        (a, b, conv)
    }

    /// `owner` creates a conversation and commits the other devices into it (epoch 1).
    pub async fn conversation(&self, owner: &TestDevice, others: &[&TestDevice]) -> Uuid {
        let id = Uuid::new_v4();
        let resp = self
            .post_json(
                "/v1/conversations",
                &owner.token,
                &json!({"conversation_id": id}),
            )
            .await;
        assert_eq!(resp.status(), 201);
        if !others.is_empty() {
            let add: Vec<Uuid> = others.iter().map(|d| d.id).collect();
            let resp = self.commit(owner, id, 0, &add, &[]).await;
            assert_eq!(resp.status(), 201);
        }
        id
    }

    pub async fn commit(
        &self,
        by: &TestDevice,
        conversation: Uuid,
        epoch: u64,
        add: &[Uuid],
        remove: &[Uuid],
    ) -> reqwest::Response {
        let mut body = json!({
            "client_msg_id": Uuid::new_v4(),
            "epoch": epoch,
            "commit": b64(&commit_frame(conversation, epoch)),
            "add": add,
            "remove": remove,
        });
        if !add.is_empty() {
            body["welcome"] = json!(b64(&welcome_frame(add.len())));
        }
        self.post_json(
            &format!("/v1/conversations/{conversation}/commits"),
            &by.token,
            &body,
        )
        .await
    }

    pub async fn send(
        &self,
        by: &TestDevice,
        conversation: Uuid,
        epoch: u64,
        client_msg_id: Uuid,
        body: &[u8],
    ) -> reqwest::Response {
        self.post_json(
            &format!("/v1/conversations/{conversation}/messages"),
            &by.token,
            &json!({"client_msg_id": client_msg_id, "epoch": epoch, "body": b64(body)}),
        )
        .await
    }

    /// The device's mailbox entries after `after`.
    pub async fn mailbox(&self, device: &TestDevice, after: u64) -> Vec<Value> {
        let resp = self
            .get(
                &format!("/v1/mailbox?after={after}&limit=500"),
                &device.token,
            )
            .await;
        assert_eq!(resp.status(), 200);
        let page: Value = resp.json().await.unwrap();
        page["items"].as_array().unwrap().clone()
    }

    /// Opens a WebSocket authenticated by header and resumes after `after`.
    pub async fn socket(&self, base: &str, device: &TestDevice, after: u64) -> Socket {
        let url = format!("{}/v1/ws", base.replacen("http://", "ws://", 1));
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
                .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", device.token).parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let ready = next_frame(&mut ws).await;
        assert_eq!(ready["type"], "ready", "{ready}");
        ws.send(Message::text(
            json!({"type": "resume", "after": after}).to_string(),
        ))
        .await
        .unwrap();
        ws
    }
}

/// An MLS `PrivateMessage` commit frame for `conversation` at `epoch`, as the server sees a
/// real one (the contents are opaque).
pub fn commit_frame(conversation: Uuid, epoch: u64) -> Vec<u8> {
    cloak_proto::mls_frame::private_message(
        conversation.as_bytes(),
        epoch,
        cloak_proto::mls_frame::ContentType::Commit,
        format!("commit@{epoch}").as_bytes(),
    )
}

/// An MLS Welcome frame with a secret for each of `recipients` devices.
pub fn welcome_frame(recipients: usize) -> Vec<u8> {
    cloak_proto::mls_frame::welcome(recipients, b"group info")
}

/// The next JSON text frame (pings are answered by tungstenite), within 10 s.
pub async fn next_frame(ws: &mut Socket) -> Value {
    loop {
        let msg = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("no frame within 10 s")
            .expect("socket closed")
            .expect("socket error");
        if let Message::Text(text) = msg {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

pub fn body_of(entry: &Value) -> Vec<u8> {
    crate::identity_helpers::unb64(&entry["body"])
}
