// Package e2e is the fault-injection end-to-end suite (issue 8): a
// three-node NATS cluster of nats-server processes, two OS processes of each
// stage, a misbehaving warehouse on loopback and a client that plays Twilio,
// while processes and a NATS node are killed and restarted. It proves the
// promise made to the engineer on call: every webhook Twilio got a 2xx for
// reaches the warehouse, once.
//
// `make e2e` runs the full suite (5,000 webhooks); `make test` runs the short
// form (1,000 webhooks at 100/s).
package e2e
