// Package broker answers Kafka client requests: it implements server.Handler
// with one file per API family (produce.go, fetch.go, topics.go, ...), each
// opening with the versions and behaviour it implements. It turns requests
// into calls on the replica layer (data), the controller (metadata changes)
// and the coordinators, and owns the one table (errors.go) that maps domain
// errors to Kafka error codes.
//
// On a cluster, admin requests (CreateTopics, DeleteTopics, CreatePartitions,
// AlterConfigs, IncrementalAlterConfigs, and the quorum's DescribeQuorum,
// AddRaftVoter and RemoveRaftVoter of quorum.go) that reach a broker that is not the
// active controller are forwarded to it (Config.Forward, KIP-590), and topic
// creation the broker triggers itself (auto-creation, internal topics) goes
// the same way (forward.go). ControllerAPIs (controllerapis.go) is the other
// side: the handler of the controller listener, which answers
// BrokerRegistration, BrokerHeartbeat, AllocateProducerIds and the forwarded
// admin requests.
//
// With an authorizer (authorizer.class.name), every request is checked
// before it is handled or forwarded (access.go): what each API needs of the
// ACLs, as Kafka's KafkaApis checks it; a refusal is one error response per
// API (denied.go). Each listener's clients are told the brokers' endpoints of
// that listener.
//
// WriteTxnMarkers (txnmarkers.go) is the inter-broker side of transactions:
// the markers a transaction coordinator, here or on another broker, writes
// on the partitions this broker leads. AddPartitionsToTxn verifications for
// a coordinator on another broker go through Config.SendToBroker.
//
// The broker never decodes record batches beyond their headers and never
// re-encodes them: produce validates and appends the bytes it received, fetch
// returns the bytes the log holds. The one exception is a topic whose
// compression.type names a codec other than the batch's: that batch's
// records area is recompressed (record.Recompress), as Kafka does.
package broker
