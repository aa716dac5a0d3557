package config

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Type is the value type of a config, as Kafka's DescribeConfigs reports it.
type Type int8

// Config types, numbered as Kafka's DescribeConfigs v3+ config_type field.
const (
	TypeBoolean  Type = 1
	TypeString   Type = 2
	TypeInt      Type = 3
	TypeShort    Type = 4
	TypeLong     Type = 5
	TypeDouble   Type = 6
	TypeList     Type = 7
	TypeClass    Type = 8
	TypePassword Type = 9
)

// Source says where an effective config value came from, numbered as Kafka's
// DescribeConfigs config_source field.
type Source int8

// Config sources, numbered as Kafka's DescribeConfigs config_source field.
const (
	SourceTopic                Source = 1 // a topic override (TOPIC_CONFIG)
	SourceDynamicBroker        Source = 2 // set on this broker at runtime (DYNAMIC_BROKER_CONFIG)
	SourceDynamicDefaultBroker Source = 3 // set for all brokers at runtime (DYNAMIC_DEFAULT_BROKER_CONFIG)
	SourceStaticBroker         Source = 4 // from the properties file or --set (STATIC_BROKER_CONFIG)
	SourceDefault              Source = 5 // built in (DEFAULT_CONFIG)
)

// Synonym is a broker property that supplies a topic config's default.
// Scale converts the broker value into the topic config's unit (log.retention.hours -> ms).
type Synonym struct {
	Name  string
	Scale int64
}

// Def describes one config: its type, default, bounds and, for topic configs,
// the broker properties that supply its default.
type Def struct {
	Name     string
	Type     Type
	Default  string
	Min, Max int64    // inclusive numeric bounds, checked when Min < Max
	Enum     []string // allowed values (for lists: each element), when non-empty
	Synonyms []Synonym
	// Dynamic broker configs may be changed at runtime with AlterConfigs; all
	// other broker configs need a restart.
	Dynamic bool
	Doc     string
	// Valid, when set, checks the value further (after Type, bounds and Enum).
	Valid func(value string) error
}

const (
	day  = int64(24 * 60 * 60 * 1000)
	hour = int64(60 * 60 * 1000)
)

// TopicDefs are the topic-level configs Gregor understands. Every one is honoured
// unless its Doc says otherwise; unknown names are refused with INVALID_CONFIG.
var TopicDefs = defsByName([]Def{
	{Name: "cleanup.policy", Type: TypeList, Default: "delete", Enum: []string{"delete", "compact"},
		Synonyms: []Synonym{{"log.cleanup.policy", 1}}, Doc: "delete old segments by retention, or compact by key"},
	{Name: "compression.type", Type: TypeString, Default: "producer",
		Enum:     []string{"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"},
		Synonyms: []Synonym{{"compression.type", 1}}, Doc: "producer keeps each batch as its producer compressed it; a codec (or uncompressed) rewrites batches sent with another"},
	{Name: "compression.gzip.level", Type: TypeInt, Default: "-1", Min: -1, Max: 9, Valid: gzipLevel,
		Synonyms: []Synonym{{"compression.gzip.level", 1}}, Doc: "the level of a batch the broker compresses with gzip (compression.type=gzip): -1 (gzip's default) or 1-9"},
	{Name: "compression.lz4.level", Type: TypeInt, Default: "9", Min: 1, Max: 17,
		Synonyms: []Synonym{{"compression.lz4.level", 1}}, Doc: "the level of a batch the broker compresses with lz4: 9 is lz4's fast compressor, others its high-compression mode (10-17 compress as 9)"},
	{Name: "compression.zstd.level", Type: TypeInt, Default: "3", Min: -131072, Max: 22,
		Synonyms: []Synonym{{"compression.zstd.level", 1}}, Doc: "the level of a batch the broker compresses with zstd, mapped to the Go encoder's four speeds"},
	{Name: "delete.retention.ms", Type: TypeLong, Default: strconv.FormatInt(day, 10), Min: 0, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.cleaner.delete.retention.ms", 1}}},
	{Name: "file.delete.delay.ms", Type: TypeLong, Default: "60000", Min: 0, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.segment.delete.delay.ms", 1}}},
	{Name: "flush.messages", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 1, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.flush.interval.messages", 1}}, Doc: "fsync after this many messages even without acks=all"},
	{Name: "flush.ms", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 0, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.flush.interval.ms", 1}}, Doc: "fsync at least this often"},
	{Name: "follower.replication.throttled.replicas", Type: TypeList, Default: "", Valid: throttledReplicas,
		Doc: "partition:broker replicas (or *) whose follower, while out of the ISR, fetches within the broker's follower.replication.throttled.rate"},
	{Name: "index.interval.bytes", Type: TypeInt, Default: "4096", Min: 0, Max: math.MaxInt32,
		Synonyms: []Synonym{{"log.index.interval.bytes", 1}}},
	{Name: "leader.replication.throttled.replicas", Type: TypeList, Default: "", Valid: throttledReplicas,
		Doc: "partition:broker replicas (or *) whose leader serves followers out of the ISR within the broker's leader.replication.throttled.rate"},
	{Name: "max.compaction.lag.ms", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 1, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.cleaner.max.compaction.lag.ms", 1}}},
	{Name: "max.message.bytes", Type: TypeInt, Default: "1048588", Min: 0, Max: math.MaxInt32,
		Synonyms: []Synonym{{"message.max.bytes", 1}}, Doc: "largest record batch accepted (MESSAGE_TOO_LARGE above)"},
	{Name: "message.timestamp.type", Type: TypeString, Default: "CreateTime", Enum: []string{"CreateTime", "LogAppendTime"},
		Synonyms: []Synonym{{"log.message.timestamp.type", 1}}},
	{Name: "message.timestamp.after.max.ms", Type: TypeLong, Default: strconv.FormatInt(hour, 10), Min: 0, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.message.timestamp.after.max.ms", 1}}, Doc: "CreateTime records further in the future are refused (INVALID_TIMESTAMP)"},
	{Name: "message.timestamp.before.max.ms", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 0, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.message.timestamp.before.max.ms", 1}}, Doc: "CreateTime records further in the past are refused (INVALID_TIMESTAMP)"},
	{Name: "message.timestamp.difference.max.ms", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 0, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.message.timestamp.difference.max.ms", 1}}, Doc: "deprecated (KIP-937, removed in Kafka 4.0): a bound either way, on top of the before/after ones"},
	{Name: "min.cleanable.dirty.ratio", Type: TypeDouble, Default: "0.5",
		Synonyms: []Synonym{{"log.cleaner.min.cleanable.ratio", 1}}},
	{Name: "min.compaction.lag.ms", Type: TypeLong, Default: "0", Min: 0, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.cleaner.min.compaction.lag.ms", 1}}},
	{Name: "min.insync.replicas", Type: TypeInt, Default: "1", Min: 1, Max: math.MaxInt32,
		Synonyms: []Synonym{{"min.insync.replicas", 1}}, Doc: "acks=all fails with NOT_ENOUGH_REPLICAS below this ISR size"},
	{Name: "preallocate", Type: TypeBoolean, Default: "false", Synonyms: []Synonym{{"log.preallocate", 1}}},
	{Name: "retention.bytes", Type: TypeLong, Default: "-1", Min: -1, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.retention.bytes", 1}}},
	{Name: "retention.ms", Type: TypeLong, Default: strconv.FormatInt(7*day, 10), Min: -1, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.retention.ms", 1}, {"log.retention.minutes", 60 * 1000}, {"log.retention.hours", hour}}},
	{Name: "segment.bytes", Type: TypeInt, Default: "1073741824", Min: 14, Max: math.MaxInt32,
		Synonyms: []Synonym{{"log.segment.bytes", 1}}},
	{Name: "segment.index.bytes", Type: TypeInt, Default: "10485760", Min: 8, Max: math.MaxInt32,
		Synonyms: []Synonym{{"log.index.size.max.bytes", 1}}},
	{Name: "segment.jitter.ms", Type: TypeLong, Default: "0", Min: 0, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.roll.jitter.ms", 1}, {"log.roll.jitter.hours", hour}}},
	{Name: "segment.ms", Type: TypeLong, Default: strconv.FormatInt(7*day, 10), Min: 1, Max: math.MaxInt64,
		Synonyms: []Synonym{{"log.roll.ms", 1}, {"log.roll.hours", hour}}},
	{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false",
		Synonyms: []Synonym{{"unclean.leader.election.enable", 1}}},
})

// BrokerDefs are the broker properties Gregor understands. Properties with a
// topic-level counterpart supply that topic config's default.
var BrokerDefs = defsByName([]Def{
	{Name: "auto.create.topics.enable", Type: TypeBoolean, Default: "true", Doc: "Metadata requests create unknown topics"},
	{Name: "process.roles", Type: TypeList, Default: "broker,controller", Enum: []string{"broker", "controller"}, Doc: "roles of this node: broker (follows the metadata log, hosts partitions), controller (votes in the metadata quorum) or both"},
	{Name: "controller.quorum.bootstrap.servers", Type: TypeList, Default: "", Doc: "controller listeners (host:port) to reach the metadata quorum through, for a node not named in controller.quorum.voters (KIP-853)"},
	{Name: "broker.rack", Type: TypeString, Default: "", Doc: "rack of this broker, reported in Metadata and DescribeCluster"},
	{Name: "broker.session.timeout.ms", Type: TypeInt, Default: "9000", Min: 1, Max: math.MaxInt32, Doc: "the active controller fences a broker whose heartbeats stop for this long"},
	{Name: "broker.heartbeat.interval.ms", Type: TypeInt, Default: "2000", Min: 1, Max: math.MaxInt32, Doc: "interval between a broker's heartbeats to the active controller"},
	{Name: "auto.leader.rebalance.enable", Type: TypeBoolean, Default: "true", Doc: "the active controller moves leadership back to preferred replicas when a broker's imbalance exceeds leader.imbalance.per.broker.percentage"},
	{Name: "leader.imbalance.check.interval.seconds", Type: TypeLong, Default: "300", Min: 1, Max: math.MaxInt32, Doc: "how often the active controller checks the leader imbalance"},
	{Name: "leader.imbalance.per.broker.percentage", Type: TypeInt, Default: "10", Min: 0, Max: 100, Doc: "a broker's share of preferred leaderships it does not hold above which the controller rebalances"},
	{Name: "replica.lag.time.max.ms", Type: TypeInt, Default: "30000", Min: 1, Max: math.MaxInt32, Doc: "a follower that has not caught up with its leader for this long leaves the ISR"},
	{Name: "num.partitions", Type: TypeInt, Default: "1", Min: 1, Max: 1 << 20, Dynamic: true},
	// Replication throttles (kafka-reassign-partitions --throttle sets
	// them): enforced on both sides, as Kafka's ReplicationQuotaManager.
	{Name: "leader.replication.throttled.rate", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 0, Max: math.MaxInt64, Dynamic: true,
		Doc: "bytes per second this broker sends, as leader, to throttled replicas out of the ISR"},
	{Name: "follower.replication.throttled.rate", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 0, Max: math.MaxInt64, Dynamic: true,
		Doc: "bytes per second this broker fetches, as follower out of the ISR, for throttled replicas"},
	{Name: "default.replication.factor", Type: TypeInt, Default: "1", Min: 1, Max: math.MaxInt16, Dynamic: true},
	{Name: "message.max.bytes", Type: TypeInt, Default: "1048588", Min: 0, Max: math.MaxInt32, Dynamic: true},
	{Name: "socket.request.max.bytes", Type: TypeInt, Default: "104857600", Min: 1, Max: math.MaxInt32},
	{Name: "max.connections", Type: TypeInt, Default: strconv.Itoa(math.MaxInt32), Min: 0, Max: math.MaxInt32},
	{Name: "max.connections.per.ip", Type: TypeInt, Default: strconv.Itoa(math.MaxInt32), Min: 0, Max: math.MaxInt32},
	{Name: "max.request.partition.size.limit", Type: TypeInt, Default: "2000", Min: 1, Max: math.MaxInt32,
		Doc: "the most partitions one DescribeTopicPartitions answer holds; the client asks for the rest with the answer's cursor"},
	{Name: "queued.max.requests", Type: TypeInt, Default: "64", Min: 1, Max: 1 << 16, Doc: "requests read but not yet answered per connection before Gregor stops reading from it (Kafka applies its 500 per broker)"},
	{Name: "connections.max.idle.ms", Type: TypeLong, Default: "600000", Min: 1, Max: math.MaxInt64},
	{Name: "connection.failed.authentication.delay.ms", Type: TypeInt, Default: "100", Min: 0, Max: math.MaxInt32,
		Doc: "a failed SASL authentication is answered this late, then the connection closed"},
	{Name: "sasl.enabled.mechanisms", Type: TypeList, Default: "GSSAPI",
		Doc: "SASL mechanisms of SASL_PLAINTEXT listeners (also listener.name.<listener>.sasl.enabled.mechanisms): PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; GSSAPI and OAUTHBEARER are not offered"},
	{Name: "ssl.keystore.type", Type: TypeString, Default: "JKS", Doc: "gregor reads PEM keystores (a PEM file, or the two inline values below) whatever the type says; JKS and PKCS12 files are refused"},
	{Name: "ssl.keystore.location", Type: TypeString, Default: "", Doc: "PEM file with the private key and its certificate chain, for SSL and SASL_SSL listeners"},
	{Name: "ssl.keystore.certificate.chain", Type: TypePassword, Default: "", Doc: "the certificate chain in PEM, instead of ssl.keystore.location"},
	{Name: "ssl.keystore.key", Type: TypePassword, Default: "", Doc: "the private key in PEM (unencrypted), with ssl.keystore.certificate.chain"},
	{Name: "ssl.keystore.password", Type: TypePassword, Default: ""},
	{Name: "ssl.key.password", Type: TypePassword, Default: "", Doc: "encrypted private keys are not read: give an unencrypted PEM key"},
	{Name: "ssl.truststore.type", Type: TypeString, Default: "JKS", Doc: "as ssl.keystore.type: PEM only"},
	{Name: "ssl.truststore.location", Type: TypeString, Default: "", Doc: "PEM file of the CA certificates client certificates are checked against"},
	{Name: "ssl.truststore.certificates", Type: TypePassword, Default: "", Doc: "the CA certificates in PEM, instead of ssl.truststore.location"},
	{Name: "ssl.truststore.password", Type: TypePassword, Default: ""},
	{Name: "ssl.client.auth", Type: TypeString, Default: "none", Enum: []string{"required", "requested", "none"}, Doc: "whether SSL clients must present a certificate; its subject is the principal of an SSL (not SASL_SSL) connection"},
	{Name: "ssl.enabled.protocols", Type: TypeList, Default: "TLSv1.2,TLSv1.3", Doc: "the oldest one listed is the lowest TLS version accepted"},
	{Name: "authorizer.class.name", Type: TypeString, Default: "",
		Enum: []string{"", "org.apache.kafka.metadata.authorizer.StandardAuthorizer", "kafka.security.authorizer.AclAuthorizer", "kafka.security.auth.SimpleAclAuthorizer"},
		Doc:  "any of Kafka's ACL authorizers turns on gregor's, which decides as Kafka's StandardAuthorizer from the ACLs in the metadata log"},
	{Name: "super.users", Type: TypeString, Default: "", Doc: "principals that may do everything, separated by semicolons (User:admin;User:ANONYMOUS)"},
	{Name: "allow.everyone.if.no.acl.found", Type: TypeBoolean, Default: "false", Doc: "with an authorizer, a resource without any ACL is open to everyone"},
	{Name: "inter.broker.listener.name", Type: TypeString, Default: "", Doc: "the PLAINTEXT listener brokers reach each other on; default PLAINTEXT"},
	{Name: "listener.security.protocol.map", Type: TypeString, Default: "PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
		Doc: "listener name to security protocol; PLAINTEXT and SASL_PLAINTEXT are served"},
	{Name: "max.incremental.fetch.session.cache.slots", Type: TypeInt, Default: "1000", Min: 0, Max: math.MaxInt32, Doc: "incremental fetch sessions (KIP-227) the broker keeps; 0 disables them"},
	{Name: "log.cleanup.policy", Type: TypeList, Default: "delete", Enum: []string{"delete", "compact"}, Dynamic: true},
	{Name: "compression.type", Type: TypeString, Default: "producer", Enum: []string{"producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"}, Dynamic: true},
	{Name: "compression.gzip.level", Type: TypeInt, Default: "-1", Min: -1, Max: 9, Valid: gzipLevel, Dynamic: true},
	{Name: "compression.lz4.level", Type: TypeInt, Default: "9", Min: 1, Max: 17, Dynamic: true},
	{Name: "compression.zstd.level", Type: TypeInt, Default: "3", Min: -131072, Max: 22, Dynamic: true},
	{Name: "log.cleaner.delete.retention.ms", Type: TypeLong, Default: strconv.FormatInt(day, 10), Min: 0, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.segment.delete.delay.ms", Type: TypeLong, Default: "60000", Min: 0, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.flush.interval.messages", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 1, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.flush.interval.ms", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 0, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.index.interval.bytes", Type: TypeInt, Default: "4096", Min: 0, Max: math.MaxInt32, Dynamic: true},
	{Name: "log.cleaner.max.compaction.lag.ms", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 1, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.message.timestamp.type", Type: TypeString, Default: "CreateTime", Enum: []string{"CreateTime", "LogAppendTime"}, Dynamic: true},
	{Name: "log.message.timestamp.difference.max.ms", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 0, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.message.timestamp.before.max.ms", Type: TypeLong, Default: strconv.FormatInt(math.MaxInt64, 10), Min: 0, Max: math.MaxInt64, Dynamic: true},
	// One hour since Kafka 4.0 (KIP-1030): a record more than an hour ahead
	// of the broker's clock is refused unless the topic allows it.
	{Name: "log.message.timestamp.after.max.ms", Type: TypeLong, Default: strconv.FormatInt(hour, 10), Min: 0, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.cleaner.min.cleanable.ratio", Type: TypeDouble, Default: "0.5", Dynamic: true},
	{Name: "log.cleaner.min.compaction.lag.ms", Type: TypeLong, Default: "0", Min: 0, Max: math.MaxInt64, Dynamic: true},
	{Name: "min.insync.replicas", Type: TypeInt, Default: "1", Min: 1, Max: math.MaxInt32, Dynamic: true},
	{Name: "log.preallocate", Type: TypeBoolean, Default: "false", Dynamic: true},
	{Name: "log.retention.bytes", Type: TypeLong, Default: "-1", Min: -1, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.retention.ms", Type: TypeLong, Default: "", Min: -1, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.retention.minutes", Type: TypeInt, Default: "", Min: -1, Max: math.MaxInt32},
	{Name: "log.retention.hours", Type: TypeInt, Default: "168", Min: -1, Max: math.MaxInt32},
	{Name: "log.retention.check.interval.ms", Type: TypeLong, Default: "300000", Min: 1, Max: math.MaxInt64},
	{Name: "quota.window.num", Type: TypeInt, Default: "11", Min: 2, Max: math.MaxInt32, Doc: "samples a client quota's rate is measured over"},
	{Name: "quota.window.size.seconds", Type: TypeInt, Default: "1", Min: 1, Max: math.MaxInt32, Doc: "time span of each client quota rate sample"},
	{Name: "replication.quota.window.num", Type: TypeInt, Default: "11", Min: 2, Max: math.MaxInt32, Doc: "samples a replication throttle's rate is measured over"},
	{Name: "replication.quota.window.size.seconds", Type: TypeInt, Default: "1", Min: 1, Max: math.MaxInt32, Doc: "time span of each replication throttle rate sample"},
	{Name: "log.cleaner.backoff.ms", Type: TypeLong, Default: "15000", Min: 1, Max: math.MaxInt64, Dynamic: true, Doc: "interval between the log cleaner's passes over the compacted partitions"},
	{Name: "log.segment.bytes", Type: TypeInt, Default: "1073741824", Min: 14, Max: math.MaxInt32, Dynamic: true},
	{Name: "log.index.size.max.bytes", Type: TypeInt, Default: "10485760", Min: 8, Max: math.MaxInt32, Dynamic: true},
	{Name: "log.roll.jitter.ms", Type: TypeLong, Default: "", Min: 0, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.roll.jitter.hours", Type: TypeInt, Default: "0", Min: 0, Max: math.MaxInt32},
	{Name: "log.roll.ms", Type: TypeLong, Default: "", Min: 1, Max: math.MaxInt64, Dynamic: true},
	{Name: "log.roll.hours", Type: TypeInt, Default: "168", Min: 1, Max: math.MaxInt32},
	{Name: "unclean.leader.election.enable", Type: TypeBoolean, Default: "false", Dynamic: true},
	{Name: "offsets.topic.num.partitions", Type: TypeInt, Default: "50", Min: 1, Max: 1 << 16},
	{Name: "offsets.topic.replication.factor", Type: TypeShort, Default: "3", Min: 1, Max: math.MaxInt16},
	{Name: "offsets.retention.minutes", Type: TypeInt, Default: "10080", Min: 1, Max: math.MaxInt32},
	{Name: "offsets.retention.check.interval.ms", Type: TypeLong, Default: "600000", Min: 1, Max: math.MaxInt64},
	{Name: "offset.metadata.max.bytes", Type: TypeInt, Default: "4096", Min: 0, Max: math.MaxInt32},
	{Name: "group.initial.rebalance.delay.ms", Type: TypeInt, Default: "3000", Min: 0, Max: math.MaxInt32},
	{Name: "group.min.session.timeout.ms", Type: TypeInt, Default: "6000", Min: 0, Max: math.MaxInt32},
	{Name: "group.max.session.timeout.ms", Type: TypeInt, Default: "1800000", Min: 0, Max: math.MaxInt32},
	{Name: "group.max.size", Type: TypeInt, Default: strconv.Itoa(math.MaxInt32), Min: 1, Max: math.MaxInt32},
	{Name: "group.coordinator.rebalance.protocols", Type: TypeList, Default: "classic,consumer",
		Doc: "the group protocols served: consumer is KIP-848's ConsumerGroupHeartbeat"},
	{Name: "group.consumer.session.timeout.ms", Type: TypeInt, Default: "45000", Min: 1, Max: math.MaxInt32},
	{Name: "group.consumer.heartbeat.interval.ms", Type: TypeInt, Default: "5000", Min: 1, Max: math.MaxInt32},
	{Name: "group.consumer.min.session.timeout.ms", Type: TypeInt, Default: "45000", Min: 1, Max: math.MaxInt32,
		Doc: "the least consumer.session.timeout.ms a group config may set"},
	{Name: "group.consumer.max.session.timeout.ms", Type: TypeInt, Default: "60000", Min: 1, Max: math.MaxInt32,
		Doc: "the most consumer.session.timeout.ms a group config may set"},
	{Name: "group.consumer.min.heartbeat.interval.ms", Type: TypeInt, Default: "5000", Min: 1, Max: math.MaxInt32,
		Doc: "the least consumer.heartbeat.interval.ms a group config may set"},
	{Name: "group.consumer.max.heartbeat.interval.ms", Type: TypeInt, Default: "15000", Min: 1, Max: math.MaxInt32,
		Doc: "the most consumer.heartbeat.interval.ms a group config may set"},
	{Name: "group.consumer.max.size", Type: TypeInt, Default: strconv.Itoa(math.MaxInt32), Min: 1, Max: math.MaxInt32},
	{Name: "group.consumer.assignors", Type: TypeList, Default: "uniform,range",
		Doc: "the server-side assignors of consumer groups, the first the default: uniform, range"},
	{Name: "transaction.state.log.num.partitions", Type: TypeInt, Default: "50", Min: 1, Max: 1 << 16},
	{Name: "transaction.state.log.replication.factor", Type: TypeShort, Default: "3", Min: 1, Max: math.MaxInt16},
	{Name: "transaction.state.log.min.isr", Type: TypeInt, Default: "2", Min: 1, Max: math.MaxInt32},
	{Name: "transaction.max.timeout.ms", Type: TypeInt, Default: "900000", Min: 1, Max: math.MaxInt32},
	{Name: "transaction.abort.timed.out.transaction.cleanup.interval.ms", Type: TypeInt, Default: "10000", Min: 1, Max: math.MaxInt32},
	{Name: "transactional.id.expiration.ms", Type: TypeInt, Default: "604800000", Min: 1, Max: math.MaxInt32},
	{Name: "transaction.remove.expired.transaction.cleanup.interval.ms", Type: TypeInt, Default: "3600000", Min: 1, Max: math.MaxInt32},
	{Name: "transaction.partition.verification.enable", Type: TypeBoolean, Default: "true", Dynamic: true,
		Doc: "verify transactional produces with the coordinator (KIP-890); Produce v12 always adds its partitions"},
})

func defsByName(defs []Def) map[string]Def {
	m := make(map[string]Def, len(defs))
	for _, d := range defs {
		m[d.Name] = d
	}
	return m
}

// SortedNames returns the names of defs in order, for stable listings.
func SortedNames(defs map[string]Def) []string {
	names := make([]string, 0, len(defs))
	for n := range defs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Check validates value against the definition: its type, bounds and allowed values.
func (d Def) Check(value string) error {
	switch d.Type {
	case TypeBoolean:
		if value != "true" && value != "false" {
			return fmt.Errorf("config: %s must be true or false, not %q", d.Name, value)
		}
	case TypeInt, TypeShort, TypeLong:
		n, err := strconv.ParseInt(strings.TrimSpace(value), 10, 64)
		if err != nil {
			return fmt.Errorf("config: %s must be an integer, not %q", d.Name, value)
		}
		if d.Min < d.Max && (n < d.Min || n > d.Max) {
			return fmt.Errorf("config: %s must be in [%d, %d], not %d", d.Name, d.Min, d.Max, n)
		}
	case TypeDouble:
		if _, err := strconv.ParseFloat(value, 64); err != nil {
			return fmt.Errorf("config: %s must be a number, not %q", d.Name, value)
		}
	}
	if len(d.Enum) > 0 {
		parts := []string{value}
		if d.Type == TypeList {
			parts = strings.Split(value, ",")
		}
		for _, p := range parts {
			p = strings.TrimSpace(p)
			ok := false
			for _, e := range d.Enum {
				if strings.EqualFold(p, e) {
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("config: %s must be one of %s, not %q", d.Name, strings.Join(d.Enum, ", "), value)
			}
		}
	}
	if d.Valid != nil {
		if err := d.Valid(value); err != nil {
			return fmt.Errorf("config: %s %w, not %q", d.Name, err, value)
		}
	}
	return nil
}

// throttledReplicas checks a replication throttle list as Kafka's
// ThrottledReplicaListValidator: "*", or partition:broker pairs.
func throttledReplicas(value string) error {
	if strings.TrimSpace(value) == "*" {
		return nil
	}
	for _, pair := range strings.Split(value, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		p, b, ok := strings.Cut(pair, ":")
		if !ok || !digits(p) || !digits(b) {
			return errors.New("must be the literal '*' or a list of replicas as [partitionId]:[brokerId],[partitionId]:[brokerId],...")
		}
	}
	return nil
}

// Throttled reports whether a throttle list (leader. or
// follower.replication.throttled.replicas) names partition on broker, as
// Kafka's parseThrottledPartitions reads it: "*" names every replica. It
// runs for every partition of every replica fetch, so it allocates nothing.
func Throttled(list string, partition, broker int32) bool {
	list = strings.TrimSpace(list)
	if list == "*" {
		return true
	}
	for list != "" {
		var pair string
		pair, list, _ = strings.Cut(list, ",")
		ps, bs, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok {
			continue
		}
		p, perr := strconv.ParseInt(ps, 10, 32)
		b, berr := strconv.ParseInt(bs, 10, 32)
		if perr == nil && berr == nil && int32(p) == partition && int32(b) == broker {
			return true
		}
	}
	return false
}

// GroupDefs are the group configs (Kafka 4.0's GroupConfig; config
// resource type 32), set per group with IncrementalAlterConfigs or
// AlterConfigs. Each one's default is the broker property its first synonym
// names, and the broker's group.consumer.min/max.* properties bound it.
// Kafka's share.* group configs are not offered: Gregor has no share groups.
var GroupDefs = defsByName([]Def{
	{Name: "consumer.session.timeout.ms", Type: TypeInt, Default: "45000", Min: 1, Max: math.MaxInt32,
		Synonyms: []Synonym{{Name: "group.consumer.session.timeout.ms", Scale: 1}},
		Doc:      "the time a member of this consumer group (KIP-848) may go without a heartbeat before it is removed"},
	{Name: "consumer.heartbeat.interval.ms", Type: TypeInt, Default: "5000", Min: 1, Max: math.MaxInt32,
		Synonyms: []Synonym{{Name: "group.consumer.heartbeat.interval.ms", Scale: 1}},
		Doc:      "the heartbeat interval this consumer group's members (KIP-848) are given"},
})

func digits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

// ErrUnknownConfig is returned for a config name that is not in the table.
var ErrUnknownConfig = fmt.Errorf("config: unknown config")

// CheckTopicConfig validates one topic config name and value.
func CheckTopicConfig(name, value string) error {
	d, ok := TopicDefs[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownConfig, name)
	}
	return d.Check(value)
}

// CheckBrokerConfig validates one broker property name and value.
func CheckBrokerConfig(name, value string) error {
	d, ok := BrokerDefs[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownConfig, name)
	}
	return d.Check(value)
}

// BrokerSynonyms are the broker properties that set the same thing as name,
// in Kafka's order of precedence (log.retention.ms, .minutes, .hours): the
// topic configs' synonym lists, which hold every such group. A property of
// no group is its own only synonym.
func BrokerSynonyms(name string) []string {
	for _, d := range TopicDefs {
		if len(d.Synonyms) < 2 {
			continue
		}
		for _, s := range d.Synonyms {
			if s.Name == name {
				names := make([]string, len(d.Synonyms))
				for i, s := range d.Synonyms {
					names[i] = s.Name
				}
				return names
			}
		}
	}
	return []string{name}
}

// Layers are the places a config value can come from, most specific first.
// Any map may be nil.
type Layers struct {
	Topic          map[string]string // topic overrides
	DynamicBroker  map[string]string // AlterConfigs on this broker
	DynamicDefault map[string]string // AlterConfigs on the cluster default ("" broker)
	Static         map[string]string // properties file and --set
}

// BrokerValue resolves a broker property: dynamic, then static, then default.
func (l Layers) BrokerValue(name string) (string, Source, bool) {
	if v, ok := l.DynamicBroker[name]; ok {
		return v, SourceDynamicBroker, true
	}
	if v, ok := l.DynamicDefault[name]; ok {
		return v, SourceDynamicDefaultBroker, true
	}
	if v, ok := l.Static[name]; ok {
		return v, SourceStaticBroker, true
	}
	d, ok := BrokerDefs[name]
	if !ok || d.Default == "" {
		return "", SourceDefault, false
	}
	return d.Default, SourceDefault, true
}

// TopicValue resolves a topic config: the topic override, then the first broker
// synonym that is set (scaled to the topic's unit), then the built-in default.
func (l Layers) TopicValue(name string) (string, Source) {
	if v, ok := l.Topic[name]; ok {
		return v, SourceTopic
	}
	d := TopicDefs[name]
	for _, syn := range d.Synonyms {
		v, src, ok := l.BrokerValue(syn.Name)
		if !ok || src == SourceDefault {
			continue
		}
		return scale(v, syn.Scale), src
	}
	for _, syn := range d.Synonyms {
		if v, _, ok := l.BrokerValue(syn.Name); ok {
			return scale(v, syn.Scale), SourceDefault
		}
	}
	return d.Default, SourceDefault
}

func scale(v string, by int64) string {
	if by == 1 {
		return v
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return v
	}
	if n < 0 {
		return strconv.FormatInt(n, 10)
	}
	if n > math.MaxInt64/by {
		return strconv.FormatInt(math.MaxInt64, 10)
	}
	return strconv.FormatInt(n*by, 10)
}

// timestampBound is a before/after bound with the deprecated
// message.timestamp.difference.max.ms, which Kafka 4.0 removed and 3.6-3.9
// used where the bound was not set: gregor still accepts it, and the
// stricter of the two applies.
func timestampBound(bound, difference int64) int64 {
	return min(bound, difference)
}

// Int64 parses a resolved numeric value, falling back to def when unparsable.
func Int64(v string, def int64) int64 {
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil {
		return def
	}
	return n
}

// gzipLevel refuses 0, which Kafka's gzip level validator does not take
// (-1 is gzip's default, 1-9 its levels).
func gzipLevel(v string) error {
	if strings.TrimSpace(v) == "0" {
		return errors.New("must be -1 (gzip's default) or 1 to 9")
	}
	return nil
}

// Topic is the effective, typed configuration of one topic.
type Topic struct {
	Compact           bool
	Delete            bool
	RetentionMs       int64
	RetentionBytes    int64
	SegmentBytes      int64
	SegmentMs         int64
	SegmentJitterMs   int64
	SegmentIndexBytes int64
	MaxMessageBytes   int64
	LogAppendTime     bool
	FlushMessages     int64
	FlushMs           int64
	MinInsyncReplicas int64
	IndexInterval     int64
	DeleteRetentionMs int64
	// CreateTime records may be at most TimestampBefore ms older and
	// TimestampAfter ms newer than the broker's clock.
	TimestampBefore int64
	TimestampAfter  int64
	Preallocate     bool
	// Compression is compression.type: "producer" keeps each batch as
	// sent, a codec name ("uncompressed", "gzip", ...) rewrites batches
	// sent with another one.
	Compression string
	// The compression.*.level configs: the levels of what the broker
	// compresses.
	GzipLevel, LZ4Level, ZstdLevel int
	// LeaderThrottled and FollowerThrottled are the
	// leader./follower.replication.throttled.replicas lists (Throttled).
	LeaderThrottled, FollowerThrottled string
	// Compaction (cleanup.policy=compact).
	MinCleanableDirtyRatio float64
	MinCompactionLagMs     int64
	MaxCompactionLagMs     int64
}

// ResolveTopic computes a topic's effective typed configuration.
func (l Layers) ResolveTopic() Topic {
	get := func(name string) string { v, _ := l.TopicValue(name); return v }
	num := func(name string) int64 { return Int64(get(name), Int64(TopicDefs[name].Default, 0)) }
	float := func(name string) float64 {
		if v, err := strconv.ParseFloat(strings.TrimSpace(get(name)), 64); err == nil {
			return v
		}
		v, _ := strconv.ParseFloat(TopicDefs[name].Default, 64)
		return v
	}
	policy := get("cleanup.policy")
	return Topic{
		Compact:           strings.Contains(policy, "compact"),
		Delete:            strings.Contains(policy, "delete"),
		RetentionMs:       num("retention.ms"),
		RetentionBytes:    num("retention.bytes"),
		SegmentBytes:      num("segment.bytes"),
		SegmentMs:         num("segment.ms"),
		SegmentJitterMs:   num("segment.jitter.ms"),
		SegmentIndexBytes: num("segment.index.bytes"),
		MaxMessageBytes:   num("max.message.bytes"),
		LogAppendTime:     get("message.timestamp.type") == "LogAppendTime",
		FlushMessages:     num("flush.messages"),
		FlushMs:           num("flush.ms"),
		MinInsyncReplicas: num("min.insync.replicas"),
		IndexInterval:     num("index.interval.bytes"),
		DeleteRetentionMs: num("delete.retention.ms"),
		TimestampBefore:   timestampBound(num("message.timestamp.before.max.ms"), num("message.timestamp.difference.max.ms")),
		TimestampAfter:    timestampBound(num("message.timestamp.after.max.ms"), num("message.timestamp.difference.max.ms")),
		Preallocate:       strings.EqualFold(strings.TrimSpace(get("preallocate")), "true"),
		Compression:       strings.ToLower(strings.TrimSpace(get("compression.type"))),
		GzipLevel:         int(num("compression.gzip.level")),
		LZ4Level:          int(num("compression.lz4.level")),
		ZstdLevel:         int(num("compression.zstd.level")),
		LeaderThrottled:   get("leader.replication.throttled.replicas"),
		FollowerThrottled: get("follower.replication.throttled.replicas"),

		MinCleanableDirtyRatio: float("min.cleanable.dirty.ratio"),
		MinCompactionLagMs:     num("min.compaction.lag.ms"),
		MaxCompactionLagMs:     num("max.compaction.lag.ms"),
	}
}
