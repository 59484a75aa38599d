//! Whether the server can run the multi-document transactions the store needs,
//! decided from its `hello` reply.
//!
//! - A replica-set member reports `setName` (MongoDB 4.0+, wire version 7, runs
//!   replica-set transactions).
//! - A `mongos` reports `msg: "isdbgrid"` (MongoDB 4.2+, wire version 8, runs
//!   sharded transactions).
//! - Anything else is a standalone server: every atomic step would silently lose
//!   its atomicity there (the driver refuses transactions on it anyway), so the
//!   store refuses to start and says how to run a single-node replica set.

use mongodb::bson::{Bson, Document};

use crate::error::ConnectError;

fn wire_version(hello: &Document) -> i64 {
    match hello.get("maxWireVersion") {
        Some(Bson::Int32(v)) => i64::from(*v),
        Some(Bson::Int64(v)) => *v,
        _ => 0,
    }
}

/// Accepts a replica-set member or a `mongos` new enough for transactions;
/// refuses a standalone server (`server` names it in the error).
pub(crate) fn check(hello: &Document, server: &str) -> Result<(), ConnectError> {
    let wire = wire_version(hello);
    if hello.get_str("msg").is_ok_and(|m| m == "isdbgrid") {
        if wire < 8 {
            return Err(ConnectError::Unsupported(
                "transactions on a sharded cluster need MongoDB 4.2 or newer".into(),
            ));
        }
        return Ok(());
    }
    if hello.get_str("setName").is_ok_and(|s| !s.is_empty()) {
        if wire < 7 {
            return Err(ConnectError::Unsupported(
                "transactions on a replica set need MongoDB 4.0 or newer".into(),
            ));
        }
        return Ok(());
    }
    Err(ConnectError::Standalone(server.to_owned()))
}

#[cfg(test)]
mod tests {
    use mongodb::bson::{DateTime, doc};

    use super::*;

    /// The replies SecantusDB 0.7.0b3 gave (`secantusd-py` with and without
    /// `--standalone`), trimmed of clocks and ids.
    fn secantus(replica_set: bool) -> Document {
        let mut d = doc! {
            "isWritablePrimary": true, "ismaster": true,
            "maxBsonObjectSize": 16777216, "maxMessageSizeBytes": 48000000,
            "maxWriteBatchSize": 100000, "localTime": DateTime::now(),
            "logicalSessionTimeoutMinutes": 30, "connectionId": 3,
            "minWireVersion": 0, "maxWireVersion": 27, "readOnly": false, "ok": 1.0,
        };
        if replica_set {
            d.extend(doc! {
                "setName": "secantus", "setVersion": 1, "hosts": ["127.0.0.1:27811"],
                "secondary": false, "primary": "127.0.0.1:27811", "me": "127.0.0.1:27811",
            });
        }
        d
    }

    #[test]
    fn replica_sets_and_mongos_are_accepted() {
        check(&secantus(true), "a").unwrap_or_else(|e| panic!("{e}"));
        // mongod 7.0 started with --replSet rs0, after rs.initiate().
        let rs =
            doc! { "isWritablePrimary": true, "setName": "rs0", "maxWireVersion": 21, "ok": 1.0 };
        assert!(check(&rs, "a").is_ok());
        // mongos 6.0.
        let mongos =
            doc! { "isWritablePrimary": true, "msg": "isdbgrid", "maxWireVersion": 17, "ok": 1.0 };
        assert!(check(&mongos, "a").is_ok());
    }

    #[test]
    fn standalone_servers_are_refused_with_a_way_out() {
        for hello in [
            secantus(false),
            // mongod 7.0 started without --replSet.
            doc! { "isWritablePrimary": true, "maxWireVersion": 21, "ok": 1.0 },
        ] {
            match check(&hello, "db.example:27017") {
                Err(e @ ConnectError::Standalone(_)) => {
                    let text = e.to_string();
                    assert!(text.contains("db.example:27017"), "{text}");
                    assert!(
                        text.contains("--replSet") && text.contains("rs.initiate()"),
                        "{text}"
                    );
                }
                other => panic!("expected a standalone refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn servers_without_transactions_are_refused() {
        // MongoDB 3.6 replica set; MongoDB 4.0 mongos.
        let old_rs = doc! { "ismaster": true, "setName": "rs0", "maxWireVersion": 6, "ok": 1.0 };
        let old_mongos =
            doc! { "ismaster": true, "msg": "isdbgrid", "maxWireVersion": 7, "ok": 1.0 };
        for hello in [old_rs, old_mongos] {
            assert!(matches!(
                check(&hello, "a"),
                Err(ConnectError::Unsupported(_))
            ));
        }
    }
}
