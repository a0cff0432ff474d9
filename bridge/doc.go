// Package bridge joins Warp Mesh meshes that cannot reach each other over
// UDP — several clusters, regions or VPCs — through NATS.
//
// A Bridge is a member of its mesh. It exports every invalidation it hears
// from its mesh's own members to the NATS subject <prefix>.inv.<mesh>, many
// per NATS message in a compact, versioned batch format (batch.go), and
// imports the other meshes' batches into its mesh. It never re-exports what
// a bridge imported (bridges' node ids carry a tag, IsBridgeID), several
// bridges per mesh deliver each invalidation once (dedup by mesh, origin,
// epoch, frame sequence and index; one bridge per mesh imports, the others
// stand by), and whatever the link may have lost makes the far side flush
// its mesh (engine.Node.DeclareLoss: every member raises a Gap, presets
// empty their caches) — or, with JetStream, replays from a durable consumer.
// Keyrings stay local to each mesh; NATS brings its own TLS, NKeys and
// credentials. The package owns its node, its NATS connection and their
// goroutines; it never applies a message it has not validated whole.
package bridge
