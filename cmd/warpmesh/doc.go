// Command warpmesh runs Warp Mesh from the command line: a demo of a local
// mesh, a long-running node with an admin endpoint, and one-shot tools.
// It owns no protocol logic (everything goes through engine, presets and
// metrics) and it is the only place, with metrics, that may import
// client_golang.
//
//	warpmesh demo                      a 5-node mesh on 127.0.0.1, end to end (about 10 s)
//	warpmesh node [flags]              one node until SIGINT/SIGTERM, then a graceful leave (within --shutdown-grace)
//	warpmesh invalidate [flags] KEY... join, publish, leave; exit 1 if no member answered
//	warpmesh members --http ADDR       a running node's membership as a table
//
// Every command takes -h. Node flags (--port, --bind, --group, --group-port,
// --interface, --peers, --advertise, --heartbeat, --suspect-after,
// --dead-after, --cluster, --key-file, --auth, --node-id, --unicast-only,
// --frame-size, --fanout, --direct-limit, --hop-limit, --publish-ring,
// --batch-size, --recv-buffer, --send-buffer, --gso, --retransmit-buffer,
// --retransmit-rate, --repair-timeout, --echo-local) map one to one onto
// engine.Options; each may also be set by WARPMESH_<NAME> (--group-port
// is WARPMESH_GROUP_PORT), and a flag on the command line wins. A bad flag,
// value or option exits with status 2 and a message naming the flag; a
// command that ran and failed exits with status 1.
//
// --key-file names a file of 32-byte keys, one per line, as 64 hex digits
// or base64; blank lines and lines starting with # are skipped. The first
// key seals what the node sends, every key opens what it receives, so keys
// rotate without downtime; --auth rolls authentication into a running mesh.
// In a container, mount the keyring from a Secret and point
// WARPMESH_KEY_FILE at the mounted file (deploy/ has examples).
//
// --peers takes literal addresses (ip:port, [ipv6]:port) and DNS names:
// name:port stands for every A and AAAA record of the name (a Kubernetes
// headless Service, a Swarm tasks.<service> name), re-resolved every
// heartbeat; dnssrv+_service._proto.name (or _service._proto.name) for
// every SRV target with its port. --bind :: serves IPv4 and IPv6.
//
// # The --print stream
//
// warpmesh node --print writes one line per event to stdout, fields
// separated by single spaces. The first word says what the line is; scripts
// should ignore lines whose first word they do not know. Ids are 16
// lowercase hex digits; addresses are ip:port ([ip]:port for IPv6); keys
// and the cluster name are Go-quoted (strconv.Quote, read back with
// strconv.Unquote), so any byte string round-trips. The handlers are registered before the node
// starts receiving, so nothing is missed; self still comes first.
//
//	self <id> <addr> epoch=<n> cluster=<quoted>                  once, first: this node
//	http <addr>                                                  the admin endpoint is listening (--http)
//	inv <origin-id> epoch=<n> seq=<n> exact <quoted-key>         an invalidation was applied
//	inv <origin-id> epoch=<n> seq=<n> prefix <quoted-prefix>     every key with this prefix was invalidated
//	event join <id> <addr> epoch=<n> incarnation=<n>             a member appeared or came back
//	event suspect <id> <addr> epoch=<n> incarnation=<n>          a member went silent
//	event alive <id> <addr> epoch=<n> incarnation=<n>            a suspect member was heard again
//	event dead <id> <addr> epoch=<n> incarnation=<n>             a member was declared dead
//	event leave <id> <addr> epoch=<n> incarnation=<n>            a member left gracefully or was replaced
//	event gap <origin-id> epoch=<n> missing=<n> reason=<r> first=<n> last=<n>
//	                                                             invalidations may have been missed
//	event ready                                                  the node became coherent (engine.Node.Ready)
//
// Read name=value fields by name, not position: new ones may be added
// (after the id on inv lines, at the end of others). On an inv line the
// first field after the id without '=' is exact or prefix, and the rest of
// the line is the key. epoch and seq are the origin's boot epoch and the
// sequence of its frame that carried the invalidation; a gap line's
// first..last are the sequences of that epoch that may have been missed.
//
// Gap reasons: evicted, unreachable, origin_dead, new_epoch, too_old.
//
// # The admin endpoint
//
// warpmesh node --http ADDR serves GET /healthz, GET /readyz, GET /members and GET /stats
// (JSON), GET /metrics (Prometheus text format, the warpmesh_* series of
// package metrics plus Go runtime metrics) and POST /invalidate with a JSON
// body {"keys":["…"],"prefixes":["…"]}, answered with the counts queued,
// {"keys":n,"prefixes":m}. Exposure: anyone who reaches it can empty the
// mesh's caches, so bind it to localhost or a private address, and set
// --http-token-file (WARPMESH_HTTP_TOKEN_FILE) to require
// "Authorization: Bearer <token>" on every route but /healthz and /readyz.
// At most 16 requests are handled at once, POST /invalidate at most 2 with
// bodies up to 1 MiB, each body checked whole before any key is queued.
package main
