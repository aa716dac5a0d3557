// Package config owns Gregor's configuration: the node's own settings
// (node.go: listeners, data directory, quorum, loaded from a
// server.properties-style file and flags) and the declarative tables of
// Kafka broker and topic properties (defs.go: types, defaults, bounds,
// dynamic or not, and which broker property supplies each topic config's
// default). Layers resolves an effective value and reports its source the way
// DescribeConfigs does. metaprops.go reads and writes a data directory's
// storage identity, Kafka's meta.properties (version 1: cluster.id, node.id,
// directory.id), atomically. The package imports nothing internal.
package config
