//! What a connection hands back to its user: the reply to a request, what the
//! server sends on its own, and the connection's events. Messages stay raw
//! JSON (`RawValue`): the client forwards them and never re-reads them.

use serde_json::value::RawValue;

/// A reply to one request: the raw `result`, or the raw `error` object.
#[derive(Debug)]
pub enum Reply {
    Result(Box<RawValue>),
    Error(Box<RawValue>),
}

/// Something the server sent that is not a reply to one of our requests.
#[derive(Debug)]
pub enum Incoming {
    Notification {
        method: String,
        params: Option<Box<RawValue>>,
    },
    /// A server-to-client request (sampling, elicitation, roots). Answer it with
    /// [`crate::Connection::respond`], passing `id` back unchanged.
    Request {
        id: Box<RawValue>,
        method: String,
        params: Option<Box<RawValue>>,
    },
}

/// Where messages tied to one request go while it is in flight.
pub type RelayTx = tokio::sync::mpsc::UnboundedSender<Incoming>;

/// Connection-level events: unattributed messages, and the end of the connection.
#[derive(Debug)]
pub enum Event {
    Incoming(Incoming),
    Closed { reason: String },
}

pub type EventTx = tokio::sync::mpsc::UnboundedSender<Event>;
